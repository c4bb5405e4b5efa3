from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration



@pytest.fixture(scope="session")
async def events(migrated):
    """A started EventPublisher on the test topics."""
    from app.events import EventPublisher

    publisher = EventPublisher(migrated)
    await publisher.start()
    await publisher.wait_connected(30)
    yield publisher
    await publisher.stop()
