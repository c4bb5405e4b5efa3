"""`make test`: the whole suite as three pytest runs at once, each in a lane of its own (tests/conftest.py).

    .venv/bin/python -m tests.lanes            # what `make test` and CI run, after starting the servers

The suite spends most of its time waiting (for stream workers, for polls, for servers of its own to start), so
it is split where the waits do not share anything:

- `e2e`: the end-to-end tests on the servers `photos-stack` started (the default lane: keyspace photos_test),
  streamed to the terminal as they run;
- `stacks`: the tests that start servers of their own (marker `own_stack`: crash tests, the cluster, the
  installed wheel, the authenticated stack), in lane `stacks`;
- `fast`: the integration and unit tests, in lane `fast`.

A lane has its own keyspace, topics, consumer group and media directory, so no lane's stream worker consumes
another's events. The other two lanes' output is written to .stack/test-logs/<lane>.log and printed after the
live one ends. Exit status: 0 when every lane passed (or found no test, pytest's 5), else the first failure's.
Extra arguments go to every lane's pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".stack" / "test-logs"
NO_TESTS = 5  # pytest's exit status when it collected nothing


@dataclass(frozen=True)
class Lane:
    name: str
    lane: str  # PHOTOS_TEST_LANE; "" for the default keyspace
    args: tuple[str, ...]
    live: bool = False


LANES = (
    Lane("e2e", "", ("tests/e2e", "-m", "not own_stack"), live=True),
    Lane("stacks", "stacks", ("tests/e2e", "-m", "own_stack")),
    Lane("fast", "fast", ("tests/integration", "tests/unit")),
)


def main(extra: list[str]) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    running = []
    for lane in LANES:
        env = {**os.environ, "PHOTOS_TEST_LANE": lane.lane}
        command = [sys.executable, "-m", "pytest", *lane.args, *extra]
        if lane.live:
            process = subprocess.Popen(command, cwd=ROOT, env=env)
            log = None
        else:
            log = LOG_DIR / f"{lane.name}.log"
            with log.open("w") as out:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        running.append((lane, process, log))
    results = []
    for lane, process, log in running:
        code = process.wait()
        results.append((lane, code, time.monotonic() - started))
        if log is not None:
            print(f"\n===== lane {lane.name} ({' '.join(lane.args)}): {log.relative_to(ROOT)} =====", flush=True)
            print(log.read_text(), flush=True)
    print("\n===== lanes =====")
    for lane, code, elapsed in results:
        verdict = "passed" if code == 0 else "no tests" if code == NO_TESTS else f"FAILED (exit {code})"
        print(f"{lane.name:<7} {verdict:<18} done after {elapsed:6.0f} s   {' '.join(lane.args)}")
    failures = [code for _, code, _ in results if code not in (0, NO_TESTS)]
    return failures[0] if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
