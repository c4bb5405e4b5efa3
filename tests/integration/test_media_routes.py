"""GET/HEAD /v1/media/{key} over HTTP: caching headers, conditional and range requests, traversal.

A minimal app in this process: the media routes, the project's error middleware and a local
store on a temporary directory. No Cassandra, Kafka or Redis is involved.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from app.errors import NotFound
from app.media.routes import MEDIA_STORE, ROUTES, media_etag, serve_media
from app.media.store import IMMUTABLE_CACHE_CONTROL, READ_CHUNK_BYTES, LocalMediaStore, MediaStore, S3MediaStore
from app.middleware import errors_as_json

SECRET = b"SECRET-OUTSIDE-THE-ROOT"
KEY = "p/1/large-ab12.jpg"
BODY = bytes(range(256)) * 4  # 1024 bytes, each offset recognisable


def media_app(store: MediaStore) -> web.Application:
    app = web.Application(middlewares=[errors_as_json])
    app[MEDIA_STORE] = store
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.handler.__name__)
    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The store's root, with a secret beside it and symlinks to that secret planted inside it."""
    (tmp_path / "secret.jpg").write_bytes(SECRET)
    media_root = tmp_path / "media"
    (media_root / "p").mkdir(parents=True)
    (media_root / "escape").symlink_to(tmp_path, target_is_directory=True)
    (media_root / "p" / "leak.jpg").symlink_to(tmp_path / "secret.jpg")
    return media_root


@pytest.fixture
async def store(root: Path) -> AsyncIterator[LocalMediaStore]:
    media = LocalMediaStore(root, "http://api.test")
    await media.put(KEY, BODY, "image/jpeg")
    yield media
    await media.close()


@pytest.fixture
async def client(store: LocalMediaStore) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(media_app(store))) as test_client:
        yield test_client


async def raw_get(client: TestClient, raw_path: str) -> tuple[int, bytes]:
    """Status and body of a GET sent byte for byte, so no client library normalises the path first."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {raw_path} HTTP/1.1\r\nHost: media.test\r\nConnection: close\r\n\r\n".encode("latin-1"))
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class TestServing:
    async def test_a_stored_key_is_served_with_caching_headers(self, client: TestClient):
        response = await client.get(f"/v1/media/{KEY}")
        assert response.status == 200
        assert await response.read() == BODY
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["Content-Length"] == str(len(BODY))
        assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
        assert response.headers["ETag"] == media_etag(KEY)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    @pytest.mark.parametrize(
        ("key", "content_type"),
        [("p/1/a.png", "image/png"), ("p/1/a.webp", "image/webp"), ("p/1/a.jpeg", "image/jpeg"),
         ("p/1/a.bin", "application/octet-stream")],
    )
    async def test_content_type_follows_the_extension(
        self, client: TestClient, store: LocalMediaStore, key: str, content_type: str
    ):
        await store.put(key, b"bytes", content_type)
        response = await client.get(f"/v1/media/{key}")
        assert response.status == 200
        assert response.headers["Content-Type"] == content_type

    async def test_the_etag_is_strong_stable_and_differs_between_keys(self, client: TestClient, store):
        await store.put("p/1/other.jpg", BODY, "image/jpeg")
        first = (await client.get(f"/v1/media/{KEY}")).headers["ETag"]
        again = (await client.get(f"/v1/media/{KEY}")).headers["ETag"]
        other = (await client.get("/v1/media/p/1/other.jpg")).headers["ETag"]
        assert first == again != other
        assert first.startswith('"') and first.endswith('"')

    async def test_a_large_file_is_streamed_whole(self, client: TestClient, store: LocalMediaStore):
        data = os.urandom(3 * READ_CHUNK_BYTES + 17)
        await store.put("p/2/original.jpg", data, "image/jpeg")
        response = await client.get("/v1/media/p/2/original.jpg")
        assert response.status == 200
        assert await response.read() == data

    async def test_head_answers_the_get_headers_without_a_body(self, client: TestClient):
        response = await client.head(f"/v1/media/{KEY}")
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(BODY))
        assert response.headers["ETag"] == media_etag(KEY)
        assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
        assert await response.read() == b""

    async def test_a_missing_key_is_a_json_404(self, client: TestClient):
        response = await client.get("/v1/media/p/1/missing.jpg")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "media_not_found"
        assert "Cache-Control" not in response.headers

    async def test_a_key_naming_a_directory_is_a_404(self, client: TestClient):
        assert (await client.get("/v1/media/p/1")).status == 404

    async def test_with_the_s3_store_every_key_is_a_404(self):
        s3 = S3MediaStore("photos-media", "us-east-1", "http://127.0.0.1:9")  # never contacted
        async with TestClient(TestServer(media_app(s3))) as s3_client:
            response = await s3_client.get(f"/v1/media/{KEY}")
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "media_not_found"
        await s3.close()


class TestConditionalRequests:
    @pytest.mark.parametrize(
        "if_none_match",
        [media_etag(KEY), f"W/{media_etag(KEY)}", f'"other", {media_etag(KEY)}', "*"],
    )
    async def test_a_matching_if_none_match_is_a_304_without_a_body(self, client: TestClient, if_none_match: str):
        response = await client.get(f"/v1/media/{KEY}", headers={"If-None-Match": if_none_match})
        assert response.status == 304
        assert await response.read() == b""
        assert response.headers["ETag"] == media_etag(KEY)
        assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL

    @pytest.mark.parametrize("if_none_match", ['"other"', "W/\"other\", \"another\"", "garbage"])
    async def test_another_if_none_match_is_a_200(self, client: TestClient, if_none_match: str):
        response = await client.get(f"/v1/media/{KEY}", headers={"If-None-Match": if_none_match})
        assert response.status == 200
        assert await response.read() == BODY

    async def test_if_none_match_star_on_a_missing_key_is_still_a_404(self, client: TestClient):
        response = await client.get("/v1/media/p/1/missing.jpg", headers={"If-None-Match": "*"})
        assert response.status == 404


class TestRanges:
    @pytest.mark.parametrize(
        ("range_header", "start", "end"),
        [("bytes=0-9", 0, 9), ("bytes=1000-", 1000, 1023), ("bytes=-5", 1019, 1023), ("bytes=1020-99999", 1020, 1023),
         ("bytes=-5000", 0, 1023), ("bytes=7-7", 7, 7)],
    )
    async def test_a_single_range_is_a_206_with_that_part(
        self, client: TestClient, range_header: str, start: int, end: int
    ):
        response = await client.get(f"/v1/media/{KEY}", headers={"Range": range_header})
        assert response.status == 206
        assert await response.read() == BODY[start : end + 1]
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
        assert response.headers["Content-Length"] == str(end - start + 1)
        assert response.headers["ETag"] == media_etag(KEY)

    async def test_a_range_spanning_chunks_of_a_large_file(self, client: TestClient, store: LocalMediaStore):
        data = os.urandom(3 * READ_CHUNK_BYTES)
        await store.put("p/3/original.jpg", data, "image/jpeg")
        start, end = READ_CHUNK_BYTES - 10, 2 * READ_CHUNK_BYTES + 10
        response = await client.get("/v1/media/p/3/original.jpg", headers={"Range": f"bytes={start}-{end}"})
        assert response.status == 206
        assert await response.read() == data[start : end + 1]

    @pytest.mark.parametrize("range_header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
    async def test_an_unsatisfiable_range_is_a_416_naming_the_size(self, client: TestClient, range_header: str):
        response = await client.get(f"/v1/media/{KEY}", headers={"Range": range_header})
        assert response.status == 416
        assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"
        assert (await response.json())["error"]["code"] == "range_not_satisfiable"

    @pytest.mark.parametrize(
        "range_header", ["bytes=0-1,5-6", "bytes=9-3", "bytes=-", "items=0-1", "bytes=abc", "bytes=" + "9" * 30 + "-"]
    )
    async def test_a_multi_range_or_malformed_range_is_ignored(self, client: TestClient, range_header: str):
        response = await client.get(f"/v1/media/{KEY}", headers={"Range": range_header})
        assert response.status == 200
        assert await response.read() == BODY

    async def test_if_range_with_the_etag_honours_the_range(self, client: TestClient):
        headers = {"Range": "bytes=0-3", "If-Range": media_etag(KEY)}
        response = await client.get(f"/v1/media/{KEY}", headers=headers)
        assert response.status == 206
        assert await response.read() == BODY[:4]

    @pytest.mark.parametrize("if_range", ['"other"', f"W/{media_etag(KEY)}", "Wed, 21 Oct 2015 07:28:00 GMT"])
    async def test_if_range_with_another_validator_sends_everything(self, client: TestClient, if_range: str):
        response = await client.get(f"/v1/media/{KEY}", headers={"Range": "bytes=0-3", "If-Range": if_range})
        assert response.status == 200
        assert await response.read() == BODY

    async def test_head_with_a_range_is_a_206_without_a_body(self, client: TestClient):
        response = await client.head(f"/v1/media/{KEY}", headers={"Range": "bytes=0-9"})
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 0-9/{len(BODY)}"
        assert await response.read() == b""


class TestTraversal:
    async def test_a_raw_request_for_a_stored_key_is_served(self, client: TestClient):
        status, body = await raw_get(client, f"/v1/media/{KEY}")  # the control for the 404s below
        assert status == 200 and body == BODY

    @pytest.mark.parametrize(
        "raw_path",
        [
            "/v1/media/../../secret.jpg",
            "/v1/media/p/../../secret.jpg",
            "/v1/media/%2e%2e/secret.jpg",
            "/v1/media/p/%2e%2e/%2e%2e/secret.jpg",
            "/v1/media/..%2fsecret.jpg",
            "/v1/media/p%2f..%2f..%2fsecret.jpg",
            "/v1/media/%2fetc%2fpasswd",
            "/v1/media//etc/passwd",
            "/v1/media/..%5csecret.jpg",
            "/v1/media/p/1/large-ab12.jpg%00.png",
            "/v1/media/escape/secret.jpg",
            "/v1/media/p/leak.jpg",
        ],
    )
    async def test_paths_out_of_the_root_are_404s_that_reveal_nothing(self, client: TestClient, raw_path: str):
        status, body = await raw_get(client, raw_path)
        assert status == 404
        assert SECRET not in body and b"root:" not in body

    @pytest.mark.parametrize(
        "key",
        ["../secret.jpg", "p/../../secret.jpg", "/etc/passwd", "..\\secret.jpg", "p/1/large-ab12.jpg\x00.png",
         "escape/secret.jpg", "p/leak.jpg", "p//1/large-ab12.jpg"],
    )
    async def test_the_handler_itself_refuses_keys_that_routing_would_have_normalised(
        self, store: LocalMediaStore, key: str
    ):
        app = media_app(store)
        with pytest.raises(NotFound):
            await serve_media(make_mocked_request("GET", "/v1/media/x", match_info={"key": key}, app=app))


class TestSystemKeys:
    async def test_a_ranking_model_in_the_store_is_never_served_publicly(self, client: TestClient,
                                                                          store: LocalMediaStore):
        from app.ranking.model import ARTIFACT_CONTENT_TYPE, artifact_key

        key = artifact_key("lightgbm", 20261207221530)
        await store.put(key, b'{"format": 1}', ARTIFACT_CONTENT_TYPE)
        assert await store.get(key) == b'{"format": 1}'  # the training job's put and the API's load work
        for method in ("GET", "HEAD"):
            response = await client.request(method, f"/v1/media/{key}")
            assert response.status == 404, method
        assert (await client.get(f"/v1/media/{KEY}")).status == 200  # media beside it still is
