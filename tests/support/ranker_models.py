"""Tiny LightGBM rankers for the serving tests: trained here in a moment, on synthetic rows, to order a feed
in a way the formula never would, and written as the training job writes them (artifact + registry row)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import lightgbm
import numpy as np

from app.ranking.features import FEATURE_VERSION, FEATURES
from app.ranking.model import ARTIFACT_CONTENT_TYPE, artifact_key, decode_artifact, encode_artifact, sha256
from app.storage.ranker_models import ModelRecord

NEWNESS = FEATURES.index("newness_rank")


def newness_booster(label: Callable[[np.ndarray], np.ndarray]) -> lightgbm.Booster:
    """A booster that reads newness_rank only (every other feature is constant in its training rows), scoring
    a candidate `label(newness_rank)`: the order it gives a feed is known from the post ids alone."""
    rank = np.repeat(np.arange(100, dtype=np.float64), 3)
    rows = np.zeros((len(rank), len(FEATURES)))
    rows[:, NEWNESS] = rank
    params = {"objective": "regression", "num_leaves": 31, "min_data_in_leaf": 1, "min_data_in_bin": 1,
              "learning_rate": 0.5, "num_threads": 1, "verbose": -1, "seed": 1}
    return lightgbm.train(params, lightgbm.Dataset(rows, label=label(rank)), num_boost_round=30)


def newness_scores(booster: lightgbm.Booster, size: int) -> list[float]:
    """The booster's score of newness_rank 0 (the newest candidate) ... size - 1."""
    rows = np.zeros((size, len(FEATURES)))
    rows[:, NEWNESS] = np.arange(size)
    return booster.predict(rows, num_threads=1).tolist()


def expected_order(booster: lightgbm.Booster, post_ids: list[int]) -> list[int]:
    """The order FeedRankers gives these posts with this booster (ties: the newer id first)."""
    newest_first = sorted(post_ids, reverse=True)
    scores = newness_scores(booster, len(newest_first))
    return [p for _, p in sorted(zip(scores, newest_first, strict=True), reverse=True)]


def artifact(booster: lightgbm.Booster, version: int, name: str = "lightgbm",
             features: tuple[str, ...] = FEATURES, feature_version: int = FEATURE_VERSION) -> bytes:
    return encode_artifact(name, version, feature_version, features, booster.model_to_string())


def record(version: int, data: bytes, features: tuple[str, ...] = FEATURES, feature_version: int = FEATURE_VERSION,
           sha: str | None = None) -> ModelRecord:
    """The registry row of an artifact (`sha` overrides its SHA-256: a corrupt artifact)."""
    return ModelRecord(
        name="lightgbm", version=version, created_at=datetime.now(UTC), artifact_key=artifact_key("lightgbm", version),
        artifact_sha256=sha or sha256(data), feature_version=feature_version, features=features,
        train_from_ms=0, holdout_from_ms=0, holdout_to_ms=0, metrics={"ndcg_at_10": 0.5}, promoted=False,
        verdict="test",
    )


def loaded(booster: lightgbm.Booster, version: int):
    data = artifact(booster, version)
    return decode_artifact(data, sha256(data))


async def publish(registry, store, booster: lightgbm.Booster, version: int, *, sha: str | None = None,
                  promote: bool = True) -> ModelRecord:
    """Write the artifact and the registry row as the training job does, and promote it."""
    data = artifact(booster, version)
    row = record(version, data, sha=sha)
    await store.put(row.artifact_key, data, ARTIFACT_CONTENT_TYPE)
    await registry.record(row)
    if promote:
        await registry.promote("lightgbm", version)
    return row
