"""Ranking the feed: the features of a candidate post and the model that orders them.

`Ranker` is the seam: anything with `rank(candidates, now_ms)` can replace `SeedRanker`, a
learned model included, because the feed only ever asks for an order. `SeedRanker` is the
hand-tuned score of the original design (docs/feed.md, "Ranking"):

    score = recency + engagement + relationship
    recency      = 100 * exp(-age_hours / 24)                  newer is better, halving in ~17 h
    engagement   = 25 * ln(1 + likes + 3 * comments)           comments weigh three likes
    relationship = 50 * min(interactions / 10, 3)              how often the reader engaged the author

One change from the seed: engagement is logarithmic. The seed adds `0.5 * likes` linearly, so
a post with 10,000 likes would outrank everything for weeks; with the logarithm each tenfold
in engagement adds the same ~58 points, what a post loses in recency over its first 20 hours.
Ties go to the newer post, so an order never depends on anything but the inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from app.storage.feed_cache import Candidate  # what a ranker ranks: a post of the reader's candidate set


class Ranker(Protocol):
    def rank(self, candidates: list[Candidate], now_ms: int) -> list[Candidate]:
        """The candidates, best first."""
        ...


@dataclass(frozen=True)
class SeedRanker:
    recency_weight: float = 100.0
    recency_hours: float = 24.0
    engagement_weight: float = 25.0
    comment_weight: float = 3.0
    relationship_weight: float = 50.0
    relationship_cap: float = 3.0

    name = "formula"

    def score(self, candidate: Candidate, now_ms: int) -> float:
        age_hours = max(0.0, (now_ms - candidate.created_ms) / 3_600_000)
        return self.score_of(age_hours, candidate.like_count, candidate.comment_count, candidate.interactions)

    def score_of(self, age_hours: float, likes: float, comments: float, interactions: float) -> float:
        """The score of a post this old with these counts (also how the training job scores the formula
        on logged features: app/ranking/features.py formula_inputs)."""
        recency = self.recency_weight * math.exp(-max(0.0, age_hours) / self.recency_hours)
        engagement = self.engagement_weight * math.log1p(max(0, likes) + self.comment_weight * max(0, comments))
        relationship = self.relationship_weight * min(max(0, interactions) / 10, self.relationship_cap)
        return recency + engagement + relationship

    def rank(self, candidates: list[Candidate], now_ms: int) -> list[Candidate]:
        return sorted(candidates, key=lambda c: (self.score(c, now_ms), c.post_id), reverse=True)
