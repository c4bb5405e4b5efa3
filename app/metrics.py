"""What each route costs: the Cassandra requests, Redis commands and Kafka messages its work sent, and CPU.

Every count is attributed to the route whose work caused it through one context variable, `ROUTE`:
the API's request middleware sets it to "<METHOD> <path template>" (as in loadtest/traffic.toml),
the stream workers set it to "agent:<name>" around each batch (streams/retry.py), and work done
outside both (start-up, timers, background tasks) counts as "background". Tasks a handler starts
inherit it (asyncio copies the context), so their work counts for the route that started them.

The counting sits in the few places every request to a store goes through: `CassandraSession`
(app/storage/cassandra.py), the Redis client class below and the `EventPublisher` (app/events.py). Label
children are looked up once per (route, statement) and kept, so counting costs a dict lookup and an
increment. docs/metrics.md lists the metrics, what one unit means and how to turn them into costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.registry import REGISTRY
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

BACKGROUND = "background"
ROUTE: ContextVar[str] = ContextVar("photos_route", default=BACKGROUND)

CASSANDRA_REQUESTS = Counter(
    "photos_cassandra_requests_total",
    "Requests sent to Cassandra (one per statement; a batch is one), by the route whose work sent them",
    ["route", "table"],
)
REDIS_COMMANDS = Counter(
    "photos_redis_commands_total", "Redis commands sent, by the route whose work sent them", ["route"]
)
REDIS_ROUND_TRIPS = Counter(
    "photos_redis_round_trips_total",
    "Redis round trips (a single command or a whole pipeline), by the route whose work made them",
    ["route"],
)
KAFKA_MESSAGES = Counter(
    "photos_kafka_messages_total", "Messages sent to Kafka, by the route whose work sent them", ["route", "topic"]
)
PROCESS_CPU = Counter(
    "photos_process_cpu_seconds_total", "CPU time (user + system, every thread) of the processes of a kind", ["kind"]
)

CACHE_MAX = 10_000  # label children and parsed statements kept; ad-hoc CQL beyond it is parsed every time
NO_TABLE = "other"  # a statement that names no table (USE, CREATE ..., garbage)

# --- Cassandra: the table a statement works on ------------------------------------------------
_IDENTIFIER = r'(?:"(?:[^"]|"")+"|\w+)'  # quoted ("" is a quote inside) or plain
_STATEMENT = re.compile(
    r"\s*(?:SELECT\b.*?\bFROM|INSERT\s+INTO|UPDATE|DELETE\b.*?\bFROM|TRUNCATE(?:\s+TABLE)?)\s+"
    rf"({_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})?)",
    re.IGNORECASE | re.DOTALL,
)
_BATCH = re.compile(
    r"\s*BEGIN\s+(?:UNLOGGED\s+|COUNTER\s+|LOGGED\s+)?BATCH\b(?:\s+USING\s+TIMESTAMP\s+\S+)?\s*",
    re.IGNORECASE,
)


def _identifier(text: str) -> str:
    """A CQL identifier as Cassandra reads it: quoted ones verbatim ("" is a quote), others lower-cased."""
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def table_of(cql: str) -> str:
    """The table a CQL statement reads or writes: `FROM x`, `INTO x`, `UPDATE x`, `DELETE ... FROM x`,
    `TRUNCATE x`; a batch's first statement's; "batch" for a batch whose first statement names none;
    NO_TABLE for anything else. A keyspace-qualified name keeps its keyspace ("system.local")."""
    batch = _BATCH.match(cql)
    if batch:
        match = _STATEMENT.match(cql, batch.end())
        return _qualified(match.group(1)) if match else "batch"
    match = _STATEMENT.match(cql)
    return _qualified(match.group(1)) if match else NO_TABLE


def _qualified(name: str) -> str:
    return ".".join(_identifier(part) for part in re.findall(_IDENTIFIER, name))


_table_by_query_id: dict[bytes, str] = {}  # prepared statements, for batches (which hold only their ids)


def remember_prepared(statement: Any) -> None:
    """Note a prepared statement's table by its id (CassandraSession.prepare calls this)."""
    if len(_table_by_query_id) < CACHE_MAX:
        _table_by_query_id[statement.query_id] = table_of(statement.query_string)


def statement_table(statement: Any) -> tuple[str, bool]:
    """(the table of `statement`, whether the answer may be cached by the statement object itself).

    A PreparedStatement or a CQL string is the same every time it is sent; a batch or a bound
    statement is a new object per request, so its table is found through its (first) prepared id."""
    if isinstance(statement, str):
        return table_of(statement), True
    entries = getattr(statement, "_statements_and_parameters", None)
    if entries is not None:  # BatchStatement: (is_prepared, query id or CQL, values) per statement
        if not entries:
            return "batch", False
        prepared, first, _ = entries[0]
        if prepared:
            return _table_by_query_id.get(first, "batch"), False
        table = table_of(first)
        return ("batch" if table == NO_TABLE else table), False
    prepared = getattr(statement, "prepared_statement", None)  # BoundStatement
    if prepared is not None:
        return _prepared_table(prepared), False
    query_id = getattr(statement, "query_id", None)  # PreparedStatement
    if query_id is not None:
        return _prepared_table(statement), True
    return table_of(getattr(statement, "query_string", "") or ""), False  # SimpleStatement


def _prepared_table(prepared: Any) -> str:
    table = _table_by_query_id.get(prepared.query_id)
    if table is None:
        table = table_of(prepared.query_string)
        if len(_table_by_query_id) < CACHE_MAX:
            _table_by_query_id[prepared.query_id] = table
    return table


_cassandra_by_statement: dict[tuple[str, Any], Any] = {}  # (route, PreparedStatement or CQL) -> child
_cassandra_by_table: dict[tuple[str, str], Any] = {}  # (route, table) -> child


def count_cassandra(statement: Any, requests: int = 1) -> None:
    """`requests` requests of `statement` sent for the current route."""
    route = ROUTE.get()
    child = _cassandra_by_statement.get((route, statement))
    if child is None:
        child = _cassandra_child(route, statement)
    child.inc(requests)


def _cassandra_child(route: str, statement: Any) -> Any:
    table, cacheable = statement_table(statement)
    key = (route, table)
    child = _cassandra_by_table.get(key)
    if child is None:
        child = CASSANDRA_REQUESTS.labels(route, table)
        _cassandra_by_table[key] = child
    if cacheable and len(_cassandra_by_statement) < CACHE_MAX:
        _cassandra_by_statement[route, statement] = child
    return child


# --- Redis: commands and round trips ----------------------------------------------------------
_redis_children: dict[str, tuple[Any, Any]] = {}


def count_redis(commands: int) -> None:
    """One round trip of `commands` commands for the current route."""
    route = ROUTE.get()
    children = _redis_children.get(route)
    if children is None:
        children = _redis_children[route] = (REDIS_COMMANDS.labels(route), REDIS_ROUND_TRIPS.labels(route))
    children[0].inc(commands)
    children[1].inc()


class CountingPipeline(Pipeline):
    """A pipeline that counts its commands when it sends them: one round trip for the whole stack."""

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.command_stack:
            count_redis(len(self.command_stack))  # a transaction's MULTI and EXEC are not counted
        return await super().execute(raise_on_error)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        count_redis(1)  # WATCH and the reads between it and MULTI, SCRIPT EXISTS before a pipeline's scripts
        return await super().immediate_execute_command(*args, **options)


class CountingRedis(Redis):
    """`redis.asyncio.Redis` counting each command and round trip for the current route.

    `execute_command` is where every command method goes; it hands back the coroutine of the real one
    (no extra coroutine frame per command). Pipelines count when executed. Connection set-up (HELLO,
    CLIENT SETINFO), health checks and retries after a dropped connection are not counted, nor are
    pub/sub subscriptions (the notification hub has its own client)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        count_redis(1)
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> CountingPipeline:
        return CountingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


# --- Kafka ------------------------------------------------------------------------------------
_kafka_children: dict[tuple[str, str], Any] = {}


def count_kafka(topic: str) -> None:
    """One message sent to `topic` for the current route."""
    route = ROUTE.get()
    key = (route, topic)
    child = _kafka_children.get(key)
    if child is None:
        child = _kafka_children[key] = KAFKA_MESSAGES.labels(route, topic)
    child.inc()


# --- CPU --------------------------------------------------------------------------------------
class CpuMeter:
    """Adds this process's CPU time to `photos_process_cpu_seconds_total{kind}` as it is used.

    A Counter rather than a collector reading the clock, so it works in multiprocess mode (each
    process adds to its own file, the scrape sums them): `run` adds every `interval` seconds, and the
    scraping process adds once more just before it answers, so its own figure is exact."""

    def __init__(self, kind: str) -> None:
        self._child = PROCESS_CPU.labels(kind)
        self._lock = threading.Lock()  # the scrape may flush from another thread
        self._counted = 0.0  # since process start: the first flush adds the start-up's CPU too

    def flush(self) -> None:
        with self._lock:
            now = time.process_time()
            delta, self._counted = now - self._counted, now
        if delta > 0:
            self._child.inc(delta)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.flush()

    @contextlib.asynccontextmanager
    async def running(self, interval: float = 1.0) -> AsyncIterator[CpuMeter]:
        task = asyncio.create_task(self.run(interval))
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.flush()


def exposition(cpu: CpuMeter | None = None) -> bytes:
    """The Prometheus text of this process, or of every process sharing PROMETHEUS_MULTIPROC_DIR."""
    if cpu is not None:
        cpu.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
