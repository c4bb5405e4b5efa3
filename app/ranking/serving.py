"""Which ranker orders a reader's feed, and ranking with it (docs/ranking.md#serving).

`FeedRankers` holds the formula and the models an API process has loaded (the newest few, so the later
pages of a snapshot ranked by a model just replaced still rank the same way). settings.feed_ranker picks:
"formula"; "model" (the active model, the formula while there is none); or "split", the model for the
readers whose id hashes below feed_ranker_split_percent. A model that fails to score falls back to the
formula for that ranking, and the ranking says so: its `ranker` label is what X-Feed-Ranker shows.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from dataclasses import dataclass

from prometheus_client import Counter

from app.feed.ranking import SeedRanker
from app.ranking.features import FEATURE_VERSION, matrix
from app.ranking.model import LoadedModel
from app.storage.feed_cache import Candidate

log = logging.getLogger(__name__)

FORMULA = "formula"
KEPT_MODELS = 3  # loaded models kept in memory: the active one and the two before it

RANKINGS = Counter("photos_feed_rankings_total", "Feed snapshots ranked, by ranker kind and outcome",
                   ["ranker", "outcome"])


class UnknownRanker(LookupError):
    """A cursor names a model this process no longer holds (or never loaded)."""


@dataclass(frozen=True)
class Ranking:
    order: list[Candidate]  # best first
    ranker: str  # "formula" or "<name>-<version>"


class FeedRankers:
    def __init__(self, mode: str = FORMULA, split_percent: int = 50, formula: SeedRanker | None = None) -> None:
        self.mode = mode
        self.split_percent = split_percent
        self.formula = formula or SeedRanker()
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._active: LoadedModel | None = None

    @property
    def active(self) -> LoadedModel | None:
        return self._active

    def install(self, model: LoadedModel) -> None:
        """Serve `model` from the next first page on; keep the few before it for their snapshots' later pages."""
        if model.feature_version != FEATURE_VERSION:
            raise ValueError(f"{model.label} needs feature version {model.feature_version}, this API computes"
                             f" {FEATURE_VERSION}")
        self._models[model.label] = model
        self._models.move_to_end(model.label)
        while len(self._models) > KEPT_MODELS:
            self._models.popitem(last=False)
        self._active = model

    def clear(self) -> None:
        """No active model (none is promoted): new snapshots are ranked by the formula."""
        self._active = None

    def choose(self, reader_id: int) -> str:
        """The label of the ranker of a new snapshot for this reader."""
        if self.mode == FORMULA or self._active is None:
            return FORMULA
        if self.mode == "split" and reader_bucket(reader_id) >= self.split_percent:
            return FORMULA
        return self._active.label

    def rank(self, reader_id: int, pool: list[Candidate], now_ms: int, label: str | None = None) -> Ranking:
        """`pool` best first, by `label`'s ranker (a later page's) or the one chosen for the reader."""
        label = label or self.choose(reader_id)
        if label == FORMULA:
            RANKINGS.labels(FORMULA, "ok").inc()
            return Ranking(self.formula.rank(pool, now_ms), FORMULA)
        model = self._models.get(label)
        if model is None:
            raise UnknownRanker(label)
        try:
            scores = model.score_matrix(matrix(pool, now_ms))
        except Exception:  # a broken model must not break the feed: the formula ranks this snapshot
            log.exception("ranking with %s failed; the formula ranks this snapshot", label)
            RANKINGS.labels("model", "failed").inc()
            return Ranking(self.formula.rank(pool, now_ms), FORMULA)
        RANKINGS.labels("model", "ok").inc()
        return Ranking(best_first(pool, scores), label)


def best_first(pool: list[Candidate], scores) -> list[Candidate]:
    """The pool by score, highest first, ties to the newer post (as the formula breaks them); one numpy sort."""
    import numpy as np

    post_ids = np.fromiter((c.post_id for c in pool), dtype=np.int64, count=len(pool))
    order = np.lexsort((post_ids, np.asarray(scores)))[::-1]  # the last key sorts first
    return [pool[i] for i in order]


def reader_bucket(reader_id: int) -> int:
    """0-99, stable across processes and restarts: the reader's place in a split."""
    return zlib.crc32(reader_id.to_bytes(8, "big", signed=True)) % 100
