"""`make test`: the whole suite as pytest runs in lanes of their own (tests/conftest.py), two at a time.

    .venv/bin/python -m tests.lanes            # what `make test` and CI run, after starting the servers

The suite spends most of its time waiting (for stream workers, for polls, for servers of its own to start), so
it runs as two tracks at once, each a series of lanes:

- track 1, `e2e`: the end-to-end tests on the servers `photos-stack` started (the default lane: keyspace
  photos_test), streamed to the terminal as they run;
- track 2, `fast` then `stacks`: the integration and unit tests (lane `fast`), then the tests that start
  servers of their own (marker `own_stack`: the crash tests, the cluster, the installed wheel, the
  authenticated stack; lane `stacks`). They take turns so that booting a private cluster never overlaps the
  integration tests' timings.

A lane has its own keyspace, topics, consumer group and media directory, so no lane's stream worker consumes
another's events; every lane's keyspace is migrated first, one after the other (concurrent schema changes
on one node are slow). Track 2's output goes to .stack/test-lanes/<lane>.log and is printed after the live
one ends. Exit status: 0 when every lane passed (or found no test: pytest's 5), else the first failure's.
Extra arguments go to every lane's pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".stack" / "test-lanes"
NO_TESTS = 5  # pytest's exit status when it collected nothing
MIGRATE = ("import tests.conftest; from app.settings import Settings; from app.storage.migrate import prepare_storage;"
           " prepare_storage(Settings.from_env())")  # tests.conftest applies the lane's TEST_ENV


@dataclass(frozen=True)
class Lane:
    name: str
    lane: str  # PHOTOS_TEST_LANE; "" for the default keyspace
    args: tuple[str, ...]


E2E = Lane("e2e", "", ("tests/e2e", "-m", "not own_stack"))
FAST = Lane("fast", "fast", ("tests/integration", "tests/unit"))
STACKS = Lane("stacks", "stacks", ("tests/e2e", "-m", "own_stack"))
LIVE_TRACK = (E2E,)
LOGGED_TRACK = (FAST, STACKS)


def lane_env(lane: Lane) -> dict[str, str]:
    return {**os.environ, "PHOTOS_TEST_LANE": lane.lane}


def run_track(lanes: tuple[Lane, ...], extra: list[str], live: bool, started: float, results: list) -> None:
    for lane in lanes:
        command = [sys.executable, "-m", "pytest", *lane.args, *extra]
        if live:
            code = subprocess.call(command, cwd=ROOT, env=lane_env(lane))
        else:
            with (LOG_DIR / f"{lane.name}.log").open("w") as out:
                code = subprocess.call(command, cwd=ROOT, env=lane_env(lane), stdout=out, stderr=subprocess.STDOUT)
        results.append((lane, code, time.monotonic() - started))


def main(extra: list[str]) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for lane in (*LIVE_TRACK, *LOGGED_TRACK):
        subprocess.run([sys.executable, "-c", MIGRATE], cwd=ROOT, env=lane_env(lane), check=True)
    started = time.monotonic()
    results: list = []
    logged = threading.Thread(target=run_track, args=(LOGGED_TRACK, extra, False, started, results))
    logged.start()
    run_track(LIVE_TRACK, extra, True, started, results)
    logged.join()
    for lane in LOGGED_TRACK:
        log = LOG_DIR / f"{lane.name}.log"
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
