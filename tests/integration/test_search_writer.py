"""The stream workers' index writer: a Redis outage in the count agents marks the index stale
instead of failing (and so stalling) their batch."""

from __future__ import annotations

import dataclasses

from streams.resources import Resources
from streams.search_index import SearchWriter
from tests.support.ports import free_port


async def test_a_failed_best_effort_write_marks_the_index_stale_and_does_not_raise(settings):
    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    writer = SearchWriter(dead, Resources(dead))
    assert not writer.stale
    await writer.best_effort("hashtag counts", lambda: writer.hashtags({"sometag": 3}))
    assert writer.stale
