"""The asyncio bridge over the real driver (also run with scylla-driver: see infra/check-scylla-driver.sh)."""

import asyncio
import uuid

import pytest
from cassandra import InvalidRequest

from app.storage.cassandra import CassandraSession

TABLE = "bridge_probe"


@pytest.fixture(scope="module")
async def probe_table(cass: CassandraSession):
    await cass.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (pk text, ck int, v text, PRIMARY KEY (pk, ck))", timeout=60
    )
    return TABLE


async def test_prepared_writes_and_reads_round_trip(cass, probe_table):
    pk = uuid.uuid4().hex
    insert = await cass.prepare(f"INSERT INTO {probe_table} (pk, ck, v) VALUES (?, ?, ?)")
    select = await cass.prepare(f"SELECT ck, v FROM {probe_table} WHERE pk = ?")
    await asyncio.gather(*(cass.execute(insert, (pk, i, f"v{i}")) for i in range(50)))
    rows = await cass.rows(select, (pk,))
    assert [(r.ck, r.v) for r in rows] == [(i, f"v{i}") for i in range(50)]


async def test_paging_state_walks_a_partition_page_by_page(cass, probe_table):
    pk = uuid.uuid4().hex
    insert = await cass.prepare(f"INSERT INTO {probe_table} (pk, ck, v) VALUES (?, ?, ?)")
    select = await cass.prepare(f"SELECT ck FROM {probe_table} WHERE pk = ?")
    await asyncio.gather(*(cass.execute(insert, (pk, i, "x")) for i in range(25)))
    seen, paging_state = [], None
    while True:
        page = await cass.execute(select, (pk,), fetch_size=10, paging_state=paging_state)
        seen += [r.ck for r in page.current_rows]
        paging_state = page.paging_state
        if paging_state is None:
            break
    assert seen == list(range(25))


async def test_lightweight_transactions_report_whether_they_applied(cass, probe_table):
    pk = uuid.uuid4().hex
    claim = await cass.prepare(f"INSERT INTO {probe_table} (pk, ck, v) VALUES (?, 0, ?) IF NOT EXISTS")
    results = await asyncio.gather(*(cass.execute(claim, (pk, f"writer{i}")) for i in range(5)))
    assert sum(r.was_applied for r in results) == 1


async def test_driver_errors_reach_the_awaiting_coroutine(cass):
    with pytest.raises(InvalidRequest):
        await cass.execute("SELECT * FROM no_such_table_anywhere")


async def test_the_event_loop_keeps_running_while_many_requests_are_in_flight(cass, probe_table):
    """Other coroutines run while requests wait on the driver: a ticker keeps ticking and sees many of the
    burst's requests in flight at once. A bridge that blocked on the driver would finish each request
    before the next began (never more than one in flight) and starve the ticker. Counted, not timed: a
    loaded 2-core machine stretches every gap, but cannot fake concurrency."""
    pk = uuid.uuid4().hex
    insert = await cass.prepare(f"INSERT INTO {probe_table} (pk, ck, v) VALUES (?, ?, ?)")
    in_flight, ticks_with_requests_in_flight, most_seen_by_ticker = 0, 0, 0

    async def write(i: int) -> None:
        nonlocal in_flight
        in_flight += 1
        try:
            await cass.execute(insert, (pk, i, "x"))
        finally:
            in_flight -= 1

    async def ticker():
        nonlocal ticks_with_requests_in_flight, most_seen_by_ticker
        while True:
            await asyncio.sleep(0.001)
            if in_flight:
                ticks_with_requests_in_flight += 1
                most_seen_by_ticker = max(most_seen_by_ticker, in_flight)

    task = asyncio.create_task(ticker())
    await asyncio.gather(*(write(i) for i in range(2000)))
    task.cancel()
    assert ticks_with_requests_in_flight >= 10, ticks_with_requests_in_flight
    assert most_seen_by_ticker >= 100, most_seen_by_ticker
