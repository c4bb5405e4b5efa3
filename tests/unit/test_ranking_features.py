"""The ranking features (app/ranking/features.py) and the impression log's sampling and events."""

from __future__ import annotations

import asyncio
import math

import pytest

from app.feed.ranking import SeedRanker
from app.ids import first_id_at
from app.ranking.features import FEATURE_VERSION, FEATURES, extract, formula_inputs, row_dict
from app.ranking.impressions import ImpressionLog
from app.storage.feed_cache import Candidate

NOW_MS = 1_780_000_000_000
HOUR = 3_600_000


def candidate(hours_old: float, likes=0, comments=0, interactions=0, author=1) -> Candidate:
    return Candidate(first_id_at(int(NOW_MS - hours_old * HOUR)), author, likes, comments, interactions)


def test_each_candidate_gets_one_row_of_every_feature_in_the_pools_order():
    pool = [candidate(3, likes=9, comments=2, interactions=4, author=7), candidate(1, author=8),
            candidate(2, likes=1, author=7)]
    rows = extract(pool, NOW_MS)
    assert [len(r) for r in rows] == [len(FEATURES)] * 3
    first = row_dict(rows[0])
    assert first["age_hours"] == pytest.approx(3, abs=1e-3)
    assert (first["like_count"], first["comment_count"], first["interactions"]) == (9, 2, 4)
    assert first["likes_per_hour"] == pytest.approx(9 / 4, rel=1e-3)
    assert first["comments_per_like"] == pytest.approx(2 / 10)
    assert first["author_share"] == pytest.approx(2 / 3)
    assert first["interaction_share"] == pytest.approx(4 / 5)
    assert [row_dict(r)["newness_rank"] for r in rows] == [2, 0, 1]


def test_features_do_not_depend_on_the_pools_order_so_a_snapshot_ranks_the_same_again():
    pool = [candidate(h, likes=h * 3, interactions=h % 3, author=h % 2) for h in range(1, 9)]
    by_id = dict(zip((c.post_id for c in pool), extract(pool, NOW_MS), strict=True))
    shuffled = pool[::-1]
    assert dict(zip((c.post_id for c in shuffled), extract(shuffled, NOW_MS), strict=True)) == by_id


def test_negative_counts_and_future_posts_give_finite_non_negative_features():
    rows = extract([candidate(-1, likes=-5, comments=-1, interactions=-2)], NOW_MS)
    assert all(math.isfinite(v) and v >= 0 for v in rows[0])
    assert extract([], NOW_MS) == []


def test_the_formula_scores_a_logged_row_as_it_scored_the_candidate():
    ranker = SeedRanker()
    c = candidate(5, likes=40, comments=3, interactions=12)
    (row,) = extract([c], NOW_MS)
    assert ranker.score_of(*formula_inputs(row)) == pytest.approx(ranker.score(c, NOW_MS))


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, object]] = []

    async def publish(self, suffix: str, key: int, event) -> None:
        self.sent.append((suffix, key, event))


def test_sampling_is_decided_per_snapshot_and_follows_the_rate():
    log = ImpressionLog(Publisher(), 0.25)
    picked = [s for s in range(20_000) if log.is_sampled(s)]
    assert 0.22 < len(picked) / 20_000 < 0.28
    assert all(log.is_sampled(s) for s in picked[:50])  # the same answer every time: all pages or none
    assert not any(ImpressionLog(Publisher(), 0.0).is_sampled(s) for s in range(5000))
    assert all(ImpressionLog(Publisher(), 1.0).is_sampled(s) for s in range(5000))


async def test_a_sampled_page_publishes_its_posts_positions_and_features_keyed_by_reader():
    publisher = Publisher()
    log = ImpressionLog(publisher, 1.0)
    ranked = [candidate(1, likes=5, author=3), candidate(2, author=4), candidate(3, author=3)]
    log.served(42, 77, "formula", ranked, NOW_MS, [ranked[0], ranked[2]])  # ranked[1] was deleted meanwhile
    await log.drain()
    ((topic, key, event),) = publisher.sent
    assert (topic, key, event.actor_id, event.request_id, event.ranker) == ("impressions", 42, 42, 77, "formula")
    assert event.positions == [0, 2] and event.post_ids == [ranked[0].post_id, ranked[2].post_id]
    assert event.author_ids == [3, 3] and event.feature_version == FEATURE_VERSION
    rows = extract(ranked, NOW_MS)
    assert event.features == [rows[0], rows[2]]


async def test_publishing_never_waits_and_drops_beyond_the_bound():
    class Stuck(Publisher):
        async def publish(self, suffix, key, event):
            await asyncio.sleep(3600)

    log = ImpressionLog(Stuck(), 1.0, max_in_flight=2)
    ranked = [candidate(1)]
    for snapshot in range(5):
        log.served(1, snapshot, "formula", ranked, NOW_MS, ranked)  # returns at once
    assert len(log._tasks) == 2
    for task in list(log._tasks):
        task.cancel()
    await asyncio.gather(*log._tasks, return_exceptions=True)
