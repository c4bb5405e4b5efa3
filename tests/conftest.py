"""Test-wide settings: one keyspace and one topic prefix for the whole run, separate from a dev system.

The servers themselves (Cassandra, Kafka, Redis) are the real ones `photos-stack up` starts;
`make test` starts them before pytest. Tests isolate themselves with unique ids and names.
"""

from __future__ import annotations

import os
from pathlib import Path

TEST_ENV = {
    "PHOTOS_CASSANDRA_KEYSPACE": "photos_test",
    "PHOTOS_KAFKA_TOPIC_PREFIX": "photos-test.",
    "PHOTOS_STREAMS_APP_ID": "photos-test-streams",
    "PHOTOS_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
    # cheap hashing keeps the suite fast; production costs are the defaults
    "PHOTOS_ARGON2_TIME_COST": "1",
    "PHOTOS_ARGON2_MEMORY_KIB": "8192",
    "PHOTOS_SECRET_KEY": "test-secret",
    # small enough that the e2e tests cross them: 4 followers make a celebrity, a ranked snapshot holds 8
    "PHOTOS_FEED_CELEBRITY_FOLLOWERS": "4",
    "PHOTOS_FEED_RANK_WINDOW": "8",
    "PHOTOS_TRENDING_REFRESH_S": "2",  # trending rankings are re-ranked every 2 s instead of 30
    "PHOTOS_MEDIA_DIR": str(Path(__file__).resolve().parent.parent / ".stack" / "test-media"),
}
for _name, _value in TEST_ENV.items():
    os.environ.setdefault(_name, _value)



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

    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()
