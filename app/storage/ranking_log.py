"""`feed_impressions` and `feed_engagements`: the ranking log (docs/ranking.md#the-ranking-log).

What a ranked feed served and what readers did with posts, the training set of the learned ranker.
Written by the ranking log agents (streams/ranking_log.py), read by the offline training job, which
scans a day's partitions: the day times every shard.

A row is placed by the UTC day of its time (`day_of`) and its reader's shard (`shard_of`), so a
partition holds one day of 1/shards of the readers. The writes group rows by partition and send each
partition's rows as UNLOGGED batches of at most BATCH_ROWS (one replica set, one mutation per batch),
partitions concurrently. Every write names its TTL (settings.ranking_log_ttl_days).

Both tables are idempotent to write: a row is its primary key's, so writing it again (a redelivered
event) rewrites the same cells. An engagement is written with its act's time as the cell timestamp,
so of two acts of one (reader, post, kind) on one day the later one's `at_ms` stays, whatever order
they are written in.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from cassandra.query import BatchStatement, BatchType

from app.storage.cassandra import CassandraSession

MS_PER_DAY = 86_400_000
BATCH_ROWS = 50  # rows of one partition per UNLOGGED batch: ~8 KB of impressions, far below the warn threshold
WRITE_CONCURRENCY = 32  # batches in flight per call
PAGE_ROWS = 1000  # rows per page of a read

IMPRESSION_COLUMNS = ("reader_id, request_id, position, post_id, author_id, served_ms, ranker, feature_version,"
                      " features")
ENGAGEMENT_COLUMNS = "reader_id, post_id, kind, author_id, at_ms"

LIKE, COMMENT, OPEN = "like", "comment", "open"
KINDS = (LIKE, COMMENT, OPEN)


def day_of(ms: int) -> int:
    """The UTC day of a Unix millisecond time (days since 1970-01-01)."""
    return ms // MS_PER_DAY


def shard_of(reader_id: int, shards: int) -> int:
    """The reader's shard of `shards`: a hash of the id's 8 bytes, since the low bits of a time-sortable id
    (its sequence) are skewed towards 0."""
    return zlib.crc32(reader_id.to_bytes(8, "big", signed=True)) % shards


@dataclass(frozen=True)
class Impression:
    """One post as a ranked feed served it: `position` is its 0-based place in snapshot `request_id`."""

    day: int
    shard: int
    reader_id: int
    request_id: int
    position: int
    post_id: int
    author_id: int
    served_ms: int
    ranker: str
    feature_version: int
    features: tuple[float, ...]


@dataclass(frozen=True)
class Engagement:
    """The reader's latest act of `kind` (LIKE, COMMENT or OPEN) on a post on one day."""

    day: int
    shard: int
    reader_id: int
    post_id: int
    kind: str
    author_id: int
    at_ms: int


def latest_engagements(rows: Iterable[Engagement]) -> list[Engagement]:
    """The latest act of each (day, reader, post, kind) among `rows`."""
    latest: dict[tuple[int, int, int, str], Engagement] = {}
    for r in rows:
        key = (r.day, r.reader_id, r.post_id, r.kind)
        if key not in latest or r.at_ms > latest[key].at_ms:
            latest[key] = r
    return list(latest.values())


def partition_batches(by_partition: dict[tuple[int, int], list[tuple]], size: int = BATCH_ROWS) -> list[list[tuple]]:
    """Each partition's rows cut into batches of at most `size`: a batch never spans two partitions."""
    return [rows[start : start + size] for rows in by_partition.values() for start in range(0, len(rows), size)]


class RankingLog:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> RankingLog:
        p = self._cass.prepare
        self._impress = await p(
            f"INSERT INTO feed_impressions (day, shard, {IMPRESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " USING TTL ?"
        )
        # the act's time as the write time: the latest act of a day wins, in any order, and a replay rewrites it
        self._engage = await p(
            f"INSERT INTO feed_engagements (day, shard, {ENGAGEMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " USING TTL ? AND TIMESTAMP ?"
        )
        self._impressions = await p(
            f"SELECT day, shard, {IMPRESSION_COLUMNS} FROM feed_impressions WHERE day = ? AND shard = ?"
        )
        self._impressions_of = await p(
            f"SELECT day, shard, {IMPRESSION_COLUMNS} FROM feed_impressions WHERE day = ? AND shard = ?"
            " AND reader_id = ?"
        )
        self._engagements = await p(
            f"SELECT day, shard, {ENGAGEMENT_COLUMNS} FROM feed_engagements WHERE day = ? AND shard = ?"
        )
        self._engagements_of = await p(
            f"SELECT day, shard, {ENGAGEMENT_COLUMNS} FROM feed_engagements WHERE day = ? AND shard = ?"
            " AND reader_id = ?"
        )
        return self

    # --- writes ----------------------------------------------------------------
    async def record_impressions(self, rows: Iterable[Impression], ttl_s: int) -> None:
        by_partition: dict[tuple[int, int], list[tuple]] = defaultdict(list)
        for r in rows:
            by_partition[r.day, r.shard].append((
                r.day, r.shard, r.reader_id, r.request_id, r.position, r.post_id, r.author_id, r.served_ms, r.ranker,
                r.feature_version, list(r.features), ttl_s,
            ))
        await self._write(self._impress, by_partition)

    async def record_engagements(self, rows: Iterable[Engagement], ttl_s: int) -> None:
        """One row per (day, reader, post, kind): of the given rows, the latest act of each."""
        by_partition: dict[tuple[int, int], list[tuple]] = defaultdict(list)
        for r in latest_engagements(rows):
            by_partition[r.day, r.shard].append((
                r.day, r.shard, r.reader_id, r.post_id, r.kind, r.author_id, r.at_ms, ttl_s, r.at_ms * 1000,
            ))
        await self._write(self._engage, by_partition)

    async def _write(self, statement, by_partition: dict[tuple[int, int], list[tuple]]) -> None:
        """Each partition's rows in UNLOGGED batches of at most BATCH_ROWS, WRITE_CONCURRENCY batches at a time."""
        batches = []
        for rows in partition_batches(by_partition):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for row in rows:
                batch.add(statement, row)
            batches.append(batch)
        slots = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def send(batch: BatchStatement) -> None:
            async with slots:
                await self._cass.execute(batch)

        await asyncio.gather(*(send(batch) for batch in batches))

    # --- reads (the training job, tools, tests) -------------------------------------
    async def impressions(self, day: int, shard: int, reader_id: int | None = None,
                          page_rows: int = PAGE_ROWS) -> AsyncIterator[list[Impression]]:
        """The partition's impressions (or one reader's), a page of at most `page_rows` at a time, in key order."""
        statement, params = self._of(self._impressions, self._impressions_of, day, shard, reader_id)
        async for _, rows in self._cass.scan(statement, min(page_rows, PAGE_ROWS), params):
            yield [_impression(row) for row in rows]

    async def engagements(self, day: int, shard: int, reader_id: int | None = None,
                          page_rows: int = PAGE_ROWS) -> AsyncIterator[list[Engagement]]:
        """The partition's engagements (or one reader's), a page of at most `page_rows` at a time, in key order."""
        statement, params = self._of(self._engagements, self._engagements_of, day, shard, reader_id)
        async for _, rows in self._cass.scan(statement, min(page_rows, PAGE_ROWS), params):
            yield [_engagement(row) for row in rows]

    @staticmethod
    def _of(whole, of_reader, day: int, shard: int, reader_id: int | None) -> tuple[object, Sequence]:
        return (whole, (day, shard)) if reader_id is None else (of_reader, (day, shard, reader_id))


def _impression(row) -> Impression:
    return Impression(
        day=row.day, shard=row.shard, reader_id=row.reader_id, request_id=row.request_id, position=row.position,
        post_id=row.post_id, author_id=row.author_id, served_ms=row.served_ms, ranker=row.ranker,
        feature_version=row.feature_version, features=tuple(row.features or ()),
    )


def _engagement(row) -> Engagement:
    return Engagement(day=row.day, shard=row.shard, reader_id=row.reader_id, post_id=row.post_id, kind=row.kind,
                      author_id=row.author_id, at_ms=row.at_ms)
