"""Detached processes, pid files and ports: the operating-system side of the stack."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def spawn_detached(argv: list[str], log_file: Path, cwd: Path) -> int:
    """Start `argv` in its own session, output appended to `log_file`; return its pid.

    A new session means the process outlives the launcher and its terminal, and its
    pid is also its process-group id, so stopping it reaches any children it forks.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


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
