from __future__ import annotations

import pytest

from app import cassandra
from app.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
async def cass(migrated: Settings):
    cluster, session = await cassandra.connect(migrated, migrated.cassandra_keyspace)
    yield session
    await cassandra.shutdown(cluster)
