"""Writing notifications: fold a batch of notes into their aggregates and move them up the list.

The notifications agent is the only writer, and all the notes of one aggregate come from one
Kafka partition (likes, comments and replies are keyed by post, follows by followee; a mention
aggregate has a single note), so one worker handles an aggregate at a time. For each aggregate
a batch touches (docs/notifications.md, "Write path"):

  1. read the aggregate (static columns) and which of the batch's actors it already counts;
  2. the actors not counted yet are the news; none means a replay or a repeat: nothing to do;
  3. write the list row at the aggregate's new position (a new position at most once per
     bump interval, otherwise the aggregate stays where it is);
  4. write the new actor rows and the aggregate in ONE conditional single-partition batch
     (IF revision = <the revision read>): atomic, so a replay finds its actors counted;
  5. delete the list row at the old position; now and then trim the user's list.

A crash between steps leaves at worst a list row whose aggregate does not point at it; the read
path skips such rows (and they expire), so nothing is lost, doubled or shown twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime

from app.ids import ID_EPOCH_MS, first_id_at, id_millis
from app.notifications.model import LATEST_ACTORS, Group, Note
from app.settings import Settings
from app.storage.notifications import NotificationRepository
from app.storage.users import UserRepository

MAX_ACTORS_PER_WRITE = 100  # actor rows per conditional batch: a few KB, one Paxos round each
MAX_ATTEMPTS = 8  # conditional writes lost to another writer before the batch is retried as a whole
TRIM_EVERY = 32  # one new list position in TRIM_EVERY also trims that user's list
CONCURRENCY = 64  # aggregates written at once per batch

OnChange = Callable[[Group], Awaitable[None]]


def trims_here(user_id: int, position: int) -> bool:
    """Whether moving an aggregate to `position` also trims the user's list (the same answer on replay)."""
    return hash((user_id, position)) % TRIM_EVERY == 0


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def position_ms(position: int) -> int:
    """The event time (Unix ms) a list position was made from (see `first_id_at`)."""
    return id_millis(position) + ID_EPOCH_MS


class NotificationWriter:
    def __init__(self, repo: NotificationRepository, users: UserRepository, *, ttl_s: int, max_actors: int,
                 bump_interval_s: int, max_per_user: int) -> None:
        self.repo = repo
        self.users = users
        self.ttl_s = ttl_s
        self.max_actors = max_actors
        self.bump_interval_ms = bump_interval_s * 1000
        self.max_per_user = max_per_user
        self._slots = asyncio.Semaphore(CONCURRENCY)

    @classmethod
    def for_settings(cls, settings: Settings, repo: NotificationRepository, users: UserRepository
                     ) -> NotificationWriter:
        return cls(
            repo,
            users,
            ttl_s=settings.notification_ttl_days * 86400,
            max_actors=settings.notification_max_actors,
            bump_interval_s=settings.notification_bump_interval_s,
            max_per_user=settings.notification_max_per_user,
        )

    async def apply(self, notes: Iterable[Note], on_change: OnChange | None = None) -> list[Group]:
        """Fold the notes into their aggregates; returns the aggregates that changed.

        `on_change` is called with each changed aggregate as soon as it is written (the live push),
        so the aggregates a failing batch did write are pushed before it is retried."""
        by_group: dict[tuple[int, str], list[Note]] = {}
        for note in sorted(notes, key=lambda n: n.at_ms):
            by_group.setdefault((note.recipient_id, note.group_key), []).append(note)
        changed = await asyncio.gather(
            *(self._apply_group(group_notes, on_change) for group_notes in by_group.values())
        )
        return [group for group in changed if group is not None]

    async def _apply_group(self, notes: list[Note], on_change: OnChange | None) -> Group | None:
        first_per_actor, seen = [], set()
        for note in notes:  # an actor counts once, from their first note (a repeat in the batch adds nothing)
            if note.actor_id not in seen:
                seen.add(note.actor_id)
                first_per_actor.append(note)
        changed = None
        async with self._slots:
            for start in range(0, len(first_per_actor), MAX_ACTORS_PER_WRITE):
                changed = await self._settle(first_per_actor[start : start + MAX_ACTORS_PER_WRITE]) or changed
        if changed is not None and on_change is not None:
            await on_change(changed)
        return changed

    async def _settle(self, notes: list[Note]) -> Group | None:
        """Apply one write's worth of notes (distinct actors, oldest first) to their aggregate."""
        user_id, group_key = notes[0].recipient_id, notes[0].group_key
        for attempt in range(MAX_ATTEMPTS):
            serial = attempt > 0  # after a lost condition, read what the other writer committed
            group, counted = await asyncio.gather(
                self.repo.group(user_id, group_key, serial=serial),
                self.repo.actors_among(user_id, group_key, [n.actor_id for n in notes], serial=serial),
            )
            news = [note for note in notes if note.actor_id not in counted]
            if not news:
                return None
            stored = news[: max(0, self.max_actors - (group.actor_count if group else 0))]
            updated = await self._next(group, news, stored)
            moved = group is None or updated.position != group.position
            if moved:
                await self.repo.add_to_list(user_id, updated.position, group_key, self.ttl_s)
            new_actors = [(note.actor_id, ms_to_datetime(note.at_ms)) for note in stored]
            if not await self.repo.save_group(updated, new_actors, group.revision if group else None, self.ttl_s):
                continue  # the row written above, if any, is not pointed at: the read path skips it
            if moved and group is not None:
                await self.repo.remove_from_list(user_id, group.position, group_key)
            if moved and trims_here(user_id, updated.position):
                await self.trim(user_id)
            return updated
        raise RuntimeError(f"notification aggregate ({user_id}, {group_key}) kept changing under this writer")

    async def _next(self, group: Group | None, news: list[Note], stored: list[Note]) -> Group:
        """The aggregate after `news` (distinct new actors, oldest first), of which `stored` are counted."""
        newest = news[-1]
        latest_ids = list(dict.fromkeys([n.actor_id for n in reversed(news)] + [
            actor_id for actor_id, _ in (group.latest_actors if group else ())
        ]))[:LATEST_ACTORS]
        known = dict(group.latest_actors) if group else {}
        missing = [actor_id for actor_id in latest_ids if actor_id not in known]
        found = await self.users.get_many(missing)
        names = {**known, **{actor_id: row.username for actor_id, row in found.items()}}
        latest = tuple((actor_id, names.get(actor_id)) for actor_id in latest_ids)
        candidate = first_id_at(newest.at_ms)
        if group is None:
            return Group(
                user_id=newest.recipient_id, group_key=newest.group_key, kind=newest.kind, post_id=newest.post_id,
                comment_id=newest.comment_id, actor_count=len(stored), capped=len(stored) < len(news),
                latest_actors=latest, position=candidate, revision=1, created_at=ms_to_datetime(news[0].at_ms),
                updated_at=ms_to_datetime(newest.at_ms),
            )
        recently_moved = newest.at_ms - position_ms(group.position) < self.bump_interval_ms
        return replace(
            group,
            comment_id=newest.comment_id if newest.comment_id is not None else group.comment_id,
            actor_count=group.actor_count + len(stored),
            capped=group.capped or len(stored) < len(news),
            latest_actors=latest,
            position=group.position if recently_moved else max(group.position, candidate),
            revision=group.revision + 1,
            updated_at=max(_aware(group.updated_at), ms_to_datetime(newest.at_ms)),
        )

    async def trim(self, user_id: int) -> None:
        """Keep the user's newest max_per_user entries; everything older goes in one range tombstone."""
        kept = await self.repo.list_page(user_id, None, self.max_per_user)
        if len(kept) == self.max_per_user:
            await self.repo.drop_older_than(user_id, kept[-1][0])


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
