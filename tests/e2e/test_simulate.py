"""`photos-simulate` (loadtest/simulate.py) against an API and a stream worker of its own: the engagement it
reports happened (like and comment counts), and it read ranked pages that named their ranker.

The pair runs on topics and a consumer group of its own (processes.isolated_env), not with the session's
worker: the tests force PHOTOS_FEED_CELEBRITY_FOLLOWERS=4, and a simulated author with more followers would
become a celebrity whose new posts stay out of a reader's reused ranked snapshot for up to a minute
(docs/feed.md), longer than the whole run. Here nobody is a celebrity, the rank window is the production 100
and every ranked page is logged as impressions (PHOTOS_RANKING_IMPRESSION_SAMPLE=1), as docs/simulation.md asks.
"""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from loadtest import simulate
from tests.e2e.client.posts import get_post
from tests.e2e.processes import isolated_api, isolated_env, metrics_url, start_worker
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

SIM_ENV = isolated_env(
    "sim", PHOTOS_FEED_CELEBRITY_FOLLOWERS="1000000", PHOTOS_FEED_RANK_WINDOW="100",
    PHOTOS_RANKING_IMPRESSION_SAMPLE="1",
    # a push whose merge into a candidate set timed out (Redis, on a loaded machine) shows after the next
    # refill: within seconds, not the default 5 minutes, which is longer than the run
    PHOTOS_FEED_REFILL_AFTER_S="5",
)
TINY = ["--authors", "6", "--posts-per-author", "3", "--readers", "24", "--rounds", "4", "--seed", "7",
        "--page-size", "5"]
TINY_BUDGET_S = 45.0


@pytest.fixture(scope="module")
def sim_api(migrated):
    with isolated_api("sim", SIM_ENV) as url:
        worker = start_worker("streams-sim", SIM_ENV)
        try:
            yield url
        finally:
            worker.stop()


def expected_counts(served: list[dict]) -> tuple[dict[int, int], dict[int, int]]:
    """post index -> likes, comments the run sent: one per (reader, post) the model drew it for."""
    liked, commented = set(), set()
    for record in served:
        for post, _position, examined, like, _open, comment in record["items"]:
            if examined and like:
                liked.add((record["reader"], post))
            if examined and comment:
                commented.add((record["reader"], post))
    likes: dict[int, int] = {}
    comments: dict[int, int] = {}
    for _, post in liked:
        likes[post] = likes.get(post, 0) + 1
    for _, post in commented:
        comments[post] = comments.get(post, 0) + 1
    return likes, comments


async def test_a_tiny_simulation_engages_through_the_api(sim_api, http, account, tmp_path):
    args = simulate.parse_args([*TINY, "--host", sim_api, "--metrics-url", metrics_url(sim_api),
                                "--out", str(tmp_path)])
    started = time.monotonic()
    summary = await simulate.run(args)
    elapsed = time.monotonic() - started
    print(f"tiny simulation: {elapsed:.1f} s, {summary['pages']} pages, {summary['likes']} likes")

    assert elapsed < TINY_BUDGET_S, summary["timings_s"]
    assert summary["accounts"] == 30 and summary["posts"] == 18 and summary["late_posts"] == 0
    # ranked by the formula (no model is promoted); a page is served unranked only when the reader's candidate
    # set was not there in time (a slow refill on a loaded machine): rare, or the run's setup is wrong
    assert set(summary["pages_by_ranker"]) <= {"formula", "none"}
    assert summary["pages_by_ranker"]["formula"] >= 0.9 * summary["pages"] > 0
    assert summary["foreign"] == 0 and summary["server_errors"] == 0
    assert summary["likes"] > summary["comments"] > 0 and summary["opens"] >= summary["comments"]

    truth = json.loads((tmp_path / "truth.json").read_text())
    served = [json.loads(line) for line in (tmp_path / "served.jsonl").read_text().splitlines()]
    assert len(served) == summary["pages"]
    assert all(p["post_id"] for p in truth["posts"]) and all(r["user_id"] for r in truth["readers"])
    likes, comments = expected_counts(served)
    assert sum(likes.values()) == summary["likes"] and sum(comments.values()) == summary["comments"]
    opened = {(r["reader"], item[0]) for r in served for item in r["items"] if item[2] and item[4]}
    assert len(opened) == summary["opens"]

    # every engagement the run reports is in the posts' counts, as the stream workers keep them
    post_ids = {p["index"]: p["post_id"] for p in truth["posts"]}
    for index in post_ids:
        want = (likes.get(index, 0), comments.get(index, 0))
        await eventually(lambda i=index: get_post(http, sim_api, account, post_ids[i]),
                         lambda post, w=want: (post["like_count"], post["comment_count"]) == w, timeout=15)

    # every page with items was logged as impressions (published off the request, so polled)
    async with aiohttp.ClientSession() as plain:
        await eventually(lambda: simulate.impressions_logged(plain, metrics_url(sim_api)),
                         lambda logged: logged is not None and logged >= summary["ranked_pages_with_items"], timeout=15)
