"""Where media bytes live: one async interface, a local directory and S3 behind it.

Keys are chosen by the caller, never reused for other bytes and validated strictly here, so a
key is also a safe path below the local root and a safe S3 key. Every blocking call (file
system, boto3) runs in the store's own bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.settings import Settings

T = TypeVar("T")

MAX_KEY_LENGTH = 200
# lowercase segments joined by single slashes; a segment never starts with a dot, so `.`, `..`
# and hidden names (the local store's temporary files) are not keys
_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9][a-z0-9_.-]*)*")
_PREFIX = re.compile(r"[a-z0-9_./-]*")

# keys are immutable, so any cache may keep a copy for a year without asking again
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".json": "application/json"}
# keys the store holds for the system, never for clients: ranking models (app/ranking/model.py). The
# public media route does not serve them, and no sweeper records them, so none deletes them
PRIVATE_PREFIXES = ("models/",)
FALLBACK_MEDIA_TYPE = "application/octet-stream"

S3_DELETE_BATCH = 1000  # the most keys DeleteObjects takes per request
S3_LIST_PAGE = 1000  # the most keys ListObjectsV2 answers per request
READ_CHUNK_BYTES = 256 * 1024


class MediaStoreError(Exception):
    """The store refused or failed an operation it was asked to do (e.g. some keys of a batch delete)."""


def is_valid_key(key: str) -> bool:
    return len(key) <= MAX_KEY_LENGTH and ".." not in key and _KEY.fullmatch(key) is not None


def is_public_key(key: str) -> bool:
    """Whether GET /v1/media/{key} may serve the key (a post's or story's media, not a system file)."""
    return not key.startswith(PRIVATE_PREFIXES)


def validate_key(key: str) -> str:
    """The key itself; ValueError unless it is lowercase `[a-z0-9_.-]` segments joined by single slashes."""
    if not is_valid_key(key):
        raise ValueError(f"invalid media key: {key[:MAX_KEY_LENGTH]!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: the start of a key (possibly empty), never a way out of the store."""
    if len(prefix) > MAX_KEY_LENGTH or not _PREFIX.fullmatch(prefix) or ".." in prefix or "//" in prefix:
        raise ValueError(f"invalid media key prefix: {prefix[:MAX_KEY_LENGTH]!r}")
    if prefix.startswith(("/", ".")):
        raise ValueError(f"invalid media key prefix: {prefix!r}")
    return prefix


def media_type_for(key: str) -> str:
    """The Content-Type media is served with, from the key's extension."""
    return MEDIA_TYPES.get(os.path.splitext(key)[1], FALLBACK_MEDIA_TYPE)


def _check_content_type(key: str, content_type: str) -> None:
    # the local store serves by extension and S3 by the stored type: one rule keeps them the same
    if content_type != media_type_for(key):
        raise ValueError(f"content type {content_type!r} does not match the extension of {key!r}")


def _cutoff(older_than: datetime | None) -> float | None:
    if older_than is None:
        return None
    if older_than.tzinfo is None:
        raise ValueError("older_than must be timezone-aware")
    return older_than.timestamp()


def _join_url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{key}"  # keys hold only URL-safe characters: nothing to quote


class MediaStore(Protocol):
    """Immutable objects under caller-chosen keys; every method raises ValueError for an invalid key."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data under key (last write wins); durable when this returns."""

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, None when there is none."""

    async def delete(self, key: str) -> None:
        """Remove key; deleting a missing key is not an error."""

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key; missing ones are not an error."""

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int | None:
        """The object's length in bytes, None when there is none; reads no content."""

    def list_keys(self, prefix: str = "", older_than: datetime | None = None) -> AsyncIterator[str]:
        """Keys starting with prefix, last written before older_than (timezone-aware) if given; any order."""

    def url(self, key: str) -> str:
        """The public URL clients fetch the object from."""

    async def close(self) -> None: ...


class _ThreadPool:
    """A bounded pool for one store's blocking calls, so they never run on the event loop."""

    def __init__(self, threads: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], /, *args) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown)  # waits for calls in progress, off the loop


# --- local directory -----------------------------------------------------------------------


class MediaFile:
    """One open file of the local store: its size, and its bytes read in the store's threads."""

    def __init__(self, fd: int, size: int, pool: _ThreadPool) -> None:
        self._fd = fd
        self.size = size
        self._pool = pool

    async def chunks(self, start: int, length: int) -> AsyncIterator[bytes]:
        """`length` bytes from offset `start`, a bounded chunk at a time."""
        offset, end = start, start + length
        while offset < end:
            chunk = await self._pool.run(os.pread, self._fd, min(READ_CHUNK_BYTES, end - offset), offset)
            if not chunk:  # shorter than its size said: only if someone edited the file behind the store
                raise MediaStoreError(f"media file ended at byte {offset} of {self.size}")
            offset += len(chunk)
            yield chunk

    async def close(self) -> None:
        await self._pool.run(os.close, self._fd)


class LocalMediaStore:
    """Media in a directory, served by GET /v1/media/{key}; for development and single-node use.

    A put writes a hidden temporary file, fsyncs it, renames it over the key and fsyncs the
    directory, so readers see the old bytes or the new ones, never a part, and an acknowledged
    put survives a crash. No path below the root may be a symlink: the store neither follows
    nor serves one, so nothing outside the root can be read or written through it.
    """

    def __init__(self, root: Path, public_base_url: str, cdn_base_url: str = "", *, threads: int = 8) -> None:
        root.mkdir(parents=True, exist_ok=True)  # once, at start-up, before any request
        self._root = root.resolve()
        # a CDN in front of this API uses GET /v1/media/ as its origin and serves the same keys
        self._url_base = cdn_base_url or f"{public_base_url.rstrip('/')}/v1/media"
        self._pool = _ThreadPool(threads, "media-local")

    def url(self, key: str) -> str:
        return _join_url(self._url_base, validate_key(key))

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        _check_content_type(validate_key(key), content_type)
        await self._pool.run(self._put_blocking, key, data)

    async def get(self, key: str) -> bytes | None:
        return await self._pool.run(self._get_blocking, validate_key(key))

    async def open(self, key: str) -> MediaFile | None:
        """The key's file opened for streaming (close it when done); None when there is none."""
        validate_key(key)
        opened = await self._pool.run(self._open_regular, key)
        return None if opened is None else MediaFile(*opened, self._pool)

    async def exists(self, key: str) -> bool:
        return await self._pool.run(self._exists_blocking, validate_key(key))

    async def size(self, key: str) -> int | None:
        return await self._pool.run(self._size_blocking, validate_key(key))

    async def delete(self, key: str) -> None:
        await self._pool.run(self._delete_blocking, validate_key(key))

    async def delete_many(self, keys: Iterable[str]) -> None:
        for key in [validate_key(key) for key in keys]:  # all checked before any is deleted
            await self._pool.run(self._delete_blocking, key)

    async def list_keys(self, prefix: str = "", older_than: datetime | None = None) -> AsyncIterator[str]:
        cutoff = _cutoff(older_than)
        pending = [validate_prefix(prefix).rpartition("/")[0]]  # directories to scan, relative to the root
        while pending:
            files, subdirectories = await self._pool.run(self._scan_blocking, pending.pop())
            # descend only where keys can still start with the prefix
            pending.extend(d for d in subdirectories if f"{d}/".startswith(prefix))
            for key, modified in files:
                if key.startswith(prefix) and (cutoff is None or modified < cutoff):
                    yield key

    async def close(self) -> None:
        await self._pool.close()

    # --- blocking halves, run in the pool ---------------------------------------------------

    def _path(self, key: str) -> Path:
        """root/key; ValueError if any part of it below the root is a symlink (or leads out)."""
        path = self._root / key
        if path.resolve() != path:  # a validated key has no `.`/`..`, so only a symlink makes them differ
            raise ValueError(f"media key {key!r} leads through a symlink")
        return path

    def _put_blocking(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._make_directories(path.parent)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)  # makes the rename itself durable

    def _make_directories(self, directory: Path) -> None:
        missing = []
        while directory != self._root and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)  # a concurrent put may have made it
            _fsync_directory(directory.parent)  # whoever made it, its entry is durable before we ack

    def _open_regular(self, key: str) -> tuple[int, int] | None:
        """An fd on the key's regular file and its size, or None when there is no such file."""
        try:
            # O_NOFOLLOW: a symlink swapped in after _path's check is refused, not followed
            fd = os.open(self._path(key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a key that names a directory
            os.close(fd)
            return None
        return fd, info.st_size

    def _get_blocking(self, key: str) -> bytes | None:
        opened = self._open_regular(key)
        if opened is None:
            return None
        fd, _size = opened
        with os.fdopen(fd, "rb") as file:
            return file.read()

    def _exists_blocking(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self._path(key)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _size_blocking(self, key: str) -> int | None:
        try:
            info = os.lstat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def _delete_blocking(self, key: str) -> None:
        # not fsynced: a delete lost in a crash leaves an orphan the media sweeper collects again
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass

    def _scan_blocking(self, relative: str) -> tuple[list[tuple[str, float]], list[str]]:
        """The keys of one directory with their mtimes, and its subdirectories; symlinks are skipped."""
        directory = self._root / relative
        if relative and directory.resolve() != directory:
            raise ValueError(f"media key prefix {relative!r} leads through a symlink")
        files, subdirectories = [], []
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(name)
            elif entry.is_file(follow_symlinks=False) and is_valid_key(name):  # skips temporary files
                files.append((name, entry.stat(follow_symlinks=False).st_mtime))
        return files, subdirectories


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- S3 ----------------------------------------------------------------------------------------


class S3MediaStore:
    """Media in an S3 (or S3-compatible) bucket, fetched by clients from the bucket or a CDN before it.

    One boto3 client per store; its calls run in a pool of `threads` threads with as many HTTP
    connections, so concurrent requests never queue for a connection inside botocore.
    """

    def __init__(
        self,
        bucket: str,
        region: str,
        endpoint_url: str = "",
        cdn_base_url: str = "",
        *,
        threads: int = 16,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        self.bucket = bucket
        config = Config(
            region_name=region,
            retries={"mode": "standard", "max_attempts": 5},  # throttling and 5xx, with backoff
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            max_pool_connections=threads,
            # S3-compatible servers (MinIO, moto) are addressed by one host: bucket in the path
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # once, at start-up: creating a client reads botocore's service model from disk
        self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)
        self._url_base = cdn_base_url or (
            f"{endpoint_url.rstrip('/')}/{bucket}" if endpoint_url else f"https://{bucket}.s3.{region}.amazonaws.com"
        )
        self._pool = _ThreadPool(threads, "media-s3")

    def url(self, key: str) -> str:
        return _join_url(self._url_base, validate_key(key))

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (development and tests; production buckets are provisioned)."""
        await self._pool.run(self._ensure_bucket_blocking)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        _check_content_type(validate_key(key), content_type)
        await self._pool.run(
            partial(
                self._client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=IMMUTABLE_CACHE_CONTROL,
            )
        )

    async def get(self, key: str) -> bytes | None:
        return await self._pool.run(self._get_blocking, validate_key(key))

    async def exists(self, key: str) -> bool:
        return await self._pool.run(self._exists_blocking, validate_key(key))

    async def size(self, key: str) -> int | None:
        return await self._pool.run(self._size_blocking, validate_key(key))

    async def delete(self, key: str) -> None:
        await self._pool.run(partial(self._client.delete_object, Bucket=self.bucket, Key=validate_key(key)))

    async def delete_many(self, keys: Iterable[str]) -> None:
        checked = [validate_key(key) for key in keys]  # all checked before any is deleted
        for start in range(0, len(checked), S3_DELETE_BATCH):
            await self._pool.run(self._delete_batch_blocking, checked[start : start + S3_DELETE_BATCH])

    async def list_keys(self, prefix: str = "", older_than: datetime | None = None) -> AsyncIterator[str]:
        cutoff = _cutoff(older_than)
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=validate_prefix(prefix), PaginationConfig={"PageSize": S3_LIST_PAGE}
        )
        page_iterator = iter(pages)
        while (page := await self._pool.run(next, page_iterator, None)) is not None:  # one request per page
            for item in page.get("Contents", []):
                if cutoff is None or item["LastModified"].timestamp() < cutoff:
                    yield item["Key"]

    async def close(self) -> None:
        await self._pool.close()
        self._client.close()

    # --- blocking halves, run in the pool ---------------------------------------------------

    def _ensure_bucket_blocking(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
        region = self._client.meta.region_name
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        try:
            self._client.create_bucket(Bucket=self.bucket, **location)
        except self._client.exceptions.BucketAlreadyOwnedByYou:
            pass  # another process created it between our two calls

    def _get_blocking(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except self._client.exceptions.NoSuchKey:
            return None
        with response["Body"] as body:
            return body.read()

    def _exists_blocking(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def _size_blocking(self, key: str) -> int | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return response["ContentLength"]

    def _delete_batch_blocking(self, keys: list[str]) -> None:
        response = self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        if errors := response.get("Errors"):  # a batch delete answers 200 even when some keys fail
            first = errors[0]
            raise MediaStoreError(
                f"{len(errors)} of {len(keys)} deletes failed; {first['Key']!r}: {first['Code']} {first['Message']}"
            )


def _is_not_found(exc: ClientError) -> bool:
    # HEAD requests have no body, so their errors carry only the status as the code
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def make_media_store(settings: Settings) -> MediaStore:
    """The store settings.media_store names: "local" or "s3"."""
    if settings.media_store == "local":
        return LocalMediaStore(Path(settings.media_dir), settings.public_url, settings.media_cdn_base_url)
    if settings.media_store == "s3":
        return S3MediaStore(
            settings.s3_bucket, settings.s3_region, settings.s3_endpoint_url, settings.media_cdn_base_url
        )
    raise ValueError(f"media_store must be 'local' or 's3', not {settings.media_store!r}")
