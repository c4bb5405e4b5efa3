"""The affinity agent against real Cassandra: likes and comments become absolute interaction counts."""

from datetime import UTC, datetime

import pytest

from app.events import CommentChanged, LikeChanged, new_event_fields
from app.ids import IdGenerator
from app.storage.affinity import AffinityRepository
from streams.affinity import AffinityUpdater

ids = IdGenerator()


@pytest.fixture(scope="module")
async def affinity(cass):
    return await AffinityRepository(cass).prepare()


@pytest.fixture(scope="module")
async def updater(affinity):
    return AffinityUpdater(affinity)


def liked(user: int, author: int, post: int, yes: bool = True) -> LikeChanged:
    return LikeChanged(**new_event_fields(user), post_id=post, post_author_id=author, bucket=0, liked=yes)


def commented(user: int, author: int, post: int) -> CommentChanged:
    return CommentChanged(**new_event_fields(user), post_id=post, post_author_id=author, comment_id=ids.next_id(),
                          parent_id=None, parent_author_id=None, mentions=[], created=True)


async def test_likes_and_comments_count_per_author_and_replays_change_nothing(updater, likes, affinity):
    reader, author, other_author = ids.next_id(), ids.next_id(), ids.next_id()
    posts = [ids.next_id() for _ in range(3)]
    for post in posts:
        await likes.like(reader, post, datetime.now(UTC), 0)
    events = [liked(reader, author, post) for post in posts] + [commented(reader, author, posts[0])]
    events.append(commented(reader, other_author, ids.next_id()))
    await updater.apply(events)
    await updater.apply(events)  # redelivered
    assert await affinity.of_reader(reader) == {author: 4, other_author: 1}

    await likes.unlike(reader, posts[1])
    await updater.apply([liked(reader, author, posts[1], yes=False)])
    assert await affinity.of_reader(reader) == {author: 3, other_author: 1}


async def test_acting_on_your_own_posts_is_no_affinity(updater, likes, affinity):
    author = ids.next_id()
    post = ids.next_id()
    await likes.like(author, post, datetime.now(UTC), 0)
    await updater.apply([liked(author, author, post), commented(author, author, post)])
    assert await affinity.of_reader(author) == {}
