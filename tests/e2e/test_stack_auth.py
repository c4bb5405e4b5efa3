"""The whole system with authentication on (docs/operations.md#credentials-and-tls).

A stack of its own (tests/e2e/private_stack.py), launched by `photos-stack up` with PHOTOS_STACK_AUTH=1:
Cassandra with PasswordAuthenticator and CassandraAuthorizer (the launcher makes the app's role and takes
the well-known password away from the default superuser), Redis with the default user off and an ACL user
for the app, Kafka with SASL/SCRAM on its only listener. The API and the stream worker are given the
credentials through the settings, and a post must travel the whole way: API -> Kafka -> worker ->
Cassandra and Redis -> a follower's feed. Clients without credentials, or with a wrong password, are
refused by each server. One stack for the module (one Cassandra start, ~30-60 s).
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cassandra.cluster import NoHostAvailable
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError

from app.client_security import kafka_options, redis_options
from app.settings import Settings
from app.storage.cassandra import PING, make_cluster
from infra import probes
from infra.services import DEFAULT_SUPERUSER_PASSWORD, SUPERUSER
from tests.e2e.client.feed import active_reader, until_in_feed
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register
from tests.e2e.private_stack import PrivateStack

pytestmark = pytest.mark.own_stack

CREDENTIALS = {
    "PHOTOS_STACK_AUTH": "1",
    "PHOTOS_CASSANDRA_USERNAME": "photos_app",
    "PHOTOS_CASSANDRA_PASSWORD": "cassandra-test-password",
    "PHOTOS_REDIS_USERNAME": "photos_app",
    "PHOTOS_REDIS_PASSWORD": "redis-test-password",
    "PHOTOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "PHOTOS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "PHOTOS_KAFKA_USERNAME": "photos_app",
    "PHOTOS_KAFKA_PASSWORD": "kafka-test-password",
}


@pytest.fixture(scope="module")
def stack():
    stack = PrivateStack("auth", PHOTOS_API_WORKERS="1", **CREDENTIALS)  # one API process: a quicker start
    stack.up()
    yield stack
    stack.down()


def cassandra_query(settings: Settings) -> str:
    """The node's release version, read by a client made from `settings`; raises what the driver raises."""
    cluster = make_cluster(settings)
    try:
        return cluster.connect().execute(PING).one().release_version
    finally:
        cluster.shutdown()


def client_settings(stack: PrivateStack, **changes) -> Settings:
    """The stack's settings as a client sees them (the launcher's PHOTOS_STACK_AUTH check left out), changed."""
    return dataclasses.replace(stack.settings, stack_auth=False, **changes)


async def test_a_post_reaches_a_followers_feed_through_every_authenticated_server(stack, stack_http):
    await stack.until_api_ready(stack_http)
    async with stack_http.get(f"{stack.ops_url}/readyz") as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["checks"] == {"cassandra": "ok", "redis": "ok", "kafka": "ok"}
    author = await register(stack_http, stack.api_url)
    reader = await active_reader(stack_http, stack.api_url)
    await follow(stack_http, stack.api_url, reader, author)
    post_id = await post(stack_http, stack.api_url, author, caption="over SASL, to an authenticated Cassandra")
    # the fan-out is the stream worker's: it consumed the event over SASL and wrote the feed with its own logins
    await until_in_feed(stack_http, stack.api_url, reader, post_id, timeout=60)


def test_cassandra_serves_the_apps_role(stack):
    assert cassandra_query(stack.settings)


@pytest.mark.parametrize("changes", [
    {"cassandra_username": "", "cassandra_password": ""},
    {"cassandra_password": "wrong password"},
    {"cassandra_username": SUPERUSER, "cassandra_password": DEFAULT_SUPERUSER_PASSWORD},  # the launcher changed it
], ids=["no credentials", "wrong password", "default superuser password"])
def test_cassandra_refuses_a_client_without_the_right_password(stack, changes):
    with pytest.raises(NoHostAvailable) as refused:
        cassandra_query(client_settings(stack, **changes))
    assert "authenticat" in str(refused.value).lower()


async def redis_ping(settings: Settings) -> bool:
    client = Redis.from_url(settings.redis_url, socket_timeout=5, **redis_options(settings))
    try:
        return await client.ping()
    finally:
        await client.aclose()


async def test_redis_serves_the_apps_acl_user(stack):
    assert await redis_ping(stack.settings)


@pytest.mark.parametrize("changes", [
    {"redis_username": "", "redis_password": ""},
    {"redis_password": "wrong-password"},
    {"redis_username": "", "redis_password": "redis-test-password"},  # the default user is off
], ids=["no credentials", "wrong password", "default user"])
async def test_redis_refuses_a_client_without_the_right_password(stack, changes):
    with pytest.raises(AuthenticationError):
        await redis_ping(client_settings(stack, **changes))


async def test_kafka_answers_only_a_client_that_logs_in(stack):
    settings = stack.settings
    host, port = settings.kafka_bootstrap.split(":")
    wrong = client_settings(stack, kafka_password="wrong-password")
    answers = await asyncio.gather(
        probes.kafka_answers(host, int(port), **kafka_options(settings)),
        probes.kafka_answers(host, int(port)),  # PLAINTEXT against a SASL listener
        probes.kafka_answers(host, int(port), **kafka_options(wrong)),
    )
    assert answers == [True, False, False]
