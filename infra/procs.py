"""Processes, pid files and ports: the operating-system side of the stack, and of the processes
tests and benchmarks start for themselves.

`spawn_detached` starts a stack service that outlives its launcher; `ManagedProcess` a child that the
test or benchmark which started it also stops (an API or a stream worker on a port of its own, found
with `free_port`), and `wait_http_ok` / `wait_log_line` wait for such a child to be ready.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.settings import REPO_ROOT

READY_POLL_S = 0.2


def spawn(
    argv: list[str], log_file: Path, cwd: Path, env: dict[str, str] | None = None, append: bool = True
) -> subprocess.Popen:
    """Start `argv` in its own session, its output appended to `log_file` (or written anew).

    A new session means the process outlives the launcher and its terminal, and its
    pid is also its process-group id, so stopping it reaches any children it forks.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def spawn_detached(argv: list[str], log_file: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` as `spawn` does, for good (photos-stack's services); return its pid."""
    return spawn(argv, log_file, cwd, env).pid


def free_port() -> int:
    """A loopback TCP port nothing listens on now, for a process about to be started."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """`python <args>` as a child of this process, in its own session, logging to `<log_dir>/<name>.log`
    (written anew, so a wait for a log line sees only this run's); `stop` ends it and whatever it forked."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path: Path = log_dir / f"{name}.log"
        self.proc = spawn([sys.executable, *args], self.log_path, REPO_ROOT, env={**os.environ, **env}, append=False)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            signal_group(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_http_ok(url: str, process: ManagedProcess, timeout: float = 60.0) -> None:
    """Wait until `GET url` answers 200; RuntimeError with the log's tail if `process` exits or the time runs out."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    _wait_for(process, answers, f"answer {url}", timeout)


def wait_log_line(process: ManagedProcess, text: str, timeout: float = 90.0) -> None:
    """Wait until `process` has logged `text` (the stream worker logs "Ready"); RuntimeError as above."""
    _wait_for(process, lambda: text in process.log_path.read_text(errors="replace"), f"log {text!r}", timeout)


def _wait_for(process: ManagedProcess, ready: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if ready():
            return
        time.sleep(READY_POLL_S)
    raise RuntimeError(f"{process.name} did not {what} within {timeout} s:\n{process.log_tail()}")


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block; the OS drops it if the process dies.

    Spawned services do not inherit it: Popen closes every other descriptor in the child.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another photos-stack command to finish ({path}) ...", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")


def process_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"}


def process_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def group_alive(pgid: int) -> bool:
    """Some process of the process group `pgid` is still running (zombies aside)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] not in {"Z", "X"} and int(fields[2]) == pgid:  # state, ppid, pgrp
            return True
    return False


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group led by `pid` (see spawn_detached); ignore if gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last `lines` lines written to `path` after byte offset `since`."""
    try:
        with path.open("rb") as handle:
            if since <= file_size(path):  # a smaller file was rotated: read it all
                handle.seek(since)
            return b"".join(deque(handle, maxlen=lines)).decode(errors="replace")
    except FileNotFoundError:
        return ""
