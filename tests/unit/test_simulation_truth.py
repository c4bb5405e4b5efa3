"""The latent model of photos-simulate (loadtest/simulation/truth.py): deterministic with a seed, engagement
moving with author quality and reader taste as docs/simulation.md says, and blind to popularity."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from loadtest import simulate
from loadtest.simulation import truth
from loadtest.simulation.truth import Params, build, probability, respond

PARAMS = Params(authors=12, readers=60, posts_per_author=4, rounds=6, seed=5)


@pytest.fixture(scope="module")
def world():
    return build(PARAMS)


def test_the_same_seed_gives_the_same_world_and_the_same_reactions(world):
    again = build(PARAMS)
    assert truth.to_json(again) == truth.to_json(world)
    reactions = [respond(world, r, 2, p, r % 7) for r in range(10) for p in range(len(world.posts))]
    assert reactions == [respond(again, r, 2, p, r % 7) for r in range(10) for p in range(len(world.posts))]
    other = build(Params(12, 60, 4, 6, seed=6))
    assert truth.to_json(other)["authors"] != truth.to_json(world)["authors"]


def test_the_world_is_shaped_as_documented(world):
    assert len(world.posts) == 12 * 4
    assert all(p.round == 0 for p in world.posts if p.slot == 0)  # every author has a post before round 0
    assert {p.round for p in world.posts} - {0} and max(p.round for p in world.posts) < 6  # the rest arrive later
    for reader in world.readers:
        assert 1 <= len(reader.follows) <= 12 and list(reader.follows) == sorted(set(reader.follows))
        assert truth.ACTIVITY[0] <= reader.activity <= truth.ACTIVITY[1]
        assert reader.index in world.followers[reader.follows[0]]
    for author in world.authors:
        assert sum(author.topics) == pytest.approx(1.0) and all(t >= 0 for t in author.topics)
    assert len({len(r.follows) for r in world.readers}) > 1  # feeds differ


@pytest.mark.parametrize("kind", truth.KINDS)
def test_engagement_rises_with_quality_and_taste_and_falls_with_age(kind):
    base = probability(kind, 0.0, 0.0, 0)
    assert probability(kind, 1.0, 0.0, 0) > base > probability(kind, -1.0, 0.0, 0)
    assert probability(kind, 0.0, 1.0, 0) > base > probability(kind, 0.0, -1.0, 0)
    assert base > probability(kind, 0.0, 0.0, 3)
    # quality and taste dominate: one standard deviation of either moves far more than a round of age
    assert probability(kind, 1.0, 0.0, 0) - base > 5 * (base - probability(kind, 0.0, 0.0, 1))
    assert probability(kind, 0.0, 0.0, 0, noise=0.5) > base


def test_likes_are_commoner_than_comment_opens_and_opens_than_comments(world):
    counts = dict.fromkeys(truth.KINDS, 0)
    for r in range(len(world.readers)):
        for p in range(len(world.posts)):
            outcome = respond(world, r, 3, p, 0)
            for kind in truth.KINDS:
                counts[kind] += getattr(outcome, kind)
            assert outcome.open or not outcome.comment  # a comment is written after opening the comments
    assert counts["like"] > counts["open"] > counts["comment"] > 0


def test_examination_falls_with_position_and_changes_only_what_is_seen(world):
    examined = [sum(respond(world, r, 1, p, position).examined for r in range(60) for p in range(48))
                for position in (0, 5, 15)]
    assert examined[0] > examined[1] > examined[2]
    # the same reader, round and post: the same reaction wherever it was shown, once examined
    for r in range(20):
        for p in range(48):
            top, lower = respond(world, r, 1, p, 0), respond(world, r, 1, p, 6)
            if lower.examined:
                assert top.examined and (top.like, top.open, top.comment) == (lower.like, lower.open, lower.comment)


def test_better_authors_and_better_matches_get_more_likes_in_the_world(world):
    liked = {}
    for r in range(len(world.readers)):
        for p in range(len(world.posts)):
            liked[r, p] = respond(world, r, 2, p, 0).like
    best = max(world.authors, key=lambda a: a.quality).index
    worst = min(world.authors, key=lambda a: a.quality).index
    rate = {a: sum(v for (r, p), v in liked.items() if world.posts[p].author == a) for a in (best, worst)}
    assert rate[best] > rate[worst]
    matched = sorted(liked, key=lambda rp: truth.match(world, *rp))
    low, high = matched[: len(matched) // 4], matched[-len(matched) // 4:]
    assert sum(liked[k] for k in high) > sum(liked[k] for k in low)


def test_popularity_plays_no_part(world):
    """No count enters a decision: the model's functions take none, and a page whose posts show other like and
    comment counts gets the same reactions."""
    for function in (respond, probability, truth.interest):
        assert not {"like_count", "likes", "comment_count", "popularity"} & set(inspect.signature(function).parameters)

    async def reactions(like_count: int) -> list:
        sim = simulate.Simulation(world, api=_NoActions(), page_size=10, tag="t")
        sim.post_ids = {p.index: str(1000 + p.index) for p in world.posts}
        sim.post_index = {v: k for k, v in sim.post_ids.items()}
        items = [{"id": str(1000 + p), "like_count": like_count * (p + 1), "comment_count": like_count} for p in
                 range(10)]
        sim.api.page = {"items": items, "next_cursor": None}
        for reader in range(len(world.readers)):
            await sim._page(reader, 2, 0, None)
        return [record["items"] for record in sim.served]


    assert asyncio.run(reactions(0)) == asyncio.run(reactions(500))


class _NoActions:
    """An API stand-in: answers every feed read with `page` and every action with success."""

    page: dict = {}

    async def call(self, method, path, route, **kwargs):
        return simulate.Answer(200, self.page, {"X-Feed-Ranker": "formula"})

    async def expect(self, status, method, path, route, **kwargs):
        return simulate.Answer(status, {}, {})


def test_bad_arguments_are_one_line_and_exit_2(capsys):
    assert simulate.main(["--authors", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "photos-simulate: error: --authors must be at least 1, not 0"
    assert simulate.main(["--page-size", "500"]) == 2
    assert simulate.main(["--host", "http://127.0.0.1:9", "--out", "/dev/null/x"]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


async def test_the_client_waits_out_429_and_503_as_retry_after_says():
    """Api.call against a stand-in server: a 429 and a 503 are retried after their Retry-After, then the answer."""
    from aiohttp import ClientSession, web
    from aiohttp.test_utils import TestServer

    answers = [(429, "0.2"), (503, "0.1"), (200, None)]

    async def handler(request: web.Request) -> web.Response:
        status, retry_after = answers.pop(0)
        return web.json_response({"ok": status == 200}, status=status,
                                 headers={"Retry-After": retry_after} if retry_after else {})

    app = web.Application()
    app.router.add_get("/v1/feed", handler)
    async with TestServer(app) as server, ClientSession() as session:
        stats = simulate.Stats()
        api = simulate.Api(session, str(server.make_url("")), 2, stats)
        started = asyncio.get_running_loop().time()
        answer = await api.call("GET", "/v1/feed", "GET /v1/feed")
        elapsed = asyncio.get_running_loop().time() - started
    assert answer.status == 200 and answer.body == {"ok": True} and not answers
    assert elapsed >= 0.3 and dict(stats.waited_s) == {429: 0.2, 503: 0.1}
    assert stats.statuses == {429: 1, 503: 1, 200: 1} and stats.errors_by_route == {("GET /v1/feed", 429): 1,
                                                                                 ("GET /v1/feed", 503): 1}
