"""infra/supervise.py with a real child process: restarts after a kill, stops for good on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from infra.procs import process_alive
from infra.stack import restart_note
from infra.supervise import describe_exit, read_state, restart_delay
from tests.support.polling import wait_until


def start_supervisor(tmp_path, *command: str) -> tuple[subprocess.Popen, object]:
    state = tmp_path / "child.state.json"
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "infra.supervise", "--name", "child", "--state", str(state), "--", *command],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return supervisor, state


def child_pid(state) -> int | None:
    current = read_state(state) or {}
    return current.get("child_pid") if current.get("state") == "running" else None


def test_a_killed_child_is_restarted_and_the_restart_is_recorded(tmp_path):
    supervisor, state = start_supervisor(tmp_path, "sleep", "300")
    try:
        first = wait_until(lambda: child_pid(state), timeout=10)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: (pid := child_pid(state)) != first and pid, timeout=10)
        assert process_alive(second) and not process_alive(first)
        recorded = read_state(state)
        assert recorded["restarts"] == 1
        assert recorded["last_exit"]["how"] == "killed by SIGKILL"
        assert "restarted 1 time, last killed by SIGKILL" in restart_note(recorded)
        log = (tmp_path / "supervisor.log").read_text()
        assert "child killed by SIGKILL after" in log and "restarting in 1 s (restart 1)" in log
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=10)


def test_sigterm_to_the_supervisor_alone_stops_the_child_without_a_restart(tmp_path):
    supervisor, state = start_supervisor(tmp_path, "sleep", "300")
    child = wait_until(lambda: child_pid(state), timeout=10)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=10) == 0
    wait_until(lambda: not process_alive(child), timeout=10)
    assert read_state(state)["state"] == "stopped"
    assert read_state(state)["restarts"] == 0


def test_a_child_that_keeps_failing_waits_longer_each_time(tmp_path):
    supervisor, state = start_supervisor(tmp_path, "false")
    try:
        wait_until(lambda: (read_state(state) or {}).get("restarts", 0) >= 2, timeout=10)
        recorded = read_state(state)
        assert recorded["last_exit"]["how"] == "exited with 1"
        assert recorded["state"] == "waiting"
        assert recorded["next_start_at"] - time.time() > 1.0  # the second restart waits 2 s, not 1
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        supervisor.wait(timeout=10)


def test_back_off_doubles_up_to_a_minute_and_names_the_signal():
    assert [restart_delay(n) for n in (0, 1, 2, 3, 7, 20)] == [1.0, 1.0, 2.0, 4.0, 60.0, 60.0]
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with 3"
