"""The seeder's model (loadtest/seeding/model.py): deterministic, collision-free, and shaped as documented."""

from __future__ import annotations

import re
import statistics

import pytest

from app.ids import id_millis
from app.posts import text
from loadtest.seeding.model import (
    DAY_MS,
    MAX_SEED,
    MAX_USERS,
    POST_SPAN_MS,
    STORY_SPAN_MS,
    TAG_WORDS,
    IdMaker,
    Params,
    anchor_from_user0,
    bernoulli_indices,
    build,
    hashtag,
    rng_for,
    username,
)

ANCHOR = 1_796_000_000_000  # 2026-12-01, ms


@pytest.fixture(scope="module")
def world():
    return build(Params(users=3_000, seed=42, celebrity_followers=400, followers_per_bucket=300), ANCHOR)


def test_the_same_seed_and_anchor_give_the_same_world(world):
    again = build(Params(users=3_000, seed=42, celebrity_followers=400, followers_per_bucket=300), ANCHOR)
    assert again.user_ids == world.user_ids and again.usernames == world.usernames
    assert again.following == world.following and again.following_ms == world.following_ms
    assert again.post_ids == world.post_ids and again.post_caption == world.post_caption
    assert again.likers == world.likers and again.liked_ms == world.liked_ms
    assert [c.comment_id for c in again.comments] == [c.comment_id for c in world.comments]
    assert [s.story_id for s in again.stories] == [s.story_id for s in world.stories]
    assert again.active == world.active


def test_different_seeds_share_no_ids_names_or_tags(world):
    other = build(Params(users=3_000, seed=43), ANCHOR)
    assert not set(world.user_ids) & set(other.user_ids)
    assert not set(world.post_ids) & set(other.post_ids)
    assert not set(world.usernames) & set(other.usernames)
    assert not {world.tag_name(t) for ts in world.post_tags for t in ts} & {
        other.tag_name(t) for ts in other.post_tags for t in ts}


def test_ids_are_unique_and_made_at_their_objects_time(world):
    everything = [*world.user_ids, *world.post_ids, *(c.comment_id for c in world.comments),
                  *(s.story_id for s in world.stories)]
    assert len(set(everything)) == len(everything)
    assert all(id_millis(pid) + 1_767_225_600_000 >= ms for pid, ms in zip(world.post_ids, world.post_ms, strict=True))
    assert list(world.post_ids) == sorted(world.post_ids)
    assert anchor_from_user0(world.user_ids[0]) == ANCHOR


def test_an_id_already_made_moves_a_millisecond_on():
    ids = IdMaker(7, "post")
    first, second = ids.make(ANCHOR, 5), ids.make(ANCHOR, 5 + 1024)  # same ms, same sequence bits
    assert first != second and id_millis(second) == id_millis(first) + 1


def test_names_fit_the_api_rules():
    assert re.fullmatch(r"[a-z0-9._]{3,30}", username(MAX_SEED, MAX_USERS - 1))
    assert len(set(TAG_WORDS)) == len(TAG_WORDS)
    for index in (0, len(TAG_WORDS), 7 * len(TAG_WORDS) + 3):
        tag = hashtag(MAX_SEED, index)
        assert text.hashtags(f"x #{tag}") == [tag]


def test_following_is_lognormal_distinct_and_capped(world):
    counts = [len(f) for f in world.following]
    assert min(counts) >= 1
    assert 11 <= statistics.median(counts) <= 19  # lognormal with median 15
    assert statistics.mean(counts) > statistics.median(counts)  # right-skewed
    for user, followees in enumerate(world.following):
        assert user not in followees and len(set(followees)) == len(followees)
    capped = build(Params(users=500, seed=1, max_following=12, following_median=40), ANCHOR)
    assert max(len(f) for f in capped.following) == 12


def test_popularity_is_zipf_shaped(world):
    followers = sorted((len(f) for f in world.followers), reverse=True)
    assert sum(followers[:30]) > 0.2 * sum(followers)  # the top 1% of accounts hold over a fifth of all follows
    assert followers[0] > 20 * statistics.median(followers)  # a celebrity, while most have few
    # each draw picks rank r with probability r^-0.9 / H(N, 0.9): a user following k accounts follows the most
    # popular one with probability about 1 - (1 - p1)^k
    for rank in (0, 9, 99):
        p = (rank + 1) ** -0.9 / sum(r ** -0.9 for r in range(1, 3_001))
        user = world.by_rank[rank]
        expected = sum(1 - (1 - p) ** len(f) for u, f in enumerate(world.following) if u != user)
        assert 0.9 < len(world.followers[user]) / expected < 1.15, rank


def test_celebrities_and_follower_buckets(world):
    celebrities = [u for u in range(3_000) if world.is_celebrity(u)]
    assert celebrities and all(world.follower_count(u) >= 400 for u in celebrities)
    big = world.by_rank[0]
    buckets = world.follower_buckets(big)
    assert len(buckets) > 1 and all(len(b) == 300 for b in buckets[:-1]) and len(buckets[-1]) <= 300
    made = dict(zip(world.followers[big], world.followers_ms[big], strict=True))
    order = [made[f] for bucket in buckets for f in bucket]
    assert order == sorted(order)  # buckets fill in follow order
    assert world.open_follower_bucket(big) == world.follower_count(big) // 300
    assert world.open_follower_bucket(world.by_rank[-1]) is None


def test_follows_come_between_the_accounts_and_the_posts(world):
    for user in range(0, 3_000, 97):
        for followee, made in zip(world.following[user], world.following_ms[user], strict=True):
            assert max(world.user_ms[user], world.user_ms[followee]) < made < world.post_start_ms


def test_posts_captions_likes_and_comments(world):
    assert all(ANCHOR - POST_SPAN_MS <= ms < ANCHOR for ms in world.post_ms)
    posting = [len(p) for p in world.posts_by_author]
    assert 2.0 < statistics.mean(posting) < 3.0  # lognormal rate, median 1.5 per 28 days
    for post in range(0, len(world.post_ids), 53):
        author = world.post_author[post]
        assert text.hashtags(world.post_caption[post]) == [world.tag_name(t) for t in world.post_tags[post]]
        followees = {world.usernames[f] for f in world.following[author]}
        assert set(text.mentions(world.post_caption[post])) <= followees
        followers = set(world.followers[author])
        assert set(world.likers[post]) <= followers and len(set(world.likers[post])) == len(world.likers[post])
        assert all(world.post_ms[post] < ms < ANCHOR for ms in world.liked_ms[post])
        assert list(world.liked_ms[post]) == sorted(world.liked_ms[post])
    comments = {c.comment_id: c for c in world.comments}
    for comment in world.comments:
        assert world.post_ms[comment.post] < comment.at_ms < ANCHOR
        if comment.parent_id is not None:
            parent = comments[comment.parent_id]
            assert parent.parent_id is None and parent.post == comment.post and parent.at_ms < comment.at_ms
            assert comment.author == world.post_author[comment.post]  # the author answers


def test_stories_are_live_at_the_anchor_and_readers_recent(world):
    assert world.stories
    for story in world.stories:
        assert ANCHOR - STORY_SPAN_MS - 60_000 <= story.at_ms < ANCHOR < story.expires_ms
        assert story.expires_ms - story.at_ms == 86_400_000
    share = sum(world.active) / len(world.active)
    assert 0.2 < share < 0.3
    assert all(ANCHOR - 2 * DAY_MS < world.last_read_ms[u] <= ANCHOR for u in range(3_000) if world.active[u])


def test_bernoulli_indices_keep_each_index_with_the_probability():
    rng = rng_for(1, "test")
    kept = bernoulli_indices(rng, 100_000, 0.03)
    assert kept == sorted(set(kept)) and all(0 <= i < 100_000 for i in kept)
    assert 2_700 < len(kept) < 3_300
    assert bernoulli_indices(rng, 10, 0) == [] and bernoulli_indices(rng, 5, 1) == [0, 1, 2, 3, 4]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="--users"):
        Params(users=1, seed=1).check()
    with pytest.raises(ValueError, match="--seed"):
        Params(users=10, seed=-1).check()
