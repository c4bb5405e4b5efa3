"""Impressions, likes, comments and comment opens -> the ranking log (`feed_impressions`, `feed_engagements`;
docs/ranking.md#the-ranking-log).

- `impressions` (FeedImpressions, one per sampled page served): one `feed_impressions` row per post;
- `likes` (LikeChanged): a `like` engagement for a like (not an unlike, not a recheck, whose like may never
  have happened) of somebody else's post. An unlike deletes nothing: the like happened, and is a label;
- `comments` (CommentChanged): a `comment` engagement for a comment written on somebody else's post;
- `comment_opens` (CommentsOpened): an `open` engagement for every one.

Rows are placed by the event's day and the reader's shard, and written in batches per partition
(app/storage/ranking_log.py). Writing a row again rewrites the same cells, so a redelivered or replayed
event changes nothing. Apart from the other agents, so logging never slows what clients see.
"""

from __future__ import annotations

import faust

from app.events import CommentChanged, CommentsOpened, Event, FeedImpressions, LikeChanged
from app.settings import Settings
from app.storage.ranking_log import COMMENT, LIKE, OPEN, Engagement, Impression, RankingLog, day_of, shard_of
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

BATCH_SIZE = 2000
IMPRESSION_BATCH_SIZE = 500  # events of up to a page of posts each
BATCH_SECONDS = 2.0  # the log can wait; bigger batches fill the partitions' write batches


def impression_rows(event: FeedImpressions, shards: int) -> list[Impression]:
    """One row per post of the served page; ValueError when the event's lists disagree in length."""
    day, shard = day_of(event.at_ms), shard_of(event.actor_id, shards)
    return [
        Impression(day=day, shard=shard, reader_id=event.actor_id, request_id=event.request_id, position=position,
                   post_id=post_id, author_id=author_id, served_ms=event.at_ms, ranker=event.ranker,
                   feature_version=event.feature_version, features=tuple(float(v) for v in features))
        for position, post_id, author_id, features in zip(
            event.positions, event.post_ids, event.author_ids, event.features, strict=True
        )
    ]


def engagement_row(event: Event, shards: int) -> Engagement | None:
    """The engagement an event is, or None: an unlike, a recheck, a deleted comment, acting on your own post."""
    if isinstance(event, CommentsOpened):
        kind = OPEN
    elif isinstance(event, LikeChanged):
        if not event.liked or event.recheck or event.actor_id == event.post_author_id:
            return None
        kind = LIKE
    elif isinstance(event, CommentChanged):
        if not event.created or event.actor_id == event.post_author_id:
            return None
        kind = COMMENT
    else:
        return None
    return Engagement(day=day_of(event.at_ms), shard=shard_of(event.actor_id, shards), reader_id=event.actor_id,
                      post_id=event.post_id, kind=kind, author_id=event.post_author_id, at_ms=event.at_ms)


class RankingLogWriter:
    def __init__(self, log: RankingLog, shards: int, ttl_s: int) -> None:
        self._log = log
        self._shards = shards
        self._ttl_s = ttl_s

    async def impressions(self, events: list[FeedImpressions]) -> None:
        rows = [row for e in events for row in impression_rows(e, self._shards)]
        await self._log.record_impressions(rows, self._ttl_s)

    async def engagements(self, events: list[Event]) -> None:
        rows = [row for row in (engagement_row(e, self._shards) for e in events) if row is not None]
        await self._log.record_engagements(rows, self._ttl_s)


async def make_writer(settings: Settings, wiring: Wiring) -> RankingLogWriter:
    return RankingLogWriter((await wiring.storage()).ranking_log, settings.ranking_log_shards,
                            settings.ranking_log_ttl_days * 86_400)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    impressions = event_topic(app, settings, "impressions")
    likes = event_topic(app, settings, "likes")
    comments = event_topic(app, settings, "comments")
    opens = event_topic(app, settings, "comment_opens")

    @app.agent(impressions, name="ranking_log_impressions")
    async def ranking_log_impressions(stream) -> None:
        writer = await until_ready("ranking_log_impressions", lambda: make_writer(settings, wiring))
        await each_batch(stream, "ranking_log_impressions", writer.impressions, size=IMPRESSION_BATCH_SIZE,
                         within=BATCH_SECONDS, settings=settings, value_type=FeedImpressions)

    @app.agent(likes, name="ranking_log_likes")
    async def ranking_log_likes(stream) -> None:
        writer = await until_ready("ranking_log_likes", lambda: make_writer(settings, wiring))
        await each_batch(stream, "ranking_log_likes", writer.engagements, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=LikeChanged)

    @app.agent(comments, name="ranking_log_comments")
    async def ranking_log_comments(stream) -> None:
        writer = await until_ready("ranking_log_comments", lambda: make_writer(settings, wiring))
        await each_batch(stream, "ranking_log_comments", writer.engagements, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=CommentChanged)

    @app.agent(opens, name="ranking_log_opens")
    async def ranking_log_opens(stream) -> None:
        writer = await until_ready("ranking_log_opens", lambda: make_writer(settings, wiring))
        await each_batch(stream, "ranking_log_opens", writer.engagements, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=CommentsOpened)
