"""A supervisor for one process of the local stack: it restarts the process when it dies, with back-off.

    python -m infra.supervise --name NAME --state FILE -- COMMAND [ARGS...]

photos-stack starts every service through one of these (infra/stack.py), so a Cassandra, Kafka or
Redis server, an API or a stream worker that crashes or is killed comes back by itself. The
supervisor is what the service's pid file names; it runs COMMAND as its child in its own process
group, so `photos-stack down` (SIGTERM to the group) reaches both, and a SIGTERM or SIGINT to the
supervisor alone is passed on to the child. Either way the supervisor then waits for the child and
exits without restarting it.

Restarts: the first after 1 s; each further one after a run shorter than STABLE_AFTER_S waits twice
as long, up to MAX_DELAY_S; a run that lasted STABLE_AFTER_S starts the count again. It never gives
up: a service that cannot start keeps being retried every minute, and `photos-stack status` shows it.

What happened is written to FILE (JSON, replaced atomically) for `photos-stack status`, and one
line per event goes to standard output, which photos-stack points at the service's console log.
Standard library only: it must start in milliseconds and never fail on an import.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
STABLE_AFTER_S = 60.0
TICK_S = 0.1


def describe_exit(returncode: int) -> str:
    """How a child ended, in words: "exited with 1", "killed by SIGKILL"."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with {returncode}"


def restart_delay(quick_exits: int) -> float:
    """Seconds to wait before a restart, after `quick_exits` runs in a row shorter than STABLE_AFTER_S."""
    if quick_exits <= 0:
        return FIRST_DELAY_S
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (quick_exits - 1))


class Supervisor:
    def __init__(self, name: str, state_file: Path, argv: list[str]) -> None:
        self.name = name
        self.state_file = state_file
        self.argv = argv
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.state: dict = {"name": name, "supervisor_pid": os.getpid(), "restarts": 0, "last_exit": None}

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        quick_exits = 0
        while not self.stopping:
            started = time.time()
            try:
                self.child = subprocess.Popen(self.argv)
            except OSError as error:  # the program is missing or not executable: retried like a crash
                self.say(f"could not start {self.argv[0]}: {error}")
                returncode = 127
            else:
                if self.stopping:  # asked to stop while the child was being started: it has not heard
                    self.child.terminate()
                self.save(state="running", child_pid=self.child.pid, child_started_at=started, next_start_at=None)
                returncode = self.child.wait()
            if self.stopping:
                break
            ran_s = time.time() - started
            quick_exits = quick_exits + 1 if ran_s < STABLE_AFTER_S else 0
            delay = restart_delay(quick_exits)
            how = describe_exit(returncode)
            self.state["restarts"] += 1
            self.state["last_exit"] = {"at": time.time(), "how": how, "ran_s": round(ran_s, 1)}
            self.save(state="waiting", child_pid=None, next_start_at=time.time() + delay)
            self.say(f"{how} after {ran_s:.0f} s; restarting in {delay:.0f} s (restart {self.state['restarts']})")
            self.wait(delay)
        self.save(state="stopped", child_pid=None, next_start_at=None)
        return 0

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(TICK_S)

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)  # Popen.wait() in run() then returns, and run() exits

    def save(self, **changes: object) -> None:
        self.state.update(changes)
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        temporary.write_text(json.dumps(self.state))
        temporary.replace(self.state_file)

    def say(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[{stamp}] photos-stack supervisor: {self.name} {message}", flush=True)


def read_state(state_file: Path) -> dict | None:
    """What the supervisor last wrote to `state_file`, or None when there is nothing readable."""
    try:
        return json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the service's name, for the log lines")
    parser.add_argument("--state", required=True, type=Path, help="where to keep the state photos-stack reads")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")
    args.state.parent.mkdir(parents=True, exist_ok=True)
    return Supervisor(args.name, args.state, command).run()


if __name__ == "__main__":
    sys.exit(main())
