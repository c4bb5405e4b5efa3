"""Time-sortable 64-bit ids, in the manner of Instagram's sharded ids.

Layout, most significant bit first:
  41 bits  milliseconds since ID_EPOCH (about 69 years of ids)
  13 bits  generator shard (one per process; see `IdGenerator`)
  10 bits  sequence within the millisecond (1024 ids per ms per process)

Ids sort by creation time, so one clustering column gives both newest-first order
and a stable paging cursor. They travel as decimal strings in JSON because
JavaScript numbers lose precision past 2**53.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from datetime import UTC, datetime

ID_EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SHARD_BITS = 13
SEQUENCE_BITS = 10
MAX_SHARD = (1 << SHARD_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1


def default_shard() -> int:
    """A shard number that differs between the processes of one host and, very likely, between hosts."""
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) & MAX_SHARD


class IdGenerator:
    """Makes unique, time-ordered ids; thread-safe."""

    def __init__(self, shard: int | None = None, clock=time.time) -> None:
        self._shard = default_shard() if shard is None else shard
        if not 0 <= self._shard <= MAX_SHARD:
            raise ValueError(f"shard must be within 0..{MAX_SHARD}")
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_id(self) -> int:
        with self._lock:
            now_ms = int(self._clock() * 1000) - ID_EPOCH_MS
            if now_ms < self._last_ms:  # clock stepped back: keep counting from the last instant
                now_ms = self._last_ms
            if now_ms == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:  # 1024 ids in this millisecond: borrow the next one
                    now_ms += 1
            else:
                self._sequence = 0
            self._last_ms = now_ms
            return (now_ms << (SHARD_BITS + SEQUENCE_BITS)) | (self._shard << SEQUENCE_BITS) | self._sequence


def id_time(id_: int) -> datetime:
    """The creation instant encoded in an id."""
    ms = id_millis(id_) + ID_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def parse_id(text: str) -> int | None:
    """The id in a path or body string, or None when it is not one of ours."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:  # isdigit() alone accepts '¹' and '٣'
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def id_millis(id_: int) -> int:
    """Milliseconds since ID_EPOCH at which the id was made."""
    return id_ >> (SHARD_BITS + SEQUENCE_BITS)


def hour_bucket(id_: int) -> int:
    """Hours since ID_EPOCH of the id's time: the bucket of hourly-partitioned tables."""
    return id_millis(id_) // 3_600_000


def month_bucket(id_: int) -> int:
    """Calendar months since 2026-01 of the id's time (UTC): the bucket of monthly-partitioned tables."""
    created = id_time(id_)
    return (created.year - 2026) * 12 + created.month - 1



def first_id_at(unix_ms: int) -> int:
    """The smallest id made at or after `unix_ms`: ids older than a moment are `< first_id_at(moment)`."""
    return max(0, unix_ms - ID_EPOCH_MS) << (SHARD_BITS + SEQUENCE_BITS)
