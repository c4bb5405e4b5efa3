"""The ranking log without Cassandra: which events become which rows, where rows are placed, how a write is cut
into batches, and which comment reads are opens."""

from __future__ import annotations

from collections import Counter

import pytest

from app.comments.service import CommentService
from app.events import CommentChanged, CommentsOpened, FeedImpressions, LikeChanged, PostCreated, new_event_fields
from app.ids import IdGenerator
from app.ranking.features import FEATURE_VERSION
from app.storage.ranking_log import (
    BATCH_ROWS,
    Engagement,
    day_of,
    latest_engagements,
    partition_batches,
    shard_of,
)
from streams.ranking_log import RankingLogWriter, engagement_row, impression_rows
from tests.unit.test_comments import AUTHOR, FAN, POST, service

SHARDS = 16
READER, WRITER, POST_ID = 1001, 2002, 3003
DAY_MS = 86_400_000


def at(event, ms: int):
    event.at_ms = ms
    return event


def liked(actor: int = READER, author: int = WRITER, yes: bool = True, recheck: bool = False) -> LikeChanged:
    return LikeChanged(**new_event_fields(actor), post_id=POST_ID, post_author_id=author, bucket=0, liked=yes,
                       recheck=recheck)


def commented(actor: int = READER, author: int = WRITER, created: bool = True) -> CommentChanged:
    return CommentChanged(**new_event_fields(actor), post_id=POST_ID, post_author_id=author, comment_id=9,
                          parent_id=None, parent_author_id=None, mentions=[], created=created)


def opened(actor: int = READER, author: int = WRITER) -> CommentsOpened:
    return CommentsOpened(**new_event_fields(actor), post_id=POST_ID, post_author_id=author)


def served(positions=(0, 3), post_ids=(11, 12), author_ids=(21, 22), features=None) -> FeedImpressions:
    features = features if features is not None else [[float(p), 1.5] for p in positions]
    return FeedImpressions(**new_event_fields(READER), request_id=77, ranker="formula",
                           feature_version=FEATURE_VERSION, positions=list(positions), post_ids=list(post_ids),
                           author_ids=list(author_ids), features=features)


def test_the_day_is_the_utc_day_of_the_millisecond_time():
    assert [day_of(ms) for ms in (0, DAY_MS - 1, DAY_MS, 20_794 * DAY_MS + 5)] == [0, 0, 1, 20_794]


def test_a_shard_is_stable_in_range_and_spreads_ids_whose_low_bits_are_equal():
    ids = IdGenerator(shard=3)
    readers = [ids.next_id() for _ in range(2000)]
    assert shard_of(readers[0], SHARDS) == shard_of(readers[0], SHARDS)
    shards = Counter(shard_of(r, SHARDS) for r in readers)
    assert set(shards) == set(range(SHARDS))
    assert max(shards.values()) < 2000 / SHARDS * 1.5  # spread about evenly
    # ids of a new sequence each millisecond end in the same bits: `% shards` would pile them up
    snowflakes = [(ms << 23) | (3 << 10) for ms in range(1000)]
    assert len({r % SHARDS for r in snowflakes}) == 1
    assert len({shard_of(r, SHARDS) for r in snowflakes}) == SHARDS
    assert shard_of(-5, SHARDS) in range(SHARDS)  # any bigint


def test_an_impressions_event_is_one_row_per_post_placed_by_its_day_and_reader():
    event = at(served(), 20_000 * DAY_MS + 1234)
    rows = impression_rows(event, SHARDS)
    assert [(r.position, r.post_id, r.author_id, r.features) for r in rows] == [
        (0, 11, 21, (0.0, 1.5)), (3, 12, 22, (3.0, 1.5)),
    ]
    assert {(r.day, r.shard, r.reader_id, r.request_id, r.served_ms, r.ranker, r.feature_version) for r in rows} == {
        (20_000, shard_of(READER, SHARDS), READER, 77, 20_000 * DAY_MS + 1234, "formula", FEATURE_VERSION)
    }


def test_an_impressions_event_whose_lists_disagree_is_refused():
    with pytest.raises(ValueError):
        impression_rows(served(positions=(0,), post_ids=(11, 12), author_ids=(21, 22), features=[[1.0]] * 2), SHARDS)


def test_likes_and_comments_of_somebody_elses_post_are_engagements_and_nothing_else_is():
    row = engagement_row(at(liked(), 5 * DAY_MS + 9), SHARDS)
    assert row == Engagement(day=5, shard=shard_of(READER, SHARDS), reader_id=READER, post_id=POST_ID, kind="like",
                             author_id=WRITER, at_ms=5 * DAY_MS + 9)
    assert engagement_row(commented(), SHARDS).kind == "comment"
    assert engagement_row(opened(), SHARDS).kind == "open"
    assert engagement_row(opened(actor=WRITER), SHARDS).kind == "open"  # every open is logged
    not_engagements = [
        liked(yes=False),  # an unlike: the like stays logged, nothing is added
        liked(recheck=True),  # the like may never have happened
        liked(actor=WRITER),  # your own post
        commented(created=False),  # a deletion
        commented(actor=WRITER),
        PostCreated(**new_event_fields(READER), post_id=POST_ID, hashtags=[], mentions=[]),
    ]
    assert [engagement_row(e, SHARDS) for e in not_engagements] == [None] * len(not_engagements)


def test_the_latest_act_of_a_day_is_kept_and_each_day_has_its_own():
    rows = [engagement_row(at(liked(), ms), SHARDS) for ms in (DAY_MS + 5, DAY_MS + 50, DAY_MS + 7, 2 * DAY_MS)]
    rows.append(engagement_row(at(commented(), DAY_MS + 1), SHARDS))
    kept = sorted((r.day, r.kind, r.at_ms) for r in latest_engagements(rows))
    assert kept == [(1, "comment", DAY_MS + 1), (1, "like", DAY_MS + 50), (2, "like", 2 * DAY_MS)]


def test_a_write_is_cut_into_batches_of_one_partition_each():
    by_partition = {(1, 0): [("a", i) for i in range(2 * BATCH_ROWS + 7)], (1, 5): [("b", 0)], (2, 0): []}
    batches = partition_batches(by_partition)
    assert [len(b) for b in batches] == [BATCH_ROWS, BATCH_ROWS, 7, 1]
    assert all(len({row[0] for row in b}) == 1 for b in batches)
    assert [row for b in batches for row in b] == by_partition[1, 0] + by_partition[1, 5]


class FakeLog:
    def __init__(self) -> None:
        self.impressions: list = []
        self.engagements: list = []
        self.ttls: set[int] = set()

    async def record_impressions(self, rows, ttl_s: int) -> None:
        self.impressions += rows
        self.ttls.add(ttl_s)

    async def record_engagements(self, rows, ttl_s: int) -> None:
        self.engagements += rows
        self.ttls.add(ttl_s)


async def test_the_writer_turns_a_batch_of_events_into_rows_with_the_ttl():
    log = FakeLog()
    writer = RankingLogWriter(log, SHARDS, 3600)
    await writer.impressions([served(), served(positions=(5,), post_ids=(13,), author_ids=(23,))])
    await writer.engagements([liked(), liked(yes=False), commented(actor=WRITER), opened()])
    assert [r.position for r in log.impressions] == [0, 3, 5]
    assert sorted(r.kind for r in log.engagements) == ["like", "open"]
    assert log.ttls == {3600}


class FakeImpressions:
    def __init__(self) -> None:
        self.opened: list[tuple[int, int, int]] = []

    def comments_opened(self, reader_id: int, post_id: int, post_author_id: int) -> None:
        self.opened.append((reader_id, post_id, post_author_id))


class Listed:
    """The post's comment list (newest first) over the fake's rows, and the reads of a page."""

    def __init__(self, rows: dict) -> None:
        self.rows = rows

    async def page(self, key, bucket: int, before: int, limit: int) -> tuple[list[int], int | None]:
        return sorted((i for i in self.rows if i < before), reverse=True)[:limit], 0

    async def get_many(self, ids) -> dict:
        return {i: self.rows[i] for i in ids if i in self.rows}


class Authors:
    async def get_many(self, ids) -> dict:
        return {}


async def comments_with_log() -> tuple[CommentService, FakeImpressions]:
    comments = service()
    for text in ("one", "two", "three"):
        await comments.create(AUTHOR, POST, text, None)
    listed = Listed(comments.comments.rows)
    comments.comments.top_level, comments.comments.get_many, comments.users = listed, listed.get_many, Authors()
    comments.impressions = FakeImpressions()
    return comments, comments.impressions


async def test_reading_the_first_page_of_comments_opens_them_and_later_pages_do_not():
    comments, log = await comments_with_log()
    first, cursor = await comments.top_level(POST, 2, None, FAN)
    assert len(first) == 2 and cursor is not None
    assert log.opened == [(FAN, POST, AUTHOR)]  # the post's author, from the post the page read anyway
    await comments.top_level(POST, 2, cursor, FAN)
    await comments.top_level(POST, 2, None)  # no reader named (a tool): nothing to log
    assert log.opened == [(FAN, POST, AUTHOR)]


async def test_an_open_of_a_post_that_does_not_exist_is_not_logged():
    comments, log = await comments_with_log()
    with pytest.raises(Exception, match="no such post"):
        await comments.top_level(POST + 1, 2, None, FAN)
    assert log.opened == []

