"""The cost metrics' bookkeeping (app/metrics.py): which table a statement is counted for, and for which route."""

import asyncio
import time

import pytest
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement, SimpleStatement

from app import metrics
from app.metrics import ROUTE, count_cassandra, count_kafka, count_redis, statement_table, table_of


@pytest.mark.parametrize(
    ("cql", "table"),
    [
        ("SELECT user_id, liked_at FROM likes WHERE user_id = ? AND post_id = ?", "likes"),
        ("select count(*) as n from Post_Likers where post_id = ?", "post_likers"),
        ('SELECT "from", "to" FROM edges WHERE a = ?', "edges"),  # a quoted column named like the keyword
        ("SELECT release_version FROM system.local", "system.local"),
        ("SELECT * FROM ks . tbl", "ks.tbl"),
        ("INSERT INTO likes (user_id, post_id) VALUES (?, ?) IF NOT EXISTS", "likes"),
        ("INSERT INTO feed_items(user_id, post_id) VALUES (?, ?)", "feed_items"),
        ('INSERT INTO "Quoted""Name" (a) VALUES (?)', 'Quoted"Name'),
        ("UPDATE posts USING TIMESTAMP ? SET like_count = ? WHERE post_id = ?", "posts"),
        ("\n  UPDATE\n posts SET like_bucket = ? WHERE post_id = ?", "posts"),
        ("DELETE FROM likes WHERE user_id = ? AND post_id = ? IF EXISTS", "likes"),
        ("DELETE latest_actors, actor_count FROM notification_groups WHERE user_id = ?", "notification_groups"),
        ("TRUNCATE TABLE sessions", "sessions"),
        ("BEGIN UNLOGGED BATCH INSERT INTO a (x) VALUES (1); UPDATE b SET x = 1 WHERE k = 2; APPLY BATCH", "a"),
        ("begin batch using timestamp 5 delete from c where k = 1; apply batch", "c"),
        ("BEGIN BATCH APPLY BATCH", "batch"),
        ("CREATE TABLE t (k int PRIMARY KEY)", "other"),
        ("USE photos", "other"),
        ("", "other"),
    ],
)
def test_the_table_of_a_statement_is_read_from_its_cql(cql, table):
    assert table_of(cql) == table


def prepared(cql: str, query_id: bytes) -> PreparedStatement:
    """A PreparedStatement as the driver returns it, without a cluster (only what the metrics read)."""
    statement = PreparedStatement.__new__(PreparedStatement)
    statement.query_id = query_id
    statement.query_string = cql
    statement.column_metadata = []
    return statement


def test_prepared_bound_batch_and_simple_statements_are_counted_for_their_table():
    likes = prepared("INSERT INTO likes (user_id, post_id) VALUES (?, ?)", b"id-likes")
    counts = prepared("UPDATE posts SET like_count = ? WHERE post_id = ?", b"id-posts")
    metrics.remember_prepared(counts)
    assert statement_table(likes) == ("likes", True)
    assert statement_table("SELECT * FROM users WHERE user_id = 1") == ("users", True)
    assert statement_table(SimpleStatement("DELETE FROM follows WHERE a = 1")) == ("follows", False)
    bound = BoundStatement.__new__(BoundStatement)
    bound.prepared_statement = likes
    assert statement_table(bound) == ("likes", False)

    batch = BatchStatement()
    batch._add_statement_and_params(True, counts.query_id, ())  # what BatchStatement.add stores for one
    batch._add_statement_and_params(True, likes.query_id, ())
    assert statement_table(batch) == ("posts", False)  # the first statement's, known by its id
    unknown = BatchStatement()
    unknown._add_statement_and_params(True, b"never prepared here", ())
    assert statement_table(unknown) == ("batch", False)
    assert statement_table(BatchStatement()) == ("batch", False)


def sample(metric: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_counts_go_to_the_route_in_the_context_and_background_outside_any():
    statement = prepared("SELECT * FROM unit_metrics_table WHERE k = ?", b"id-unit")
    route = "PUT /v1/unit/{id}"

    async def request() -> None:
        ROUTE.set(route)
        count_cassandra(statement)
        count_cassandra(statement)  # the cached child
        count_redis(3)
        count_kafka("unit.topic")
        await asyncio.create_task(spawned())  # a task the handler starts inherits its route

    async def spawned() -> None:
        count_cassandra(statement, 5)

    asyncio.run(request())
    count_cassandra(statement)  # outside: the context of the request did not leak
    assert sample("photos_cassandra_requests_total", route=route, table="unit_metrics_table") == 7
    assert sample("photos_cassandra_requests_total", route="background", table="unit_metrics_table") == 1
    assert sample("photos_redis_commands_total", route=route) == 3
    assert sample("photos_redis_round_trips_total", route=route) == 1
    assert sample("photos_kafka_messages_total", route=route, topic="unit.topic") == 1


def test_the_cpu_meter_adds_this_process_cpu_once():
    meter = metrics.CpuMeter("unit")
    meter.flush()
    first = sample("photos_process_cpu_seconds_total", kind="unit")
    sum(i * i for i in range(200_000))  # some CPU
    meter.flush()
    second = sample("photos_process_cpu_seconds_total", kind="unit")
    assert first > 0  # from the process start
    assert second > first
    assert second <= time.process_time() + 1e-6
