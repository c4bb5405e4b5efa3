"""The ranking log against real Cassandra: rows written in per-partition batches read back whole and paged, with
their TTL, and writing them again (a redelivered event) changes nothing."""

from __future__ import annotations

import secrets
import time

import pytest

from app.events import CommentChanged, CommentsOpened, FeedImpressions, LikeChanged, new_event_fields
from app.ids import IdGenerator
from app.ranking.features import FEATURE_VERSION, FEATURES
from app.storage.ranking_log import BATCH_ROWS, MS_PER_DAY, Engagement, Impression, RankingLog, day_of, shard_of
from streams.ranking_log import RankingLogWriter

ids = IdGenerator()
SHARDS = 16
TTL_S = 3 * 86_400


@pytest.fixture(scope="module")
async def log(cass) -> RankingLog:
    return await RankingLog(cass).prepare()


def a_day() -> int:
    """A day no other run writes (the rows are placed by it; these tests name their own days)."""
    return 1_000 + secrets.randbelow(19_000)  # past days: an engagement is written at its act's time


def impression(day: int, reader: int, request: int, position: int) -> Impression:
    return Impression(day=day, shard=shard_of(reader, SHARDS), reader_id=reader, request_id=request,
                      position=position, post_id=ids.next_id(), author_id=ids.next_id(),
                      served_ms=day * MS_PER_DAY + position, ranker="formula", feature_version=FEATURE_VERSION,
                      features=tuple(float(i) + 0.5 for i in range(len(FEATURES))))


async def read_all(pages) -> list:
    return [row async for page in pages for row in page]


async def test_impressions_read_back_whole_and_paged_with_their_ttl_and_a_rewrite_changes_nothing(log, cass):
    day, reader, other = a_day(), ids.next_id(), ids.next_id()
    request = ids.next_id()
    rows = [impression(day, reader, request, p) for p in range(2 * BATCH_ROWS + 3)]  # three batches
    others = [impression(day, other, ids.next_id(), p) for p in range(2)]
    await log.record_impressions(rows + others, TTL_S)

    assert await read_all(log.impressions(day, shard_of(reader, SHARDS), reader)) == rows
    assert await read_all(log.impressions(day, shard_of(reader, SHARDS), reader, page_rows=7)) == rows
    shard = shard_of(reader, SHARDS)
    whole = await read_all(log.impressions(day, shard))
    assert whole == sorted(rows + [r for r in others if r.shard == shard], key=lambda r: r.reader_id)
    assert await read_all(log.impressions(day + 1, shard, reader)) == []

    ttl = await cass.one("SELECT TTL(post_id) AS ttl FROM feed_impressions WHERE day = %s AND shard = %s"
                         " AND reader_id = %s LIMIT 1", (day, shard, reader))
    assert TTL_S - 60 <= ttl.ttl <= TTL_S

    await log.record_impressions(rows, TTL_S)  # redelivered
    assert await read_all(log.impressions(day, shard, reader)) == rows


async def test_an_engagement_keeps_the_latest_act_in_any_order_and_a_replay_changes_nothing(log, cass):
    day, reader, author = a_day(), ids.next_id(), ids.next_id()
    post, other_post = ids.next_id(), ids.next_id()
    shard = shard_of(reader, SHARDS)

    def act(kind: str, ms: int, post_id: int = post) -> Engagement:
        return Engagement(day=day, shard=shard, reader_id=reader, post_id=post_id, kind=kind, author_id=author,
                          at_ms=day * MS_PER_DAY + ms)

    await log.record_engagements([act("like", 500), act("like", 900), act("open", 100)], TTL_S)
    await log.record_engagements([act("like", 300)], TTL_S)  # an older like written later (a replay)
    await log.record_engagements([act("comment", 50, other_post), act("open", 100)], TTL_S)

    got = await read_all(log.engagements(day, shard, reader))
    assert sorted((r.post_id, r.kind, r.at_ms - day * MS_PER_DAY) for r in got) == sorted([
        (post, "like", 900), (post, "open", 100), (other_post, "comment", 50),
    ])
    assert {(r.day, r.shard, r.reader_id, r.author_id) for r in got} == {(day, shard, reader, author)}
    assert await read_all(log.engagements(day, shard, reader, page_rows=1)) == got
    ttl = await cass.one("SELECT TTL(at_ms) AS ttl FROM feed_engagements WHERE day = %s AND shard = %s"
                         " AND reader_id = %s AND post_id = %s AND kind = 'like'", (day, shard, reader, post))
    assert TTL_S - 60 <= ttl.ttl <= TTL_S


async def test_the_agents_writer_turns_events_into_rows_and_redelivery_changes_nothing(log):
    writer = RankingLogWriter(log, SHARDS, TTL_S)
    reader, author, post, request = ids.next_id(), ids.next_id(), ids.next_id(), ids.next_id()
    now = int(time.time() * 1000)
    page = FeedImpressions(**new_event_fields(reader), request_id=request, ranker="formula",
                           feature_version=FEATURE_VERSION, positions=[0, 2], post_ids=[post, ids.next_id()],
                           author_ids=[author, author], features=[[1.25] * len(FEATURES), [2.5] * len(FEATURES)])
    acts = [
        LikeChanged(**new_event_fields(reader), post_id=post, post_author_id=author, bucket=0, liked=True),
        LikeChanged(**new_event_fields(reader), post_id=post, post_author_id=author, bucket=0, liked=False),
        CommentChanged(**new_event_fields(author), post_id=post, post_author_id=author, comment_id=ids.next_id(),
                       parent_id=None, parent_author_id=None, mentions=[], created=True),  # the author's own
        CommentsOpened(**new_event_fields(reader), post_id=post, post_author_id=author),
    ]
    for _ in range(2):  # and redelivered
        await writer.impressions([page])
        await writer.engagements(acts)

    days = {day_of(now), day_of(int(time.time() * 1000))}  # the events' day (two around midnight)
    shard = shard_of(reader, SHARDS)
    served = [r for day in days for r in await read_all(log.impressions(day, shard, reader))]
    assert [(r.request_id, r.position, r.post_id, r.features) for r in served] == [
        (request, 0, post, (1.25,) * len(FEATURES)), (request, 2, page.post_ids[1], (2.5,) * len(FEATURES)),
    ]
    acted = [r for day in days for r in await read_all(log.engagements(day, shard, reader))]
    assert sorted(r.kind for r in acted) == ["like", "open"]  # the unlike removed nothing
    assert [r for day in days for r in await read_all(log.engagements(day, shard_of(author, SHARDS), author))] == []
