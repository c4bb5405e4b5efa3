"""The story sweeper against real Cassandra and a real (local) media store: the media of expired
stories goes, with their records, and a minute once settled is not read again.

The records sit in minutes three days back that no other test writes to, and the sweeper keeps
its progress under its own name, so the stories of concurrent tests are never touched."""

import random
import time
from datetime import UTC, datetime

import pytest

from app.ids import IdGenerator
from app.media.store import LocalMediaStore
from app.storage.stories import EXPIRY_SHARDS, ExpiryPlace, StoryMediaLog
from app.stories.sweeper import MINUTES_PER_RUN, StorySweeper

ids = IdGenerator()


@pytest.fixture
async def media_log(cass):
    return await StoryMediaLog(cass, progress=f"test-{random.getrandbits(48)}").prepare()


async def test_expired_stories_lose_their_media_and_records(cass, media_log, tmp_path):
    store = LocalMediaStore(tmp_path, "http://media.test")
    start = int(time.time() // 60) - 3 * 24 * 60 - random.randrange(3_000)  # a quiet minute long ago
    await media_log.mark_settled(start - 1)
    stories = {}
    for offset in (0, 1, 1, 5):
        story_id = ids.next_id()
        expires_at = datetime.fromtimestamp((start + offset) * 60 + 30, UTC)
        keys = [f"s/{story_id}/{name}.jpg" for name in ("original", "thumbnail")]
        for key in keys:
            await store.put(key, b"jpeg bytes", "image/jpeg")
        place = await media_log.record(story_id, expires_at, keys)
        assert place == ExpiryPlace(start + offset, story_id % EXPIRY_SHARDS)
        stories[story_id] = (place, keys)

    report = await StorySweeper(media_log, store).run()

    assert (report.expired, report.removed_keys) == (4, 8)
    for place, keys in stories.values():
        assert [await store.exists(key) for key in keys] == [False, False]
        assert not {e.story_id for e in await media_log.entries(place)} & set(stories)
    # one run settles at most MINUTES_PER_RUN minutes: a sweeper that was down catches up in steps
    assert await media_log.settled_minute() == start + MINUTES_PER_RUN - 1
    again = await StorySweeper(media_log, store).run()
    await store.close()
    assert again.expired == 0
    assert await media_log.settled_minute() == start + 2 * MINUTES_PER_RUN - 1
