"""Exact counts of sets that change fast: a member table with its count beside it, moved together.

A counted set is who liked a post, or which comments a post has. Its members are stored in
bucketed partitions `((owner, bucket), member)`, and each bucket carries its own member count
in a static column. The stream worker is the only writer. For a batch of changes it reads
which of the members each bucket holds, and writes the inserts, the deletes and the bucket's
new count in ONE conditional single-partition batch (`IF count = <the count it read>`, and
each insert `IF NOT EXISTS`, each delete `IF EXISTS`):

- atomic: the rows and the count cannot disagree, even if the worker dies mid-batch;
- idempotent: a replayed batch finds its members already in place and changes nothing;
- safe with two writers (a worker that lost its Kafka partition but has not noticed): the
  conditions fail for the slower one, which re-reads (at LOCAL_SERIAL) and tries again. The
  conditions on the rows matter when the other writer moved members without changing the
  count: the count alone would let the slower one insert a member it saw absent a second time.

Each bucket's count is then copied to an index table `(owner, bucket) -> count`, and the
owner's total is the sum of that one partition. The copy is written every time a bucket is
touched, so a worker killed between the batch and the copy repairs it on replay, and it is
stamped with the write time of the count it copies, so a writer's late copy of an older count
never replaces a newer one.

A hot owner costs one conditional batch per touched bucket per stream batch (a few a
second), however many members change in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.query import BatchStatement, BatchType

from app.storage.cassandra import CassandraSession

MAX_ROWS_PER_BATCH = 200  # keeps one conditional batch well under batch_size_warn_threshold
MAX_ATTEMPTS = 8
ALL_MEMBERS = (1 << 31) - 1  # a LIMIT above any bucket's size
COUNT_TIMEOUT_S = 60.0  # counting a full bucket's rows


@dataclass(frozen=True)
class CountedSetTables:
    members: str  # e.g. post_likers: ((owner, bucket), member) + static count
    owner: str  # e.g. post_id
    member: str  # e.g. user_id
    count: str  # the static count column of `members`, e.g. like_count
    index: str  # e.g. post_like_buckets: (owner, bucket) -> count
    extra: tuple[str, ...] = ()  # further columns written with each member (e.g. liked_at)
    expiring: bool = False  # members, counts and index rows are written USING TTL (a story's viewers)


@dataclass
class Placement:
    """Where one member should be after the batch: in `bucket` (with `extra` values) or, when
    `bucket` is None, nowhere. `seen` are the other buckets it may still occupy."""

    bucket: int | None
    seen: set[int] = field(default_factory=set)
    extra: Sequence[Any] = ()


class CountedSet:
    def __init__(self, cass: CassandraSession, tables: CountedSetTables) -> None:
        self._cass = cass
        self._t = tables

    async def prepare(self) -> CountedSet:
        t, p = self._t, self._cass.prepare
        columns = ", ".join((t.owner, "bucket", t.member, *t.extra))
        marks = ", ".join("?" * (3 + len(t.extra)))
        ttl, and_ttl = (" USING TTL ?", " AND TTL ?") if t.expiring else ("", "")
        self._members_in = await p(
            f"SELECT {t.member} AS member FROM {t.members} WHERE {t.owner} = ? AND bucket = ? AND {t.member} IN ?"
        )
        self._count = await p(f"SELECT {t.count} AS n FROM {t.members} WHERE {t.owner} = ? AND bucket = ? LIMIT 1")
        self._insert = await p(f"INSERT INTO {t.members} ({columns}) VALUES ({marks}) IF NOT EXISTS{ttl}")
        self._delete = await p(
            f"DELETE FROM {t.members} WHERE {t.owner} = ? AND bucket = ? AND {t.member} = ? IF EXISTS"
        )
        self._set_count = await p(
            f"UPDATE {t.members}{ttl} SET {t.count} = ? WHERE {t.owner} = ? AND bucket = ? IF {t.count} = ?"
        )
        self._count_written = await p(
            f"SELECT {t.count} AS n, WRITETIME({t.count}) AS written FROM {t.members}"
            f" WHERE {t.owner} = ? AND bucket = ? LIMIT 1"
        )
        self._save_index = await p(
            f"UPDATE {t.index} USING TIMESTAMP ?{and_ttl} SET {t.count} = ? WHERE {t.owner} = ? AND bucket = ?"
        )
        self._index = await p(f"SELECT bucket, {t.count} AS n FROM {t.index} WHERE {t.owner} = ?")
        self._buckets_holding = await p(
            f"SELECT bucket FROM {t.members} WHERE {t.owner} = ? AND bucket IN ? AND {t.member} = ?"
        )
        self._members = await p(
            f"SELECT {t.member} AS member FROM {t.members} WHERE {t.owner} = ? AND bucket = ? LIMIT ?"
        )
        self._count_members = await p(f"SELECT COUNT(*) AS n FROM {t.members} WHERE {t.owner} = ? AND bucket = ?")
        return self

    async def buckets(self, owner: int) -> dict[int, int]:
        """Every bucket of the owner with its count (one partition read)."""
        rows = await self._cass.all_rows(self._index, (owner,), fetch_size=5000)
        return {row.bucket: row.n or 0 for row in rows}

    async def buckets_holding(self, owner: int, member: int) -> set[int]:
        """The buckets that hold `member` (for a change whose bucket nobody knows)."""
        known = list(await self.buckets(owner))
        if not known:
            return set()
        return {row.bucket for row in await self._cass.rows(self._buckets_holding, (owner, known, member))}

    async def members(self, owner: int, bucket: int, limit: int = ALL_MEMBERS) -> list[int]:
        """The first `limit` member ids of one bucket, by member id (read only: checks and benchmarks)."""
        rows = await self._cass.all_rows(self._members, (owner, bucket, limit), fetch_size=5000)
        return [row.member for row in rows]

    async def count_members(self, owner: int, bucket: int) -> int:
        """The member rows of one bucket, counted (read only: checks and benchmarks)."""
        result = await self._cass.execute(self._count_members, (owner, bucket), timeout=COUNT_TIMEOUT_S)
        return result.current_rows[0].n

    async def stored_count(self, owner: int, bucket: int) -> int | None:
        """The bucket's static count as stored (None: never written)."""
        row = await self._cass.one(self._count, (owner, bucket))
        return None if row is None else row.n

    async def apply(self, owner: int, placements: dict[int, Placement], ttl_s: int | None = None) -> dict[int, int]:
        """Move the members to where `placements` says; returns every touched bucket's count.

        For expiring tables, `ttl_s` is what is left of the owner's life: every cell written
        expires then."""
        ttl = () if ttl_s is None else (ttl_s,)
        by_bucket: dict[int, list[int]] = {}
        for member, placement in placements.items():
            for bucket in placement.seen | ({placement.bucket} - {None}):
                by_bucket.setdefault(bucket, []).append(member)
        counts = await asyncio.gather(
            *(self._settle_bucket(owner, bucket, members, placements, ttl) for bucket, members in by_bucket.items())
        )
        return dict(zip(by_bucket, counts, strict=True))

    async def total(self, owner: int) -> tuple[int, int]:
        """(the owner's member count, the microsecond timestamp it was read at)."""
        read_at = time.time_ns() // 1000
        return sum((await self.buckets(owner)).values()), read_at

    async def _settle_bucket(
        self, owner: int, bucket: int, members: list[int], placements: dict[int, Placement], ttl: tuple
    ) -> int:
        for start in range(0, len(members), MAX_ROWS_PER_BATCH):
            await self._settle_chunk(owner, bucket, members[start : start + MAX_ROWS_PER_BATCH], placements, ttl)
        # read after this writer's own batches, so at least as new as they are
        row = await self._cass.one(self._count_written, (owner, bucket))
        if row is None or row.n is None:  # never held a member: nothing to copy
            return 0
        await self._cass.execute(self._save_index, (row.written, *ttl, row.n, owner, bucket))
        return row.n

    async def _settle_chunk(
        self, owner: int, bucket: int, members: list[int], placements: dict[int, Placement], ttl: tuple
    ) -> None:
        serial = False
        for _ in range(MAX_ATTEMPTS):
            present, count = await self._read(owner, bucket, members, serial)
            inserts = [m for m in members if placements[m].bucket == bucket and m not in present]
            deletes = [m for m in members if placements[m].bucket != bucket and m in present]
            if not inserts and not deletes:
                return
            new_count = (count or 0) + len(inserts) - len(deletes)
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            batch.add(self._set_count, (*ttl, new_count, owner, bucket, count))
            for member in inserts:
                batch.add(self._insert, (owner, bucket, member, *placements[member].extra, *ttl))
            for member in deletes:
                batch.add(self._delete, (owner, bucket, member))
            if (await self._cass.execute(batch)).was_applied:
                return
            serial = True  # another writer moved the count or the members: read what it committed
        raise RuntimeError(f"{self._t.members} ({owner}, {bucket}): count kept changing under this writer")

    async def _read(self, owner: int, bucket: int, members: Iterable[int], serial: bool) -> tuple[set[int], int | None]:
        consistency = ConsistencyLevel.LOCAL_SERIAL if serial else None
        rows, count_row = await asyncio.gather(
            self._cass.rows(self._members_in, (owner, bucket, list(members)), consistency=consistency),
            self._cass.rows(self._count, (owner, bucket), consistency=consistency),
        )
        return {row.member for row in rows}, (count_row[0].n if count_row else None)
