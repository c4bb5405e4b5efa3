"""Test-wide settings: one keyspace and one topic prefix for the whole run, separate from a dev system.

The servers themselves (Cassandra, Kafka, Redis) are the real ones `photos-stack up` starts;
`make test` starts them before pytest. Tests isolate themselves with unique ids and names.

Every TEST_ENV entry is forced, whatever the shell exports: a developer who exported
`PHOTOS_CASSANDRA_KEYSPACE=photos` (or the topic prefix, the consumer group, the media directory)
for their dev system still gets `photos_test`, `photos-test.` and `photos-test-streams`, so a test run
never writes into, consumes from or sweeps the dev system's data. The other entries are what the
tests' assertions and speed depend on, so a shell value would only make them fail or crawl.
`make test` and `.ci/run` export none of these; forcing changes nothing there.
tests/unit/test_isolation.py runs a pytest session with the dev values exported to prove it.

Deliberately not forced (not in TEST_ENV): where the servers are (PHOTOS_CASSANDRA_HOSTS and _PORT,
PHOTOS_KAFKA_BOOTSTRAP, PHOTOS_REDIS_URL). They follow the shell, so the tests reach a stack started on
other ports; inside those servers the names above and unique ids keep the tests apart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TEST_ENV = {
    # isolation: the test keyspace, topics and consumer group, never the dev system's
    "PHOTOS_CASSANDRA_KEYSPACE": "photos_test",
    "PHOTOS_KAFKA_TOPIC_PREFIX": "photos-test.",
    "PHOTOS_STREAMS_APP_ID": "photos-test-streams",
    # uploads land here, never among the dev system's media
    "PHOTOS_MEDIA_DIR": str(Path(__file__).resolve().parent.parent / ".stack" / "test-media"),
    "PHOTOS_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",  # the production level: what the tests prove holds at it
    # cheap hashing keeps the suite fast; production costs are the defaults
    "PHOTOS_ARGON2_TIME_COST": "1",
    "PHOTOS_ARGON2_MEMORY_KIB": "8192",
    "PHOTOS_SECRET_KEY": "test-secret",  # the API refuses the development default (docs/operations.md)
    # small enough that the e2e tests cross them: 4 followers make a celebrity, a ranked snapshot holds 8
    "PHOTOS_FEED_CELEBRITY_FOLLOWERS": "4",
    "PHOTOS_FEED_RANK_WINDOW": "8",
    "PHOTOS_TRENDING_REFRESH_S": "2",  # trending rankings are re-ranked every 2 s instead of 30
    # the session's API logs no impressions, so the per-route budgets count what a request itself costs; the
    # ranking tests start APIs of their own that log every snapshot
    "PHOTOS_RANKING_IMPRESSION_SAMPLE": "0",
}
# PHOTOS_TEST_LANE=<a-z0-9, up to 8>: a run of its own beside another on the same servers (two worktrees
# testing at once): its own keyspace, topics, consumer group and media directory, so neither run's stream
# worker consumes the other's events
LANE = os.environ.get("PHOTOS_TEST_LANE", "")
if LANE:
    if not re.fullmatch(r"[a-z0-9]{1,8}", LANE):
        raise SystemExit(f"PHOTOS_TEST_LANE={LANE!r}: use up to 8 lowercase letters and digits")
    TEST_ENV["PHOTOS_CASSANDRA_KEYSPACE"] += f"_{LANE}"
    TEST_ENV["PHOTOS_KAFKA_TOPIC_PREFIX"] = f"photos-test-{LANE}."
    TEST_ENV["PHOTOS_STREAMS_APP_ID"] += f"-{LANE}"
    TEST_ENV["PHOTOS_MEDIA_DIR"] += f"-{LANE}"
os.environ.update(TEST_ENV)  # forced, not setdefault: see the module docstring


import pytest  # noqa: E402

from app.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    """The test keyspace migrated and the test topics created, once per run."""
    from app.storage.migrate import prepare_storage

    prepare_storage(settings)
    return settings


@pytest.fixture(scope="session")
async def cass(migrated: Settings):
    """A Cassandra session on the test keyspace, for checking what the services wrote."""
    from app.storage import cassandra

    cluster, session = await cassandra.connect(migrated, migrated.cassandra_keyspace)
    yield session
    await cassandra.shutdown(cluster)


@pytest.fixture(scope="session")
async def storage(cass):
    """Every table owner (app/wiring.py), prepared on the test session."""
    from app.wiring import Storage

    return await Storage.prepare(cass)


@pytest.fixture(scope="session")
async def redis_client(settings: Settings):
    from redis.asyncio import Redis

    from app.client_security import redis_options

    client = Redis.from_url(settings.redis_url, **redis_options(settings))
    yield client
    await client.aclose()
