"""The media store contract, run against a local directory and against S3 over real HTTP.

S3 is moto's standalone server, started in this process on a free loopback port; boto3 is not
patched, so requests, retries, pagination and headers go through botocore as they would to AWS.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import boto3
import pytest

from app.media import store as store_module
from app.media.store import (
    IMMUTABLE_CACHE_CONTROL,
    LocalMediaStore,
    MediaStore,
    S3MediaStore,
    make_media_store,
    validate_key,
)
from app.settings import Settings

REGION = "us-east-1"
INVALID_KEYS = [
    "",
    "/p/1/abs.jpg",
    "../secret.jpg",
    "p/../../secret.jpg",
    "p/./x.jpg",
    "p/a..b.jpg",
    "p//x.jpg",
    "p/x.jpg/",
    "p\\x.jpg",
    "p/x\x00.jpg",
    "P/Upper.jpg",
    ".hidden.jpg",
    "p/.x.jpg.tmp",
    "p/%2e%2e/x.jpg",
    "p/with space.jpg",
    "p/caf\u00e9.jpg",
    "p/" + "x" * 200 + ".jpg",
]


def unique_prefix() -> str:
    return f"t/{secrets.token_hex(6)}/"


def public_read_policy(bucket: str) -> str:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


async def collect(keys: AsyncIterator[str]) -> set[str]:
    return {key async for key in keys}


@pytest.fixture
def s3_client(moto_endpoint: str, aws_credentials: None):
    client = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    yield client
    client.close()


class TestMediaStoreContract:
    """What every MediaStore promises; each test runs once per implementation."""

    async def test_put_then_get_returns_the_same_bytes(self, store: MediaStore):
        key = unique_prefix() + "large-1.jpg"
        await store.put(key, b"\xff\xd8jpeg bytes", "image/jpeg")
        assert await store.get(key) == b"\xff\xd8jpeg bytes"
        assert await store.exists(key)

    async def test_a_missing_key_gets_none_and_does_not_exist(self, store: MediaStore):
        key = unique_prefix() + "never-written.jpg"
        assert await store.get(key) is None
        assert not await store.exists(key)

    async def test_a_key_naming_a_directory_is_not_an_object(self, store: MediaStore):
        prefix = unique_prefix()
        await store.put(prefix + "x.jpg", b"x", "image/jpeg")
        assert not await store.exists(prefix.rstrip("/"))
        assert await store.get(prefix.rstrip("/")) is None

    async def test_a_second_put_to_a_key_replaces_its_bytes(self, store: MediaStore):
        key = unique_prefix() + "original.png"
        await store.put(key, b"first", "image/png")
        await store.put(key, b"second, longer", "image/png")
        assert await store.get(key) == b"second, longer"

    async def test_delete_removes_the_key_and_is_idempotent(self, store: MediaStore):
        key = unique_prefix() + "thumbnail.webp"
        await store.put(key, b"webp", "image/webp")
        await store.delete(key)
        await store.delete(key)
        assert not await store.exists(key)
        assert await store.get(key) is None

    async def test_delete_many_removes_every_key_and_ignores_missing_ones(self, store: MediaStore):
        prefix = unique_prefix()
        keys = [f"{prefix}{n}.jpg" for n in range(5)]
        await asyncio.gather(*(store.put(key, b"x", "image/jpeg") for key in keys))
        await store.delete_many([*keys, prefix + "missing.jpg"])
        assert await collect(store.list_keys(prefix)) == set()
        await store.delete_many([])

    async def test_list_keys_filters_by_prefix(self, store: MediaStore):
        prefix = unique_prefix()
        keys = {f"{prefix}p/1/a.jpg", f"{prefix}p/1/b.jpg", f"{prefix}p/12/c.jpg", f"{prefix}s/9/d.jpg"}
        await asyncio.gather(*(store.put(key, b"x", "image/jpeg") for key in keys))
        assert await collect(store.list_keys(prefix)) == keys
        assert await collect(store.list_keys(f"{prefix}p/1/")) == {f"{prefix}p/1/a.jpg", f"{prefix}p/1/b.jpg"}
        assert await collect(store.list_keys(f"{prefix}p/1")) == keys - {f"{prefix}s/9/d.jpg"}
        assert await collect(store.list_keys(f"{prefix}p/1/a")) == {f"{prefix}p/1/a.jpg"}
        assert await collect(store.list_keys(f"{prefix}nothing/")) == set()

    async def test_list_keys_with_older_than_leaves_out_recent_writes(self, store: MediaStore):
        prefix = unique_prefix()
        await store.put(prefix + "new.jpg", b"x", "image/jpeg")
        now = datetime.now(UTC)
        assert await collect(store.list_keys(prefix, older_than=now + timedelta(minutes=1))) == {prefix + "new.jpg"}
        assert await collect(store.list_keys(prefix, older_than=now - timedelta(minutes=1))) == set()

    async def test_list_keys_wants_a_timezone_aware_cutoff(self, store: MediaStore):
        with pytest.raises(ValueError):
            await collect(store.list_keys("", older_than=datetime.now()))  # naive on purpose

    @pytest.mark.parametrize("prefix", ["../", "/etc", "p/../..", ".hidden", "P/"])
    async def test_list_keys_refuses_a_prefix_that_is_not_the_start_of_a_key(self, store: MediaStore, prefix: str):
        with pytest.raises(ValueError):
            await collect(store.list_keys(prefix))

    async def test_url_ends_with_the_key(self, store: MediaStore):
        key = unique_prefix() + "medium-ab12.jpg"
        assert store.url(key).endswith("/" + key)
        assert store.url(key).startswith("http")

    @pytest.mark.parametrize("key", INVALID_KEYS)
    async def test_every_operation_refuses_an_invalid_key(self, store: MediaStore, key: str):
        with pytest.raises(ValueError):
            await store.put(key, b"x", "image/jpeg")
        for operation in (store.get, store.exists, store.delete):
            with pytest.raises(ValueError):
                await operation(key)
        with pytest.raises(ValueError):
            await store.delete_many(["p/valid.jpg", key])
        with pytest.raises(ValueError):
            store.url(key)

    async def test_a_content_type_that_contradicts_the_extension_is_refused(self, store: MediaStore):
        with pytest.raises(ValueError):
            await store.put(unique_prefix() + "x.jpg", b"png bytes", "image/png")

    async def test_a_5_mb_object_round_trips_intact(self, store: MediaStore):
        key = unique_prefix() + "original.jpg"
        data = os.urandom(5 * 1024 * 1024)
        await store.put(key, data, "image/jpeg")
        assert await store.get(key) == data

    async def test_concurrent_puts_of_different_keys_all_land(self, store: MediaStore):
        prefix = unique_prefix()
        payloads = {f"{prefix}{n}.jpg": os.urandom(1000 + n) for n in range(40)}
        await asyncio.gather(*(store.put(key, data, "image/jpeg") for key, data in payloads.items()))
        assert await collect(store.list_keys(prefix)) == set(payloads)
        for key, data in payloads.items():
            assert await store.get(key) == data

    async def test_concurrent_puts_to_one_key_leave_one_whole_value(self, store: MediaStore):
        key = unique_prefix() + "raced.jpg"
        candidates = [bytes([n]) * (256 * 1024) for n in range(8)]
        await asyncio.gather(*(store.put(key, data, "image/jpeg") for data in candidates))
        assert await store.get(key) in candidates

    async def test_a_reader_sees_the_old_or_the_new_object_never_a_part(self, store: MediaStore):
        key = unique_prefix() + "big.jpg"
        old, new = b"o" * (6 * 1024 * 1024), b"n" * (6 * 1024 * 1024)
        await store.put(key, old, "image/jpeg")
        writing = asyncio.create_task(store.put(key, new, "image/jpeg"))
        reads = 0
        while not writing.done():
            assert await store.get(key) in (old, new)
            reads += 1
        await writing
        assert reads > 0 and await store.get(key) == new


class TestLocalMediaStore:
    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        """A secret next to the store's root, and symlinks to it planted inside the root."""
        (tmp_path / "secret.jpg").write_bytes(b"SECRET")
        root = tmp_path / "media"
        (root / "p").mkdir(parents=True)
        (root / "escape").symlink_to(tmp_path, target_is_directory=True)
        (root / "p" / "leak.jpg").symlink_to(tmp_path / "secret.jpg")
        return tmp_path

    @pytest.mark.parametrize("key", ["escape/secret.jpg", "p/leak.jpg"])
    async def test_a_symlink_planted_inside_the_root_is_never_followed(
        self, local_store: LocalMediaStore, outside: Path, key: str
    ):
        with pytest.raises(ValueError):
            await local_store.get(key)
        with pytest.raises(ValueError):
            await local_store.open(key)
        with pytest.raises(ValueError):
            await local_store.exists(key)

    async def test_a_put_through_a_planted_symlink_writes_nothing_outside(
        self, local_store: LocalMediaStore, outside: Path
    ):
        with pytest.raises(ValueError):
            await local_store.put("escape/new.jpg", b"x", "image/jpeg")
        with pytest.raises(ValueError):
            await local_store.put("p/leak.jpg", b"overwritten", "image/jpeg")
        with pytest.raises(ValueError):
            await local_store.delete("p/leak.jpg")
        assert not (outside / "new.jpg").exists()
        assert (outside / "secret.jpg").read_bytes() == b"SECRET"

    async def test_listing_skips_symlinks_and_does_not_descend_into_them(
        self, local_store: LocalMediaStore, outside: Path
    ):
        await local_store.put("p/real.jpg", b"x", "image/jpeg")
        assert await collect(local_store.list_keys()) == {"p/real.jpg"}
        with pytest.raises(ValueError):
            await collect(local_store.list_keys("escape/"))

    async def test_older_than_compares_with_the_file_modification_time(self, local_store: LocalMediaStore, tmp_path):
        await local_store.put("p/1/old.jpg", b"x", "image/jpeg")
        await local_store.put("p/1/new.jpg", b"x", "image/jpeg")
        two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
        os.utime(tmp_path / "media" / "p" / "1" / "old.jpg", (two_hours_ago, two_hours_ago))
        cutoff = datetime.now(UTC) - timedelta(hours=1)
        assert await collect(local_store.list_keys("p/", older_than=cutoff)) == {"p/1/old.jpg"}

    async def test_puts_leave_no_temporary_files_behind(self, local_store: LocalMediaStore, tmp_path: Path):
        await asyncio.gather(*(local_store.put(f"p/{n % 3}/{n}.jpg", b"x" * n, "image/jpeg") for n in range(30)))
        names = [path.name for path in (tmp_path / "media").rglob("*") if path.is_file()]
        assert len(names) == 30 and not [name for name in names if name.startswith(".")]

    async def test_url_is_the_api_media_route_or_the_cdn_in_front_of_it(self, tmp_path: Path):
        direct = LocalMediaStore(tmp_path, "http://127.0.0.1:8080/")
        behind_cdn = LocalMediaStore(tmp_path, "http://127.0.0.1:8080", "https://cdn.example.com/media")
        assert direct.url("p/1/a.jpg") == "http://127.0.0.1:8080/v1/media/p/1/a.jpg"
        assert behind_cdn.url("p/1/a.jpg") == "https://cdn.example.com/media/p/1/a.jpg"
        await direct.close()
        await behind_cdn.close()


class TestS3MediaStore:
    async def test_objects_carry_immutable_cache_control_and_their_content_type(
        self, s3_store: S3MediaStore, s3_client
    ):
        await s3_store.put("p/1/large-ab.webp", b"webp", "image/webp")
        head = s3_client.head_object(Bucket=s3_store.bucket, Key="p/1/large-ab.webp")
        assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL
        assert head["ContentType"] == "image/webp"

    async def test_the_bucket_url_serves_the_object_once_the_bucket_allows_public_reads(
        self, s3_store: S3MediaStore, s3_client
    ):
        await s3_store.put("p/2/thumbnail-cd.jpg", b"thumbnail", "image/jpeg")
        url = s3_store.url("p/2/thumbnail-cd.jpg")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 403  # private until a policy (or a CDN's access identity) allows it
            s3_client.put_bucket_policy(Bucket=s3_store.bucket, Policy=public_read_policy(s3_store.bucket))
            async with http.get(url) as response:
                assert response.status == 200
                assert await response.read() == b"thumbnail"
                assert response.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL

    async def test_url_is_the_cdn_when_one_is_configured(self, aws_credentials: None):
        media = S3MediaStore("photos-media", "eu-west-1", cdn_base_url="https://cdn.example.com/")
        assert media.url("p/1/a.jpg") == "https://cdn.example.com/p/1/a.jpg"
        without_cdn = S3MediaStore("photos-media", "eu-west-1")
        assert without_cdn.url("p/1/a.jpg") == "https://photos-media.s3.eu-west-1.amazonaws.com/p/1/a.jpg"
        await media.close()
        await without_cdn.close()

    async def test_ensure_bucket_is_idempotent(self, s3_store: S3MediaStore):
        await s3_store.ensure_bucket()
        await s3_store.put("p/3/x.jpg", b"x", "image/jpeg")
        await s3_store.ensure_bucket()
        assert await s3_store.exists("p/3/x.jpg")

    async def test_delete_many_sends_batches_of_at_most_the_s3_limit(
        self, s3_store: S3MediaStore, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setattr(store_module, "S3_DELETE_BATCH", 3)  # the real 1000 would need 1001 puts
        keys = [f"p/4/{n}.jpg" for n in range(8)]
        await asyncio.gather(*(s3_store.put(key, b"x", "image/jpeg") for key in keys))
        await s3_store.delete_many(keys)
        assert await collect(s3_store.list_keys("p/4/")) == set()

    async def test_listing_pages_through_more_than_one_response(
        self, s3_store: S3MediaStore, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setattr(store_module, "S3_LIST_PAGE", 2)  # the real 1000 would need 1001 puts
        keys = {f"p/5/{n}.jpg" for n in range(7)}
        await asyncio.gather(*(s3_store.put(key, b"", "image/jpeg") for key in keys))
        assert await collect(s3_store.list_keys("p/5/")) == keys


class TestMakeMediaStore:
    async def test_local_and_s3_are_chosen_by_the_setting(self, tmp_path: Path, aws_credentials: None):
        local = make_media_store(Settings(media_store="local", media_dir=str(tmp_path)))
        s3 = make_media_store(Settings(media_store="s3", s3_endpoint_url="http://127.0.0.1:9"))
        assert isinstance(local, LocalMediaStore) and isinstance(s3, S3MediaStore)
        assert s3.url("p/1/a.jpg") == "http://127.0.0.1:9/photos-media/p/1/a.jpg"
        await local.close()
        await s3.close()

    def test_an_unknown_store_is_refused(self):
        with pytest.raises(ValueError, match="media_store"):
            make_media_store(Settings(media_store="ftp"))


def test_a_valid_key_is_returned_unchanged():
    assert validate_key("p/123/large-0a1b2c.jpg") == "p/123/large-0a1b2c.jpg"
