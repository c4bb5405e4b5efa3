"""infra/procs.py's child processes, as tests and benchmarks start them: waited for, stopped, and a
crash reported with the log's last lines."""

from __future__ import annotations

import pytest

from infra.procs import ManagedProcess, free_port, wait_http_ok, wait_log_line

READY_THEN_WAIT = (
    "import sys, time; print('Ready', flush=True); print('oops', file=sys.stderr, flush=True); time.sleep(60)"
)


def test_a_child_is_waited_for_by_its_log_line_and_stopped_with_its_group(tmp_path):
    child = ManagedProcess("child", ["-c", READY_THEN_WAIT], {}, tmp_path)
    try:
        wait_log_line(child, "Ready", timeout=30)
        assert child.alive()
        assert "oops" in child.log_tail()  # stderr goes to the same log
    finally:
        child.stop()
    assert not child.alive()


def test_a_child_that_exits_is_reported_with_its_log_and_the_log_is_written_anew(tmp_path):
    (tmp_path / "crashing.log").write_text("Ready (an earlier run's line)\n")
    child = ManagedProcess("crashing", ["-c", "raise SystemExit('no config')"], {}, tmp_path)
    with pytest.raises(RuntimeError, match=r"(?s)crashing exited:.*no config"):
        wait_log_line(child, "Ready", timeout=30)
    with pytest.raises(RuntimeError, match="crashing exited"):
        wait_http_ok(f"http://127.0.0.1:{free_port()}/healthz", child, timeout=30)
