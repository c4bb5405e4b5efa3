"""Online ranking: which ranker a reader gets (FeedRankers) and the watcher that loads promoted models,
on fakes of the registry and the media store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from app.feed.ranking import Candidate, SeedRanker
from app.ids import first_id_at
from app.ranking.features import FEATURES
from app.ranking.model import LoadedModel
from app.ranking.serving import FORMULA, KEPT_MODELS, FeedRankers, UnknownRanker, reader_bucket
from app.ranking.watcher import ModelWatcher
from app.storage.ranker_models import ActiveModel
from tests.support.ranker_models import artifact, expected_order, loaded, newness_booster, record

NOW_MS = 1_780_000_000_000
HOUR = 3_600_000


@pytest.fixture(scope="module")
def oldest_first():
    return newness_booster(lambda rank: rank)


@pytest.fixture(scope="module")
def middle_first():
    return newness_booster(lambda rank: -np.abs(rank - 3))


def pool(size: int = 8) -> list[Candidate]:
    """Newer posts have more likes and comments: the formula puts the newest first."""
    return [Candidate(first_id_at(NOW_MS - i * HOUR), author_id=i % 3, like_count=(size - i) * 5,
                      comment_count=size - i, interactions=0) for i in range(size)]


class Broken:
    """A booster that fails at scoring."""

    def predict(self, rows, **kwargs):
        raise RuntimeError("corrupt trees")


def test_model_mode_without_a_model_ranks_with_the_formula(oldest_first):
    rankers = FeedRankers("model")
    assert rankers.choose(1) == FORMULA
    ranking = rankers.rank(1, pool(), NOW_MS)
    assert ranking.ranker == FORMULA and ranking.order == SeedRanker().rank(pool(), NOW_MS)


def test_a_model_orders_the_feed_its_way_and_names_itself(oldest_first):
    rankers = FeedRankers("model")
    rankers.install(loaded(oldest_first, 1))
    ranking = rankers.rank(1, pool(), NOW_MS)
    assert ranking.ranker == "lightgbm-1"
    ids = [c.post_id for c in pool()]
    assert [c.post_id for c in ranking.order] == expected_order(oldest_first, ids) == sorted(ids)  # oldest first
    assert ranking.order != SeedRanker().rank(pool(), NOW_MS)


def test_formula_mode_ignores_an_installed_model(oldest_first):
    rankers = FeedRankers(FORMULA)
    rankers.install(loaded(oldest_first, 1))
    assert {rankers.choose(reader) for reader in range(50)} == {FORMULA}


def test_split_gives_the_model_to_the_readers_below_the_percent_stably(oldest_first):
    rankers = FeedRankers("split", split_percent=30)
    rankers.install(loaded(oldest_first, 1))
    choices = {reader: rankers.choose(reader) for reader in range(1000)}
    assert {choices[r] for r in choices} == {FORMULA, "lightgbm-1"}
    assert all((choices[r] == "lightgbm-1") == (reader_bucket(r) < 30) for r in choices)
    assert 200 < sum(c != FORMULA for c in choices.values()) < 400
    assert reader_bucket(123456789) == reader_bucket(123456789) == 85  # crc32: the same in every process


def test_a_model_that_raises_falls_back_to_the_formula_and_says_so(oldest_first):
    rankers = FeedRankers("model")
    rankers.install(replace(loaded(oldest_first, 1), booster=Broken()))
    ranking = rankers.rank(1, pool(), NOW_MS)
    assert ranking.ranker == FORMULA and ranking.order == SeedRanker().rank(pool(), NOW_MS)


def test_later_pages_of_the_last_three_models_rank_as_before_older_ones_are_unknown(oldest_first):
    rankers = FeedRankers("model")
    for version in range(1, KEPT_MODELS + 2):
        rankers.install(loaded(oldest_first, version))
    assert rankers.choose(1) == f"lightgbm-{KEPT_MODELS + 1}"
    assert rankers.rank(1, pool(), NOW_MS, "lightgbm-2").ranker == "lightgbm-2"
    with pytest.raises(UnknownRanker):
        rankers.rank(1, pool(), NOW_MS, "lightgbm-1")
    with pytest.raises(UnknownRanker):
        rankers.rank(1, pool(), NOW_MS, "lightgbm-999")
    rankers.clear()
    assert rankers.choose(1) == FORMULA
    assert rankers.rank(1, pool(), NOW_MS, "lightgbm-3").ranker == "lightgbm-3"  # a snapshot's later page


# --- the watcher ------------------------------------------------------------------------------------
class FakeRegistry:
    def __init__(self) -> None:
        self.rows, self.active_version, self.down = {}, None, False

    async def active(self, name):
        if self.down:
            raise OSError("Cassandra is away")
        if self.active_version is None:
            return None
        return ActiveModel(name, self.active_version, datetime.now(UTC))

    async def get(self, name, version):
        if self.down:
            raise OSError("Cassandra is away")
        return self.rows.get(version)


class FakeStore:
    def __init__(self) -> None:
        self.objects, self.gets, self.down = {}, [], False

    async def get(self, key):
        self.gets.append(key)
        if self.down:
            raise OSError("media store is away")
        return self.objects.get(key)


def publish(registry, store, booster, version, **row):
    data = artifact(booster, version)
    store.objects[record(version, data).artifact_key] = data
    registry.rows[version] = record(version, data, **row)
    registry.active_version = version


@pytest.fixture
def watched():
    registry, store, rankers = FakeRegistry(), FakeStore(), FeedRankers("model")
    return registry, store, rankers, ModelWatcher(registry, store, rankers, poll_s=0.1)


async def test_the_watcher_installs_a_promoted_version_then_the_next_then_clears(watched, oldest_first, middle_first):
    registry, store, rankers, watcher = watched
    await watcher.poll()
    assert rankers.choose(1) == FORMULA and watcher.serving is None
    publish(registry, store, oldest_first, 1)
    await watcher.poll()
    assert rankers.choose(1) == "lightgbm-1" and watcher.serving == 1
    await watcher.poll()
    assert len(store.gets) == 1  # an unchanged version is not fetched again
    publish(registry, store, middle_first, 2)
    await watcher.poll()
    assert rankers.choose(1) == "lightgbm-2"
    ids = [c.post_id for c in pool()]
    assert [c.post_id for c in rankers.rank(1, pool(), NOW_MS).order] == expected_order(middle_first, ids)
    assert rankers.rank(1, pool(), NOW_MS, "lightgbm-1").ranker == "lightgbm-1"
    registry.active_version = None
    await watcher.poll()
    assert rankers.choose(1) == FORMULA and watcher.serving is None


async def test_a_bad_sha_is_refused_remembered_and_the_old_model_keeps_serving(watched, oldest_first, caplog):
    registry, store, rankers, watcher = watched
    publish(registry, store, oldest_first, 1)
    await watcher.poll()
    publish(registry, store, oldest_first, 2, sha="0" * 64)
    for _ in range(3):
        await watcher.poll()
    assert rankers.choose(1) == "lightgbm-1"
    assert store.gets.count(record(2, b"").artifact_key) == 1  # a known-bad version is fetched once
    assert sum("lightgbm-2" in r.getMessage() for r in caplog.records) == 1  # and logged once


async def test_a_model_for_other_features_is_refused_without_fetching_it(watched, oldest_first):
    registry, store, rankers, watcher = watched
    publish(registry, store, oldest_first, 1, features=(*FEATURES[:-1], "something_else"))
    await watcher.poll()
    publish(registry, store, oldest_first, 2, feature_version=99)
    await watcher.poll()
    assert rankers.choose(1) == FORMULA and store.gets == []


async def test_an_artifact_naming_other_features_than_its_row_is_refused(watched, oldest_first):
    registry, store, rankers, watcher = watched
    data = artifact(oldest_first, 1, features=(*FEATURES[:-1], "something_else"))
    store.objects[record(1, data).artifact_key] = data
    registry.rows[1], registry.active_version = record(1, data), 1
    await watcher.poll()
    await watcher.poll()
    assert rankers.choose(1) == FORMULA and len(store.gets) == 1


async def test_outages_keep_the_model_and_are_retried_at_the_next_poll(watched, oldest_first, middle_first):
    registry, store, rankers, watcher = watched
    publish(registry, store, oldest_first, 1)
    await watcher.poll()
    registry.down = True
    await watcher.poll()  # Cassandra away: still serving v1, nothing raised
    assert rankers.choose(1) == "lightgbm-1"
    registry.down = False
    publish(registry, store, middle_first, 2)
    store.down = True
    await watcher.poll()
    await watcher.poll()
    assert rankers.choose(1) == "lightgbm-1"
    store.down = False
    await watcher.poll()  # a version that could not be fetched is tried again
    assert rankers.choose(1) == "lightgbm-2"


async def test_the_watcher_task_polls_at_start_and_then_repeatedly(watched, oldest_first):
    from tests.support.polling import eventually

    registry, store, rankers, watcher = watched
    publish(registry, store, oldest_first, 1)
    watcher.start()
    try:
        await eventually(lambda: _noop(), lambda _: rankers.choose(1) == "lightgbm-1", timeout=5)
        registry.active_version = None
        await eventually(lambda: _noop(), lambda _: rankers.choose(1) == FORMULA, timeout=5)
    finally:
        await watcher.stop()


async def _noop() -> None:
    return None


def test_a_loaded_model_scores_one_float_per_row(oldest_first):
    model: LoadedModel = loaded(oldest_first, 1)
    assert model.score([]) == []
    assert len(model.score([[0.0] * len(FEATURES)] * 4)) == 4


@pytest.mark.parametrize("seed", range(20))
def test_the_array_features_the_api_scores_are_extracts_bit_for_bit(seed):
    import random

    from app.ranking.features import extract, matrix

    rng = random.Random(seed)
    size = rng.choice([1, 2, 7, 100])
    ids = [first_id_at(NOW_MS + rng.randint(-100 * HOUR, HOUR)) + rng.randrange(4096) for _ in range(size)]
    if size > 2:
        ids[1] = ids[0]  # a duplicate id
    pool_ = [Candidate(post_id, author_id=rng.randint(1, 5), like_count=rng.randint(-2, 10**6),
                       comment_count=rng.randint(-2, 5000), interactions=rng.randint(-1, 20)) for post_id in ids]
    expected = np.asarray(extract(pool_, NOW_MS), dtype=np.float64)
    assert np.array_equal(matrix(pool_, NOW_MS), expected)
    assert matrix([], NOW_MS).shape == (0, len(FEATURES))
