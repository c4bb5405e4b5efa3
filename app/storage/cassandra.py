"""The Cassandra driver bridged to asyncio.

The driver runs requests on its own I/O thread (libev reactor) and completes a
ResponseFuture there; `CassandraSession.execute` hands the result to the event loop
with `call_soon_threadsafe`, so no coroutine ever blocks on the driver. A semaphore
bounds the requests in flight per process, which keeps the driver's queues short;
a request waits for a slot at most `cassandra_slot_wait_s` and is then shed with
`Unavailable` (503 + Retry-After), and the query itself has the driver's request
timeout, so overload is answered within a bounded time instead of queueing forever.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import cassandra.query
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, ResultSet, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import PreparedStatement, SimpleStatement

from app.client_security import cassandra_options
from app.errors import Unavailable
from app.metrics import count_cassandra, remember_prepared
from app.settings import Settings

try:  # the libev reactor is the driver's fast one; fall back where the wheel lacks it
    from cassandra.io.libevreactor import LibevConnection as _Connection
except ImportError:  # pragma: no cover - depends on the installed wheel
    from cassandra.io.asyncorereactor import AsyncoreConnection as _Connection


_ROW_CLASSES_MAX = 4096
_row_classes: dict[tuple, type] = {}
_build_namedtuple = cassandra.query.namedtuple


def _cached_namedtuple(typename: str, field_names, *args: Any, **kwargs: Any) -> type:
    """`collections.namedtuple`, once per distinct column list.

    The driver's default row factory (`named_tuple_factory`, which `ResultSet.was_applied` requires)
    builds a new namedtuple class for every result set: ~45 µs of the driver's I/O thread per
    response, about a tenth of an API process's CPU under a like load. The columns of prepared
    statements repeat, so their classes are built once here; thread-safe under the GIL (two
    threads racing build the same class twice, which is harmless)."""
    names = tuple(field_names)
    key = (typename, names, args, tuple(sorted(kwargs.items())))
    row_class = _row_classes.get(key)
    if row_class is None:
        row_class = _build_namedtuple(typename, names, *args, **kwargs)
        if len(_row_classes) < _ROW_CLASSES_MAX:  # ad-hoc statements cannot grow it without bound
            _row_classes[key] = row_class
    return row_class


cassandra.query.namedtuple = _cached_namedtuple  # the name named_tuple_factory looks up at each call


def make_cluster(settings: Settings, **profile_overrides: Any) -> Cluster:
    """A driver Cluster configured from settings (token-aware, local-DC round robin), with the settings'
    credentials and TLS (app/client_security.py)."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)),
        consistency_level=ConsistencyLevel.name_to_value[settings.cassandra_consistency],
        serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
        request_timeout=settings.cassandra_request_timeout_s,
        **profile_overrides,
    )
    return Cluster(
        contact_points=list(settings.cassandra_hosts),
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connection_class=_Connection,
        connect_timeout=settings.cassandra_connect_timeout_s,
        # the driver's default waits up to 10 minutes between attempts: a node back from a crash would
        # go unused that long; capped, every process is serving again within seconds of its return
        reconnection_policy=ExponentialReconnectionPolicy(0.5, settings.cassandra_reconnect_max_delay_s),
        protocol_version=5,
        **cassandra_options(settings),
    )


PING = "SELECT release_version FROM system.local"  # the cheapest query a node answers (readiness probes)
SHED_RETRY_AFTER_S = 1


class Overloaded(Unavailable):
    """Every slot stayed taken for the whole wait: the request is shed before anything is sent (503)."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"too many requests are waiting for the database (none freed within {wait_s:g} s);"
                         " retry shortly", retry_after_s=SHED_RETRY_AFTER_S)


class CassandraSession:
    """An asyncio face on a driver Session: prepare once, execute without blocking."""

    def __init__(self, session: Session, max_in_flight: int, slot_wait_s: float | None = None) -> None:
        self.session = session
        self._slots = asyncio.Semaphore(max_in_flight)
        self._slot_wait_s = slot_wait_s  # None: wait as long as it takes (tools, benchmarks)
        self._handoff: _Handoff | None = None
        self._ping: PreparedStatement | None = None

    def _handoff_for(self, loop: asyncio.AbstractEventLoop) -> _Handoff:
        if self._handoff is None or self._handoff.loop is not loop:
            self._handoff = _Handoff(loop)
        return self._handoff

    async def prepare(self, cql: str) -> PreparedStatement:
        """Prepare a statement; call once per statement at start-up, never per request."""
        # the driver has no asynchronous prepare: keep its blocking round trip off the loop
        prepared = await asyncio.get_running_loop().run_in_executor(None, self.session.prepare, cql)
        remember_prepared(prepared)  # batches name their statements by id: the metrics find the table by it
        return prepared

    async def execute(
        self,
        statement: PreparedStatement | str,
        params: Sequence[Any] | None = None,
        *,
        fetch_size: int | None = None,
        paging_state: bytes | None = None,
        timeout: float | None = None,
        consistency: int | None = None,
    ) -> ResultSet:
        """Run one statement and return its first page (`current_rows`, `paging_state`).

        `consistency` overrides the profile's level for this request (e.g. LOCAL_SERIAL, to read
        what a conditional write committed). Overloaded (503) when no slot frees up within the wait."""
        await self._take_slot()
        try:
            return await self._send(statement, params, fetch_size, paging_state, timeout, consistency)
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        if self._slot_wait_s is None or not self._slots.locked():
            await self._slots.acquire()  # a free slot is taken at once, without a timer
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), self._slot_wait_s)
        except TimeoutError:
            raise Overloaded(self._slot_wait_s) from None

    async def _send(self, statement: PreparedStatement | str, params: Sequence[Any] | None, fetch_size: int | None,
                    paging_state: bytes | None, timeout: float | None, consistency: int | None) -> ResultSet:
        """Send one statement (a slot held) and wait for its first page; the driver's request timeout bounds it."""
        loop = asyncio.get_running_loop()
        count_cassandra(statement)  # sent now, for the current route (app/metrics.py)
        kwargs: dict[str, Any] = {}
        if paging_state is not None:
            kwargs["paging_state"] = paging_state
        if timeout is not None:
            kwargs["timeout"] = timeout
        if fetch_size is not None or consistency is not None:
            if isinstance(statement, PreparedStatement):
                bound, values = statement.bind(params or ()), None
            else:  # ad-hoc CQL (tests, tools): its values travel beside it
                bound, values = SimpleStatement(statement), params
            if fetch_size is not None:
                bound.fetch_size = fetch_size
            if consistency is not None:
                bound.consistency_level = consistency
            future = self.session.execute_async(bound, values, **kwargs)
        else:
            future = self.session.execute_async(statement, params, **kwargs)
        return await self._handoff_for(loop).track(future, ResultSet)

    async def execute_many(self, statement: PreparedStatement, params: Sequence[Sequence[Any]], concurrency: int):
        """Run one statement for many parameter tuples, at most `concurrency` in flight; raise the first error.

        For bulk work (feed fan-out): the driver's own `execute_concurrent_with_args` runs in a worker
        thread and the loop waits on a single future, which costs far less per statement than one
        asyncio hand-off each. Not bounded by the per-process semaphore: callers bound their calls."""
        loop = asyncio.get_running_loop()
        if not isinstance(params, Sequence):
            params = list(params)
        if params:
            count_cassandra(statement, len(params))  # here: the worker thread does not see the route
        await loop.run_in_executor(
            None,
            lambda: execute_concurrent_with_args(
                self.session, statement, params, concurrency=concurrency, raise_on_first_error=True
            ),
        )

    async def ping(self, timeout: float) -> None:
        """One cheap round trip to a coordinator (readiness checks); prepared on first use, then reused.

        It takes no slot: an overloaded process still answers its readiness probe from Cassandra's state (a
        load balancer that pulled every busy process out would turn overload into an outage)."""
        if self._ping is None:
            self._ping = await self.prepare(PING)
        await self._send(self._ping, None, None, None, timeout, None)

    async def rows(
        self, statement: PreparedStatement | str, params: Sequence[Any] | None = None, *, consistency: int | None = None
    ) -> list:
        return (await self.execute(statement, params, consistency=consistency)).current_rows

    async def scan(
        self, statement: PreparedStatement, page_rows: int, params: Sequence[Any] | None = None
    ) -> AsyncIterator[tuple[int, list]]:
        """(the microsecond time the page was read, its rows) of each page of an unbounded scan."""
        paging_state = None
        while True:
            read_at = time.time_ns() // 1000
            page = await self.execute(statement, params, fetch_size=page_rows, paging_state=paging_state)
            yield read_at, page.current_rows
            paging_state = page.paging_state
            if paging_state is None:
                return

    async def all_rows(
        self, statement: PreparedStatement, params: Sequence[Any] | None = None, *, fetch_size: int = 1000
    ) -> list:
        """Every row of a bounded query, fetched page by page (each page one round trip)."""
        rows: list = []
        paging_state = None
        while True:
            page = await self.execute(statement, params, fetch_size=fetch_size, paging_state=paging_state)
            rows += page.current_rows
            paging_state = page.paging_state
            if paging_state is None:
                return rows

    async def one(self, statement: PreparedStatement | str, params: Sequence[Any] | None = None):
        rows = await self.rows(statement, params)
        return rows[0] if rows else None


class _Handoff:
    """Carries driver completions from the I/O thread to one event loop.

    Completions queue up in a deque and the loop is woken once per burst rather than once per
    response: `call_soon_threadsafe` writes to the loop's self-pipe, and at thousands of
    responses a second those system calls are a large share of the bridge's cost.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._done: deque[tuple[asyncio.Future, bool, Any]] = deque()
        self._wakeup_pending = False

    def track(self, response_future, make_result) -> asyncio.Future:
        result: asyncio.Future = self.loop.create_future()

        def on_success(rows: Any) -> None:  # driver I/O thread
            self._complete(result, True, make_result(response_future, rows))

        def on_error(exc: BaseException) -> None:  # driver I/O thread
            self._complete(result, False, exc)

        response_future.add_callbacks(on_success, on_error)
        return result

    def _complete(self, result: asyncio.Future, ok: bool, value: Any) -> None:
        self._done.append((result, ok, value))
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:  # event loop thread
        # reset before popping: a completion appended from now on either gets popped below or
        # schedules another drain, so none is left waiting
        self._wakeup_pending = False
        while self._done:
            result, ok, value = self._done.popleft()
            if result.done():  # the awaiting coroutine was cancelled
                continue
            if ok:
                result.set_result(value)
            else:
                result.set_exception(value)


async def connect(settings: Settings, keyspace: str | None = None, *, slot_wait_s: float | None = None
                  ) -> tuple[Cluster, CassandraSession]:
    """Connect without blocking the loop (the driver's connect is synchronous). `slot_wait_s`: how long a
    request may wait for an in-flight slot before it is shed (the API's requests); None waits (workers, tools).

    A failed connection shuts its Cluster down (its threads and sockets with it), so a caller that
    retries until Cassandra is back leaks nothing."""
    cluster = make_cluster(settings)
    loop = asyncio.get_running_loop()
    try:
        session = await loop.run_in_executor(None, cluster.connect, keyspace)
    except BaseException:
        await loop.run_in_executor(None, cluster.shutdown)
        raise
    return cluster, CassandraSession(session, settings.cassandra_max_in_flight, slot_wait_s)


async def shutdown(cluster: Cluster) -> None:
    await asyncio.get_running_loop().run_in_executor(None, cluster.shutdown)
