"""Fixtures of the integration tests: an event publisher on the test topics, the repositories and like
counts several modules use, and the media stores (a local directory, and S3 as moto's standalone server
over real HTTP) that several modules run against."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from app.media.store import LocalMediaStore, MediaStore, S3MediaStore
from app.storage.like_counts import LikeCounts
from app.storage.likes import LikeRepository
from app.storage.posts import PostRepository

pytestmark = pytest.mark.integration

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "x"}


@pytest.fixture(scope="session")
async def events(migrated):
    """A started EventPublisher on the test topics."""
    from app.events import EventPublisher

    publisher = EventPublisher(migrated)
    await publisher.start()
    await publisher.wait_connected(30)
    yield publisher
    await publisher.stop()


@pytest.fixture(scope="module")
async def likes(cass):
    return await LikeRepository(cass).prepare()


@pytest.fixture(scope="module")
async def posts(cass):
    return await PostRepository(cass).prepare()


@pytest.fixture(scope="module")
async def counts(settings, redis_client):
    return LikeCounts.for_settings(settings, redis_client)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one, no race
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any; set them so botocore never looks for real ones on this machine
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def s3_store(moto_endpoint: str, aws_credentials: None) -> AsyncIterator[S3MediaStore]:
    """A media store on a new bucket of its own."""
    media = S3MediaStore(f"media-{secrets.token_hex(6)}", "us-east-1", moto_endpoint)
    await media.ensure_bucket()
    yield media
    await media.close()


@pytest.fixture
async def local_store(tmp_path: Path) -> AsyncIterator[LocalMediaStore]:
    media = LocalMediaStore(tmp_path / "media", "http://api.test")
    yield media
    await media.close()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> MediaStore:
    """Each media store in turn: a test taking it runs once per implementation."""
    return request.getfixturevalue(f"{request.param}_store")
