"""The stream worker, every agent, on an API, topics and consumer group of this run's own: bytes on the likes
topic that are no event are dead-lettered by each agent reading likes, the like after them on the same
partition is counted (the partition moved on), and `photos-replay-dead --list` shows one event.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest
from aiokafka import AIOKafkaProducer

from app.events import dead_letter_topic, topic_name
from app.settings import Settings
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.users import register
from tests.e2e.processes import isolated_api, isolated_env, start_worker
from tests.support.kafka_scratch import delete_topics_of, read_topic, replay_dead
from tests.support.polling import eventually

NAME = f"deadletters-{secrets.token_hex(3)}"  # topics of this run alone: what it counts is its own
ENV = isolated_env(NAME)
GARBAGE = b"{not json"
LIKE_AGENTS = {b"like_counts", b"affinity_likes", b"notifications", b"ranking_log_likes"}  # every agent reading likes


@pytest.fixture(scope="module")
def dead_api(migrated):
    with isolated_api(NAME, ENV) as url:
        yield url
    asyncio.run(delete_topics_of(Settings.from_env({**os.environ, **ENV})))


async def test_garbage_is_dead_lettered_by_every_agent_and_the_like_after_it_counted(http, dead_api, cass):
    settings = Settings.from_env({**os.environ, **ENV})
    likes = topic_name(settings, "likes")
    author, fan = await register(http, dead_api), await register(http, dead_api)
    post_id = await post(http, dead_api, author)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:  # keyed by the post, as its likes are: the like below comes after it on the same partition
        await producer.send_and_wait(likes, GARBAGE, key=post_id.encode())
    finally:
        await producer.stop()
    await like(http, dead_api, fan, post_id)

    worker = start_worker("streams-deadletters", ENV)
    try:
        await eventually(lambda: cass.one("SELECT like_count FROM posts WHERE post_id = %s", (int(post_id),)),
                         lambda row: row is not None and row.like_count == 1, timeout=90, interval=0.5)
        letters = await read_topic(settings, dead_letter_topic(likes), count=len(LIKE_AGENTS), timeout=30)
    finally:
        worker.stop()
    assert {(letter.key, letter.value) for letter in letters} == {(post_id.encode(), GARBAGE)}
    assert {dict(letter.headers)["photos-dead-agent"] for letter in letters} == LIKE_AGENTS

    listed = replay_dead(ENV, "--list", "likes")
    assert "4 dead letters not replayed yet (1 events)" in listed  # it would be replayed once, for the four agents
