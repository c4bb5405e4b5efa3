"""Unlogged batches of the seeder's writes, a partition at a time, with bounded concurrency.

Callers hand over the writes of one partition (`put(writes)`); the writer packs them into UNLOGGED
batches, each batch holding whole partitions only:

- one partition's writes never straddle two batches unless they outgrow one batch alone, and then each
  of its batches still holds that one partition;
- a batch holds at most MAX_PARTITIONS partitions, all with the same replicas (token-aware: the batch
  goes to a node that owns every row in it, so no coordinator forwards anything), and stays within
  Cassandra's own limits: at most 10 partitions (`unlogged_batch_across_partitions_warn_threshold`) and
  MAX_STATEMENTS rows, under `batch_size_warn_threshold` (64 KiB on this stack).

What a write costs here (docs/seeding.md has the figures): a request of one row about 1 ms of the node's CPU,
each further partition in a request a few hundred microseconds, each further row of a partition already in
it tens of microseconds. So the rows of a partition always travel together, and small partitions share a
request. Every write is an idempotent upsert, so a batch that times out is simply sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import OperationTimedOut, WriteTimeout
from cassandra.query import BatchStatement, BatchType

from app.metrics import table_of
from app.storage.cassandra import CassandraSession
from loadtest.seeding.statements import Write

log = logging.getLogger(__name__)

MAX_PARTITIONS = 10  # Cassandra warns about unlogged batches spanning more partitions than this
# Rows here are small (the largest, a post, is under 1 KB; a multi-row partition's rows under 200 bytes), so
# a batch of MAX_STATEMENTS stays well under batch_size_warn_threshold (64 KiB on this stack)
MAX_STATEMENTS = 300
CONCURRENCY = 96  # batches in flight
ATTEMPTS = 5
REQUEST_TIMEOUT_S = 60.0


@dataclass
class WriterStats:
    partitions: int = 0
    rows: int = 0
    batches: int = 0
    retries: int = 0
    seconds: float = 0.0
    by_table: dict[str, list[int]] = field(default_factory=dict)  # table -> [partitions, rows]


class BatchWriter:
    def __init__(self, cass: CassandraSession, concurrency: int = CONCURRENCY,
                 on_written: Callable[[int], None] | None = None) -> None:
        self._cass = cass
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task] = set()
        self._error: BaseException | None = None
        self._pending: dict[Any, _Pending] = {}  # by replica set
        self._on_written = on_written
        self.stats = WriterStats()
        self._started = time.perf_counter()
        metadata = cass.session.cluster.metadata
        self._keyspace = cass.session.keyspace
        self._token_map = metadata.token_map if len(metadata.all_hosts()) > 1 else None

    async def put(self, writes: Sequence[Write]) -> None:
        """The writes of ONE partition (any number of rows; the caller groups them)."""
        if self._error is not None:
            raise self._error
        if not writes:
            return
        self.stats.partitions += 1
        self.stats.rows += len(writes)
        table = _table(writes[0][0])
        counts = self.stats.by_table.setdefault(table, [0, 0])
        counts[0] += 1
        counts[1] += len(writes)
        bound = [statement.bind(params) for statement, params in writes]
        if len(bound) > MAX_STATEMENTS:  # a partition too big for one batch: batches of its own
            for start in range(0, len(bound), MAX_STATEMENTS):
                chunk = _Pending()
                chunk.add(bound[start : start + MAX_STATEMENTS])
                await self._send(chunk)
            return
        replicas = self._replicas(bound[0])
        pending = self._pending.get(replicas)
        if pending is not None and len(pending.statements) + len(bound) > MAX_STATEMENTS:
            await self._send(self._pending.pop(replicas))
            pending = None
        if pending is None:
            pending = self._pending[replicas] = _Pending()
        pending.add(bound)
        if pending.partitions >= MAX_PARTITIONS:
            await self._send(self._pending.pop(replicas))

    async def drain(self) -> WriterStats:
        """Send what is pending and wait for every batch; raises the first error."""
        for replicas in list(self._pending):
            await self._send(self._pending.pop(replicas))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._error is not None:
            raise self._error
        self.stats.seconds = time.perf_counter() - self._started
        return self.stats

    def _replicas(self, bound) -> Any:
        if self._token_map is None:
            return None
        token = self._token_map.token_class.from_key(bound.routing_key)
        return tuple(sorted(str(host.endpoint) for host in self._token_map.get_replicas(self._keyspace, token)))

    async def _send(self, pending: _Pending) -> None:
        if not pending.statements:
            return
        await self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            raise self._error
        task = asyncio.ensure_future(self._execute(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, pending: _Pending) -> None:
        try:
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for statement in pending.statements:
                batch.add(statement)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    await self._cass.execute(batch, timeout=REQUEST_TIMEOUT_S)
                    break
                except (WriteTimeout, OperationTimedOut):
                    if attempt == ATTEMPTS:
                        raise
                    self.stats.retries += 1
                    log.warning("a batch of %d rows timed out; sending it again", len(pending.statements))
                    await asyncio.sleep(attempt)
            self.stats.batches += 1
            if self._on_written is not None:
                self._on_written(len(pending.statements))
        except BaseException as exc:
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()


class _Pending:
    def __init__(self) -> None:
        self.statements: list = []
        self.partitions = 0

    def add(self, statements: list) -> None:
        self.statements.extend(statements)
        self.partitions += 1


_TABLES: dict[int, str] = {}


def _table(statement) -> str:
    """The table a prepared statement writes (for the per-table figures)."""
    table = _TABLES.get(id(statement))
    if table is None:
        table = _TABLES[id(statement)] = table_of(statement.query_string)
    return table
