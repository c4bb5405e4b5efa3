"""Stories without I/O: the tray's order, video detection, remaining life, the sweeper's walk."""

import asyncio
from datetime import UTC, datetime, timedelta

from app.cursors import CursorCodec
from app.ids import IdGenerator
from app.storage.stories import ExpiryPlace, remaining_s, row_ttl_s
from app.stories.routes import looks_like_video
from app.stories.service import StoryService, TrayEntry, order_tray
from app.stories.sweeper import FIRST_RUN_LOOKBACK_MIN, StorySweeper


def entry(author: int, stories: set[int], seen: set[int] = frozenset(), affinity: int = 0) -> TrayEntry:
    return TrayEntry(author, f"user{author}", frozenset(stories), frozenset(seen), affinity)


def test_the_tray_puts_unseen_first_then_affinity_then_the_newest_story():
    entries = [
        entry(1, {100}),  # unseen, no affinity, oldest
        entry(2, {300}, seen={300}, affinity=50),  # all seen: last, however close
        entry(3, {200}, affinity=3),  # unseen, some affinity
        entry(4, {400, 150}, seen={150}),  # unseen (400), newest
        entry(5, {250}, seen={250}),  # all seen, older than 2's but less affinity
    ]
    assert [e.author_id for e in order_tray(entries)] == [3, 4, 1, 2, 5]


def test_an_author_with_any_unseen_story_counts_as_unseen():
    assert entry(1, {1, 2, 3}, seen={1, 3}).unseen_count == 1
    assert entry(1, {1, 2}, seen={1, 2, 9}).unseen_count == 0  # 9 expired from story_ids already


def test_a_tray_entry_shows_when_its_latest_story_was_posted():
    story_id = IdGenerator(shard=1).next_id()
    shown = StoryService._tray_json(entry(1, {story_id}))
    latest_at = datetime.fromisoformat(shown["latest_at"].replace("Z", "+00:00"))
    assert abs(latest_at - datetime.now(UTC)) < timedelta(minutes=1), shown["latest_at"]


def test_video_containers_are_recognised_by_their_magic_bytes():
    assert looks_like_video(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16)
    assert looks_like_video(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 16)
    assert looks_like_video(b"\x1a\x45\xdf\xa3" + b"\x00" * 16)
    assert looks_like_video(b"RIFF\x00\x00\x00\x00AVI LIST")
    assert not looks_like_video(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 16)  # a HEIC photo
    assert not looks_like_video(b"\xff\xd8\xff\xe0" + b"\x00" * 16)  # JPEG
    assert not looks_like_video(b"RIFF\x00\x00\x00\x00WEBPVP8 ")  # WebP
    assert not looks_like_video(b"")


def test_remaining_life_rounds_up_and_goes_non_positive_at_expiry():
    now = 1_800_000_000.0
    expires = datetime.fromtimestamp(now + 10.2, UTC)
    assert remaining_s(expires, now) == 11
    assert remaining_s(expires.replace(tzinfo=None), now) == 11  # the driver's naive UTC
    assert remaining_s(expires, now + 10.2) == 0
    assert remaining_s(expires - timedelta(seconds=60), now) < 0


class FakeLog:
    def __init__(self, entries: dict[ExpiryPlace, list], settled: int | None) -> None:
        self.entries_by_place = entries
        self.settled = settled
        self.forgotten: list[int] = []
        self.read: set[int] = set()

    async def settled_minute(self):
        return self.settled

    async def mark_settled(self, minute: int) -> None:
        self.settled = minute

    async def entries(self, place: ExpiryPlace) -> list:
        self.read.add(place.minute)
        return self.entries_by_place.get(place, [])

    async def forget(self, place: ExpiryPlace, story_id: int) -> None:
        self.forgotten.append(story_id)


class FakeStore:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def delete_many(self, keys) -> None:
        self.deleted += keys


class Record:
    def __init__(self, story_id: int, expires: float) -> None:
        self.story_id = story_id
        self.expires_at = datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
        self.keys = {f"s/{story_id}/original.jpg"}


def test_the_sweeper_keeps_live_stories_and_settles_only_past_minutes():
    now = 1_800_000_030.0  # 30 s into a minute
    minute = int(now // 60)
    log = FakeLog({
        ExpiryPlace(minute - 2, 1): [Record(1, (minute - 2) * 60 + 5)],
        ExpiryPlace(minute, 2): [Record(2, now - 1), Record(3, now + 20)],  # one expired, one still live
    }, settled=minute - 3)
    store = FakeStore()
    report = asyncio.run(StorySweeper(log, store).run(now))
    assert sorted(log.forgotten) == [1, 2]
    assert store.deleted == ["s/1/original.jpg", "s/2/original.jpg"]
    assert (report.expired, report.removed_keys) == (2, 2)
    assert log.settled == minute - 1  # the current minute may still hold live stories


def test_the_first_sweep_ever_looks_back_a_bounded_while():
    now = 1_800_000_000.0
    log = FakeLog({}, settled=None)
    asyncio.run(StorySweeper(log, FakeStore()).run(now))
    assert min(log.read) == int(now // 60) - FIRST_RUN_LOOKBACK_MIN


class FakeFollows:
    def __init__(self, followed: set[int]) -> None:
        self.followed = followed
        self.asked: list[list[int]] = []

    async def is_following(self, reader_id: int, authors) -> set[int]:
        self.asked.append(list(authors))
        return self.followed & set(authors)


def tray_service(entries: list[TrayEntry], follows: FakeFollows) -> StoryService:
    service = StoryService(stories=None, media_log=None, users=None, follows=follows, feed=None, affinity=None,
                           store=None, processor=None, events=None, ids=None, cursors=CursorCodec("test"),
                           ttl_s=86400, max_live=100)

    async def tray_entries(reader_id: int) -> list[TrayEntry]:
        return entries

    service.tray_entries = tray_entries
    return service


def test_tray_pages_skip_unfollowed_authors_and_check_only_what_they_show():
    entries = [entry(author, {1000 - author}) for author in range(1, 8)]  # newest first: 1, 2, ..., 7
    follows = FakeFollows({1, 3, 4, 6, 7})  # 2 and 5 were unfollowed since their stories were pushed
    service = tray_service(entries, follows)
    pages, cursor = [], None
    while True:
        items, cursor = asyncio.run(service.tray(42, 2, cursor))
        pages.append([item["author"]["id"] for item in items])
        if cursor is None:
            break
    assert pages == [["1", "3"], ["4", "6"], ["7"]]
    assert max(len(asked) for asked in follows.asked) <= 3  # never the whole tray at once


def test_a_rows_ttl_outlives_cassandras_whole_second_truncation():
    """Cassandra counts a TTL from the write's whole second: a row written at x.98 s with 11 s left of its
    story's 10.2 could die at x + 11, before the story expires; one more second keeps it to the end."""
    now = 1_800_000_000.98
    expires = datetime.fromtimestamp(now + 10.2, UTC)
    ttl = row_ttl_s(expires, now)
    assert int(now) + ttl >= now + 10.2  # alive, in Cassandra's reckoning, until the story expires
    assert ttl == 12
    assert row_ttl_s(expires, now + 10.2) == 0 and row_ttl_s(expires - timedelta(seconds=60), now) < 0
