"""The seed ranker and the bounded concurrency helper of the feed."""

from __future__ import annotations

import asyncio

import pytest

from app.feed.ranking import Candidate, SeedRanker
from app.feed.writer import for_each
from app.ids import first_id_at
from app.storage.feed import Entry, newest_first

NOW_MS = 1_780_000_000_000
HOUR = 3_600_000


def candidate(hours_old: float, likes=0, comments=0, interactions=0, author=1) -> Candidate:
    return Candidate(first_id_at(int(NOW_MS - hours_old * HOUR)), author, likes, comments, interactions)


def order(candidates: list[Candidate]) -> list[Candidate]:
    return SeedRanker().rank(candidates, NOW_MS)


def test_with_nothing_else_to_go_on_newer_comes_first():
    old, new = candidate(5), candidate(1)
    assert order([old, new]) == [new, old]


def test_engagement_lifts_an_older_post_and_comments_weigh_more_than_likes():
    quiet_new, liked_old = candidate(1), candidate(6, likes=200)
    assert order([quiet_new, liked_old]) == [liked_old, quiet_new]
    liked, commented = candidate(2, likes=30), candidate(2, comments=12)  # 36 like-equivalents beat 30
    assert order([liked, commented])[0] == commented


def test_engagement_counts_logarithmically_so_a_tenfold_adds_a_constant():
    ranker = SeedRanker()

    def score(likes: int) -> float:
        return ranker.score(candidate(48, likes=likes), NOW_MS)

    assert score(999) - score(99) == pytest.approx(score(9_999) - score(999), rel=1e-3)
    # ten times the likes is worth about 20 hours of age
    assert order([candidate(30, likes=999), candidate(0, likes=99)])[0] == candidate(0, likes=99)
    assert order([candidate(15, likes=999), candidate(0, likes=99)])[0] == candidate(15, likes=999)


def test_relationship_lifts_authors_the_reader_engages_with_up_to_a_cap():
    stranger, friend = candidate(2, author=1), candidate(3, interactions=20, author=2)
    assert order([stranger, friend]) == [friend, stranger]
    ranker = SeedRanker()
    assert ranker.score(candidate(3, interactions=30), NOW_MS) == ranker.score(candidate(3, interactions=300), NOW_MS)


def test_ties_are_broken_by_the_newer_id_so_the_order_is_deterministic():
    a = Candidate(first_id_at(NOW_MS) + 1, 1, 0, 0, 0)
    b = Candidate(first_id_at(NOW_MS) + 2, 2, 0, 0, 0)
    assert order([a, b]) == order([b, a]) == [b, a]


def test_newest_first_merges_sources_and_drops_duplicates():
    merged = newest_first([Entry(3, 1), Entry(9, 2), Entry(3, 1), Entry(5, 1)])
    assert merged == [Entry(9, 2), Entry(5, 1), Entry(3, 1)]


async def test_for_each_bounds_concurrency_and_visits_every_item_once():
    running, peak, seen = 0, 0, []

    async def action(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        seen.append(item)
        running -= 1

    await for_each(list(range(100)), action, 7)
    assert sorted(seen) == list(range(100))
    assert peak == 7


async def test_for_each_propagates_the_first_error():
    async def action(item: int) -> None:
        if item == 13:
            raise ValueError(item)

    with pytest.raises(ValueError):
        await for_each(list(range(50)), action, 4)
