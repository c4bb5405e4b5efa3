"""The stream workers' index writer: a Redis outage in the count agents marks the index stale
instead of failing (and so stalling) their batch, and the repair rewrites exactly what was missed."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from app.ids import IdGenerator
from app.search.query import HASHTAGS, USERS
from app.storage.search_index import SearchIndex
from app.wiring import Wiring
from infra.procs import free_port
from streams.search_index import SearchWriter


async def test_a_failed_best_effort_write_marks_the_index_stale_and_does_not_raise(settings):
    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    writer = SearchWriter(Wiring(dead))
    assert not writer.stale
    await writer.hashtags_best_effort({"sometag": 3})
    assert writer.stale


async def test_the_repair_writes_the_missed_users_and_tags_as_cassandra_has_them(settings, cass, redis_client):
    user_id, name, tag = IdGenerator().next_id(), f"rp_{uuid.uuid4().hex[:10]}", f"rp{uuid.uuid4().hex[:10]}"
    await cass.execute("INSERT INTO users (user_id, username, display_name, follower_count, created_at)"
                       " VALUES (%s, %s, %s, %s, %s)", (user_id, name, "Repaired", 7, datetime.now(UTC)))
    await cass.execute("INSERT INTO hashtags (tag, post_count) VALUES (%s, %s)", (tag, 4))
    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    wiring = Wiring(dead)
    writer = SearchWriter(wiring)
    await writer.users_best_effort([user_id], {user_id: 7})
    await writer.hashtags_best_effort({tag: 4})
    assert writer.stale

    live = SearchIndex(redis_client, settings.cassandra_keyspace)
    writer.index = live  # Redis is back
    await writer.repair(leader=False)

    assert not writer.stale
    users = await live.search(USERS, name, 5, None)
    assert [(m.name, m.popularity) for m in users.matches] == [(name, 7)]
    tags = await live.search(HASHTAGS, tag, 5, None)
    assert [(m.name, m.popularity) for m in tags.matches] == [(tag, 4)]
    await wiring.close()
