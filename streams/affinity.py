"""Likes and comments -> `affinity`: how much a reader engages with an author (the feed ranking's
relationship signal).

For each (reader, post) in a batch the agent records the interaction in `affinity_posts` (a like
as the latest like event says, so an unlike takes it back; a comment once written stays), then
recounts the reader's rows for that author and writes the absolute `affinity.interactions`.
Idempotent like every count here: a replayed event rewrites the same cells. It runs apart from
the like counts so that ranking work never slows the counts clients see.
"""

from __future__ import annotations

import asyncio
import time

import faust

from app.events import CommentChanged, LikeChanged
from app.settings import Settings
from app.storage.affinity import AffinityRepository
from app.wiring import Wiring
from streams.batches import each_batch, event_topic
from streams.retry import until_ready

BATCH_SIZE = 2000
BATCH_SECONDS = 2.0  # ranking can wait; bigger batches merge more of one reader's interactions


class AffinityUpdater:
    def __init__(self, affinity: AffinityRepository) -> None:
        self._affinity = affinity

    async def apply(self, events: list[LikeChanged | CommentChanged]) -> None:
        # the latest like event of each (reader, post) says whether it is liked now; events of two API
        # processes may arrive out of order, and then the next like or unlike of that post sets it right
        likes: dict[tuple[int, int], LikeChanged] = {}
        for e in sorted((e for e in events if isinstance(e, LikeChanged)), key=lambda e: e.at_ms):
            if e.actor_id != e.post_author_id and not e.recheck:  # a recheck's like may never have happened
                likes[e.actor_id, e.post_id] = e
        comments = {(e.actor_id, e.post_id): e.post_author_id for e in events
                    if isinstance(e, CommentChanged) and e.created and e.actor_id != e.post_author_id}
        await asyncio.gather(
            *(self._note_like(e) for e in likes.values()),
            *(self._note_comment(user, author, post) for (user, post), author in comments.items()),
        )
        pairs = {(e.actor_id, e.post_author_id) for e in likes.values()}
        pairs |= {(user, author) for (user, _), author in comments.items()}
        await asyncio.gather(*(self._recount(user, author) for user, author in pairs))

    async def _note_like(self, e: LikeChanged) -> None:
        await self._affinity.set_liked(e.actor_id, e.post_author_id, e.post_id, e.liked)

    async def _note_comment(self, user_id: int, author_id: int, post_id: int) -> None:
        await self._affinity.set_commented(user_id, author_id, post_id)

    async def _recount(self, user_id: int, author_id: int) -> None:
        read_at = time.time_ns() // 1000
        interactions = await self._affinity.count_interactions(user_id, author_id)
        await self._affinity.save_interactions(user_id, author_id, interactions, read_at)


async def make_updater(wiring: Wiring) -> AffinityUpdater:
    return AffinityUpdater((await wiring.storage()).affinity)


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    likes = event_topic(app, settings, "likes")
    comments = event_topic(app, settings, "comments")

    @app.agent(likes, name="affinity_likes")
    async def affinity_likes(stream) -> None:
        updater = await until_ready("affinity_likes", lambda: make_updater(wiring))
        await each_batch(stream, "affinity_likes", updater.apply, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=LikeChanged)

    @app.agent(comments, name="affinity_comments")
    async def affinity_comments(stream) -> None:
        updater = await until_ready("affinity_comments", lambda: make_updater(wiring))
        await each_batch(stream, "affinity_comments", updater.apply, size=BATCH_SIZE, within=BATCH_SECONDS,
                         settings=settings, value_type=CommentChanged)
