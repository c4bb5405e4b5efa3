"""What follows and follower counts do to feeds; run by the follow agent after each batch's recount.

- A follow copies the followee's recent posts into the follower's feed, or, when the followee is
  a celebrity, records the pull (`followed_celebrities`). An unfollow undoes both.
- An author whose follower count reaches feed_celebrity_followers becomes a celebrity: every
  follower gets a `followed_celebrities` row first, then the author is marked, so from the
  moment fan-out stops pushing, every follower already pulls. Falling below 90% of the threshold
  reverses it in the opposite order: the mark goes first (fan-out pushes again), then each
  follower gets the recent posts copied in before their pull row is removed.

Follow events are keyed by followee, so one worker handles every follow of an author and their
transitions in order: a follow can never slip between the two steps of a transition.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.feed.writer import FeedWriter, for_each
from app.storage.follows import FollowRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowState:
    follower_id: int
    followee_id: int
    following: bool  # the edge as it is now, read from `following`


class FeedGraph:
    def __init__(self, writer: FeedWriter, follows: FollowRepository, celebrity_followers: int) -> None:
        self.writer = writer
        self.feed = writer.feed
        self.follows = follows
        self.up_at = celebrity_followers
        self.down_below = int(celebrity_followers * 0.9)

    async def apply(self, states: list[FollowState], follower_totals: dict[int, int]) -> None:
        # transitions first: the per-follow effects below then see each author's new mode
        for author_id, total in follower_totals.items():
            await self.settle_mode(author_id, total)
        await for_each(states, self._follow_effect, 16)

    async def settle_mode(self, author_id: int, follower_count: int) -> None:
        celebrity = await self.feed.is_celebrity(author_id)
        if not celebrity and follower_count >= self.up_at:
            await self.become_celebrity(author_id)
        elif celebrity and follower_count < self.down_below:
            await self.stop_being_celebrity(author_id)

    async def become_celebrity(self, author_id: int) -> None:
        started, count = time.perf_counter(), 0
        async for page in self.follows.follower_pages(author_id):
            await for_each(page, lambda reader: self.feed.add_followed_celebrity(reader, author_id), 64)
            await self.writer.cache.invalidate(page)
            count += len(page)
        await self.feed.mark_celebrity(author_id)
        log.info("user %d: now pulled at read time by %d followers (%.2f s)", author_id, count,
                 time.perf_counter() - started)

    async def stop_being_celebrity(self, author_id: int) -> None:
        started, count = time.perf_counter(), 0
        await self.feed.unmark_celebrity(author_id)

        async def back_to_push(reader: int) -> None:
            await self.writer.copy_author(reader, author_id)
            await self.feed.remove_followed_celebrity(reader, author_id)

        async for page in self.follows.follower_pages(author_id):
            await for_each(page, back_to_push, 64)
            await self.writer.cache.invalidate(page)
            count += len(page)
        log.info("user %d: pushed to %d followers again (%.2f s)", author_id, count, time.perf_counter() - started)

    async def _follow_effect(self, state: FollowState) -> None:
        reader, author = state.follower_id, state.followee_id
        if state.following:
            await self.writer.cache.followed_again(reader, author)
            if await self.feed.is_celebrity(author):
                await self.feed.add_followed_celebrity(reader, author)
            else:
                await self.writer.copy_author(reader, author)
        else:
            await self.feed.remove_followed_celebrity(reader, author)
            await self.writer.remove_author(reader, author)
        await self.writer.cache.invalidate([reader])
