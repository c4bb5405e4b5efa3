"""Learned ranking served by a real API (docs/ranking.md#serving): an API of its own with
PHOTOS_FEED_RANKER=model polling every 0.5 s picks up each promoted model without a restart, keeps paging a
snapshot in the order of the model that ranked its first page, refuses a corrupt artifact and goes back to
the formula when none is active; a split API gives the model to some readers, stably. Models are tiny
boosters trained here (tests/support/ranker_models.py), written as the training job writes them: artifact
in the media store, row through the RankerModels owner.

Its posts and follows go through the session's API and stream worker (the same keyspace and topics).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace

import numpy as np
import pytest

from app.feed.service import RANKED
from app.media.store import make_media_store
from app.ranking.serving import FORMULA, reader_bucket
from app.settings import Settings
from app.wiring import Wiring, build_services
from tests.e2e.client.feed import until_in_feed
from tests.e2e.client.posts import post
from tests.e2e.client.users import Account, follow, register
from tests.e2e.processes import metrics_url, start_api
from tests.support.polling import eventually
from tests.support.ranker_models import expected_order, loaded, newness_booster, publish

POLL_ENV = {"PHOTOS_RANKER_POLL_S": "0.5"}
POSTS = 6
PAGE = 3


@pytest.fixture(scope="module")
async def media_store(migrated):
    store = make_media_store(migrated)
    yield store
    await store.close()


@pytest.fixture(scope="module")
async def no_model(storage):
    """No model active when the module's APIs start (a previous run may have left one), nor after it."""
    await storage.ranker_models.deactivate("lightgbm")
    yield
    await storage.ranker_models.deactivate("lightgbm")


@pytest.fixture(scope="module")
def model_api(no_model, migrated):
    process, url = start_api("api-ranking-model", {**POLL_ENV, "PHOTOS_FEED_RANKER": "model"})
    yield url
    process.stop()


@pytest.fixture(scope="module")
def split_api(no_model, migrated):
    process, url = start_api("api-ranking-split", {
        **POLL_ENV, "PHOTOS_FEED_RANKER": "split", "PHOTOS_FEED_RANKER_SPLIT_PERCENT": "50",
    })
    yield url
    process.stop()


@pytest.fixture(scope="module")
def boosters():
    return {
        "oldest_first": newness_booster(lambda rank: rank),
        "middle_first": newness_booster(lambda rank: -np.abs(rank - 2.4)),
    }


def new_version() -> int:
    """Unique across runs on the same keyspace (the registry keeps every version)."""
    return int(time.time() * 1000)


async def first_page(http, url, reader: Account, limit: int = PAGE, cursor: str | None = None):
    """(post ids, X-Feed-Ranker, next cursor) of a ranked page."""
    params = {"order": RANKED, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
    async with http.get(f"{url}/v1/feed", params=params, headers=reader.auth) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
        return [int(item["id"]) for item in body["items"]], response.headers.get("X-Feed-Ranker"), body["next_cursor"]


async def metric(http, url, name: str, **labels: str) -> float:
    async with http.get(metrics_url(url)) as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def reader_of_posts(http, api_url, url, count: int = POSTS) -> tuple[Account, list[int]]:
    """A reader following an author of `count` posts, all in its feed (as `url` serves it)."""
    author, reader = await register(http, api_url), await register(http, api_url)
    post_ids = [int(await post(http, api_url, author)) for _ in range(count)]
    await follow(http, api_url, reader, author)
    for post_id in post_ids:
        await until_in_feed(http, url, reader, str(post_id))
    return reader, post_ids


async def test_promoted_models_are_served_without_restart_and_a_snapshot_keeps_its_ranker(
    http, api_url, streams_worker, model_api, storage, media_store, boosters
):
    registry = storage.ranker_models
    reader, post_ids = await reader_of_posts(http, api_url, model_api)
    newest_first = sorted(post_ids, reverse=True)

    # (a) no model promoted: the formula (the newest first, nothing else to go on)
    ids, ranker, _ = await first_page(http, model_api, reader, limit=POSTS)
    assert (ranker, ids) == (FORMULA, newest_first)

    # (b) v1 promoted: within a few polls, the feed in v1's order (the oldest first: never the formula's)
    v1_booster = boosters["oldest_first"]
    v1 = (await publish(registry, media_store, v1_booster, new_version())).version
    v1_order = expected_order(v1_booster, post_ids)
    assert v1_order == sorted(post_ids) != newest_first
    ids, ranker, v1_cursor = await eventually(lambda: first_page(http, model_api, reader),
                                              lambda page: page[1] == f"lightgbm-{v1}", timeout=15)
    assert ids == v1_order[:PAGE]
    assert await metric(http, model_api, "photos_ranker_model_version") == v1

    # (c) v2 promoted: new first pages follow v2, while v1's snapshot pages on in v1's order
    v2_booster = boosters["middle_first"]
    v2 = (await publish(registry, media_store, v2_booster, new_version())).version
    v2_order = expected_order(v2_booster, post_ids)
    assert v2_order not in (v1_order, newest_first)
    ids, _, _ = await eventually(lambda: first_page(http, model_api, reader),
                                 lambda page: page[1] == f"lightgbm-{v2}", timeout=15)
    assert ids == v2_order[:PAGE]
    rest, ranker, _ = await first_page(http, model_api, reader, limit=POSTS, cursor=v1_cursor)
    assert ranker == f"lightgbm-{v1}"
    assert v1_order[:PAGE] + rest == v1_order  # no repeat, no skip

    # (d) a corrupt artifact promoted (its SHA-256 is not the registry's): refused, v2 still serves
    rejected = await metric(http, model_api, "photos_ranker_model_loads_total", outcome="rejected")
    await publish(registry, media_store, v1_booster, new_version(), sha="0" * 64)
    await eventually(lambda: metric(http, model_api, "photos_ranker_model_loads_total", outcome="rejected"),
                     lambda count: count > rejected, timeout=15)
    ids, ranker, _ = await first_page(http, model_api, reader)
    assert (ranker, ids) == (f"lightgbm-{v2}", v2_order[:PAGE])
    assert await metric(http, model_api, "photos_ranker_model_version") == v2

    # (e) deactivated: the formula again
    await registry.deactivate("lightgbm")
    ids, _, _ = await eventually(lambda: first_page(http, model_api, reader, limit=POSTS),
                                 lambda page: page[1] == FORMULA, timeout=15)
    assert ids == newest_first
    assert await metric(http, model_api, "photos_ranker_model_version") == 0


async def test_a_split_gives_the_model_to_the_readers_below_the_percent_and_keeps_each_on_its_side(
    http, api_url, streams_worker, split_api, storage, media_store, boosters
):
    author = await register(http, api_url)
    post_ids = [int(await post(http, api_url, author)) for _ in range(3)]
    readers = [await register(http, api_url) for _ in range(12)]
    for reader in readers:
        await follow(http, api_url, reader, author)
        await until_in_feed(http, split_api, reader, str(post_ids[-1]))
    version = (await publish(storage.ranker_models, media_store, boosters["oldest_first"], new_version())).version
    label = f"lightgbm-{version}"
    await eventually(lambda: metric(http, split_api, "photos_ranker_model_version"), lambda v: v == version,
                     timeout=15)
    sides = {}
    for reader in readers:
        expected = label if reader_bucket(int(reader.id)) < 50 else FORMULA
        for _ in range(2):  # the same side on every read
            ids, ranker, _ = await first_page(http, split_api, reader, limit=3)
            assert ranker == expected
            assert ids == (sorted(post_ids) if ranker == label else sorted(post_ids, reverse=True))
        sides[reader.id] = expected
    assert set(sides.values()) == {label, FORMULA}, sides
    await storage.ranker_models.deactivate("lightgbm")


class Broken:
    """A booster whose scoring fails (corrupt trees, a library bug)."""

    def predict(self, rows, **kwargs):
        raise RuntimeError("corrupt trees")


async def test_a_model_that_fails_at_scoring_leaves_the_feed_to_the_formula(http, api_url, streams_worker, boosters):
    """The real feed service, in this process, on the real tables and caches, with a model that raises."""
    reader, post_ids = await reader_of_posts(http, api_url, api_url, count=3)
    wiring = Wiring(Settings.from_env(os.environ))
    try:
        storage, caches, events = await wiring.storage(), wiring.caches(), await wiring.events()
        services = build_services(wiring.settings, storage, caches, events, wiring.media_store(), None)
        try:
            rankers = services.feed.rankers
            rankers.mode = "model"
            rankers.install(replace(loaded(boosters["oldest_first"], 1), booster=Broken()))
            assert rankers.choose(int(reader.id)) == "lightgbm-1"
            page = await services.feed.read(int(reader.id), RANKED, 10, None)
            assert page.ranker == FORMULA
            assert [int(item["id"]) for item in page.items] == sorted(post_ids, reverse=True)
        finally:
            await services.close()
    finally:
        await wiring.close()
