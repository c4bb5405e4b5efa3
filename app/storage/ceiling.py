"""The driver-ceiling tables: what the bare driver does on this machine, for benchmarks to compare against.

loadtest/driver_ceiling.py and loadtest/feed_benchmark.py execute these statements on purpose through the
driver itself (`execute_concurrent_with_args`) and through the asyncio bridge, so this owner hands out its
prepared statements instead of executing them. Keyspace `photos_bench` is the benchmarks' own, never the
app's: `kv`, a plain key-value table, and `feed_items`, shaped like the home feed's table
(cql/migrations/0004_feed.cql) and written with the feed owner's own insert (app/storage/feed.py).

Synchronous: the benchmarks hold a blocking driver Session.
"""

from __future__ import annotations

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from app.storage.feed import INSERT_ITEM

KEYSPACE = "photos_bench"
DDL_TIMEOUT_S = 60


class CeilingTables:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, replication: str, *, feed_items: bool = False) -> CeilingTables:
        """The keyspace and `kv`, and with `feed_items` the feed-shaped table (each only if missing)."""
        run = self._session.execute
        run(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {replication}")
        run(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.kv (k bigint PRIMARY KEY, v blob)", timeout=DDL_TIMEOUT_S)
        if feed_items:
            run(
                f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.feed_items (user_id bigint, post_id bigint,"
                " author_id bigint, PRIMARY KEY (user_id, post_id)) WITH CLUSTERING ORDER BY (post_id DESC)"
                " AND compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 259200",
                timeout=DDL_TIMEOUT_S,
            )
        return self

    def prepare(self, *, feed_items: bool = False) -> CeilingTables:
        """Prepared in the keyspace whatever the session's own keyspace is."""
        self.kv_write: PreparedStatement = self._prepare("INSERT INTO kv (k, v) VALUES (?, ?)")  # (k, v)
        self.kv_read: PreparedStatement = self._prepare("SELECT v FROM kv WHERE k = ?")  # (k,)
        if feed_items:  # (user_id, post_id, author_id, ttl), as fan-out writes a row
            self.feed_item_write: PreparedStatement = self._prepare(INSERT_ITEM)
        return self

    def _prepare(self, cql: str) -> PreparedStatement:
        return self._session.prepare(cql, keyspace=KEYSPACE)
