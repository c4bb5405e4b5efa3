"""Trending on a synthetic stream whose expected ranking is known (pure logic, controllable clock)."""

from __future__ import annotations

import itertools

from app.trending.scoring import WINDOWS, TagSlots, TrendingParams, rank, score

PARAMS = TrendingParams(baseline_slots=2 * 288, min_authors=3)
NOW = 10_000  # the current slot; the clock is just a slot number
_post_ids = itertools.count(1)


def steady(state: TagSlots, tag: str, authors_per_slot: int, slots: range) -> None:
    for slot in slots:
        for author in range(authors_per_slot):
            state.add(tag, slot, 1_000 + author, next(_post_ids))


def burst(state: TagSlots, tag: str, authors: range, slots: range) -> list[tuple[int, int, int]]:
    added = []
    for slot in slots:
        for author in authors:
            post = next(_post_ids)
            state.add(tag, slot, author, post)
            added.append((slot, author, post))
    return added


def tags(trends) -> list[str]:
    return [t.tag for t in trends]


def test_burst_from_many_authors_outranks_an_always_popular_tag() -> None:
    state = TagSlots()
    steady(state, "love", 30, range(NOW - 3 * 288, NOW + 1))  # busy every slot, for days
    burst(state, "eclipse", range(50_000, 50_040), range(NOW - 5, NOW + 1))  # 40 new authors, last half hour
    trends = rank(state, NOW, WINDOWS["1h"], PARAMS)
    assert tags(trends) == ["eclipse", "love"]
    love = trends[1]
    assert abs(love.score) < 1.0  # observed == expected: nothing unusual
    assert love.posts == 12 * 30 and love.authors == 30
    assert trends[0].authors == 40 and trends[0].posts == 40 * 6


def test_single_account_spam_burst_does_not_trend() -> None:
    state = TagSlots()
    burst(state, "buymyshoes", range(7, 8), range(NOW - 11, NOW + 1))  # one account, every slot
    for slot in range(NOW - 11, NOW + 1):
        for _ in range(100):
            state.add("buymyshoes", slot, 7, next(_post_ids))
    burst(state, "rain", range(60_000, 60_005), range(NOW, NOW + 1))
    trends = rank(state, NOW, WINDOWS["1h"], PARAMS)
    assert tags(trends) == ["rain"]


def test_many_posts_from_one_author_count_once_per_slot() -> None:
    state = TagSlots()
    authors = range(70_000, 70_004)
    for author in authors:
        for _ in range(50):
            state.add("spammy", NOW, author, next(_post_ids))
    burst(state, "honest", authors, range(NOW, NOW + 1))
    spammy, honest = (next(t for t in rank(state, NOW, 12, PARAMS) if t.tag == name) for name in ("spammy", "honest"))
    assert spammy.posts == 200 and honest.posts == 4
    assert spammy.score == honest.score  # same distinct authors in the same slot


def test_deleted_posts_stop_counting_and_redelivery_changes_nothing() -> None:
    state = TagSlots()
    added = burst(state, "oops", range(80_000, 80_010), range(NOW, NOW + 1))
    for slot, author, post in added:  # a redelivered batch
        state.add("oops", slot, author, post)
    assert rank(state, NOW, 12, PARAMS)[0].authors == 10
    for slot, author, post in added[:8]:
        state.remove("oops", slot, author, post)
        state.remove("oops", slot, author, post)  # a redelivered delete
    assert rank(state, NOW, 12, PARAMS) == []  # 2 authors left: below min_authors
    for slot, author, post in added[8:]:
        state.remove("oops", slot, author, post)
    assert state.cells == {}


def test_1h_and_24h_windows_differ() -> None:
    state = TagSlots()
    # "morning": a burst 10 hours ago, quiet since; "now": a burst in the last 10 minutes
    burst(state, "morning", range(90_000, 90_050), range(NOW - 120, NOW - 118))
    burst(state, "now", range(91_000, 91_020), range(NOW - 1, NOW + 1))
    assert tags(rank(state, NOW, WINDOWS["1h"], PARAMS)) == ["now"]
    assert tags(rank(state, NOW, WINDOWS["24h"], PARAMS)) == ["morning", "now"]


def test_score_formula() -> None:
    assert score(10, 0.0, 4.0) == 5.0
    assert score(20, 12.0, 4.0) == 2.0
    assert score(5, 21.0, 4.0) < 0
