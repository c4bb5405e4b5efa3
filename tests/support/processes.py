"""Start the project's own processes (API, stream worker) for a test session and stop them after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.settings import REPO_ROOT

LOG_DIR = REPO_ROOT / ".stack" / "test-logs"


class ManagedProcess:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path = LOG_DIR) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path: Path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def wait_http_ok(url: str, process: ManagedProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout} s:\n{process.log_tail()}")


def wait_log_line(process: ManagedProcess, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if text in process.log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not log {text!r} within {timeout} s:\n{process.log_tail()}")
