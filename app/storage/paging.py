"""Bucket constants and the one paging walk over bucketed partitions.

A bucketed list keeps its items in partitions `((key, bucket), item)` and an index table of the
key's non-empty buckets, newest first. Timelines (app/storage/timelines.py) walk items newest
first; member lists (app/storage/member_pages.py) walk each bucket by member id. Both walk the
index the same way, so the position after a page is (bucket, item id) and items added later
never make a page repeat or skip one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

LATEST_BUCKET = (1 << 31) - 1  # a position above every bucket: the first page starts here
NO_UPPER_BOUND = (1 << 63) - 1  # an item id above every id (newest-first walks)
FIRST_MEMBER = -(1 << 63)  # an item id below every id (walks by ascending member id)

BucketsFrom = Callable[[int], Awaitable[list[int]]]
ItemsIn = Callable[[int, int, int], Awaitable[list[int]]]


async def walk_buckets(
    buckets_from: BucketsFrom, items_in: ItemsIn, *, bucket: int, position: int, bucket_start: int, limit: int,
    buckets_per_read: int,
) -> tuple[list[int], int | None]:
    """Up to `limit` item ids from (bucket, position) on, and the bucket of the last one (None when none).

    `buckets_from(b)` reads up to `buckets_per_read` of the key's buckets at or below b, newest first;
    `items_in(b, after, n)` reads up to n ids of bucket b past `after` in the list's order; a bucket
    other than the first is read from `bucket_start`."""
    ids: list[int] = []
    last_bucket = None
    while len(ids) < limit:
        buckets = await buckets_from(bucket)
        for b in buckets:
            start = position if b == bucket else bucket_start
            found = await items_in(b, start, limit - len(ids))
            if found:
                ids.extend(found)
                last_bucket = b
            if len(ids) >= limit:
                break
        if len(buckets) < buckets_per_read:
            break
        bucket, position = buckets[-1] - 1, bucket_start
    return ids, last_bucket
