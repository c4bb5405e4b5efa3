"""Cassandra's own tables, as the tools read them: per-table size estimates and coordinator request counts.

Node-local views (`system.table_estimates`, `system_views.*`): each is asked of the node that keeps it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import NamedTuple

from cassandra import InvalidRequest

from app.storage.cassandra import CassandraSession


class TableEstimate(NamedTuple):
    table: str
    mean_partition_size: int
    partitions: int


async def size_estimates(cass: CassandraSession, keyspace: str, local_dc: str) -> tuple[str, list[TableEstimate]]:
    """(where the figures come from, every up node of the local DC's estimate per table and range).

    Each node is asked directly for its `local_primary` ranges (together: the ring, once). Cassandra before
    4.0 has only `system.size_estimates` (primary ranges), used when the newer table is missing."""
    session = cass.session
    hosts = [
        host for host in session.cluster.metadata.all_hosts()
        if host.is_up is not False and host.datacenter == local_dc
    ]
    loop = asyncio.get_running_loop()

    def ask(host, cql: str) -> list:
        return list(session.execute(cql, (keyspace,), host=host))

    try:
        cql = ("SELECT table_name, range_type, mean_partition_size, partitions_count "
               "FROM system.table_estimates WHERE keyspace_name = %s")
        replies = await asyncio.gather(*(loop.run_in_executor(None, ask, host, cql) for host in hosts))
        source = f"system.table_estimates, local_primary ranges of {len(hosts)} node(s)"
        rows = [row for reply in replies for row in reply if row.range_type == "local_primary"]
    except InvalidRequest:  # no table_estimates: Cassandra 3.x
        cql = ("SELECT table_name, mean_partition_size, partitions_count "
               "FROM system.size_estimates WHERE keyspace_name = %s")
        replies = await asyncio.gather(*(loop.run_in_executor(None, ask, host, cql) for host in hosts))
        source = f"system.size_estimates, primary ranges of {len(hosts)} node(s)"
        rows = [row for reply in replies for row in reply]
    return source, [TableEstimate(row.table_name, row.mean_partition_size or 0, row.partitions_count or 0)
                    for row in rows]


async def coordinator_counts(cass: CassandraSession, keyspace: str) -> dict[str, Counter]:
    """The coordinator's request counts per table of a keyspace ({"read": ..., "write": ...}), since it started."""
    counts = {}
    for kind in ("read", "write"):
        rows = await cass.rows(
            f"SELECT table_name, count FROM system_views.coordinator_{kind}_latency WHERE keyspace_name = %s",
            (keyspace,),
        )
        counts[kind] = Counter({row.table_name: row.count for row in rows})
    return counts
