"""The ranking features of a feed candidate: what the model scores and what the impression log records.

One function, `extract`, serves both, so the training set holds exactly the numbers the ranker saw
(no training/serving skew). Every value derives from the snapshot alone (its candidates and its
ranked_at time), so ranking a frozen snapshot again gives the same features and the same order.

Bump FEATURE_VERSION whenever a feature is added, removed or computed differently: the training job
only learns from impressions of the version it trains for, and a model states the version it needs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from app.ids import ID_EPOCH_MS, SEQUENCE_BITS, SHARD_BITS
from app.storage.feed_cache import Candidate

ID_TIME_SHIFT = SHARD_BITS + SEQUENCE_BITS  # an id's bits below its millisecond time (app/ids.py)

FEATURE_VERSION = 1

FEATURES: tuple[str, ...] = (
    "age_hours",  # since the post was published, at the snapshot's time
    "like_count",
    "comment_count",
    "interactions",  # the reader's recent likes and comments on the author's posts (app/storage/affinity.py)
    "likes_per_hour",  # like_count / (age_hours + 1): how fast it gathers engagement
    "comments_per_like",  # comment_count / (like_count + 1): how much it gets talked about
    "author_share",  # the author's share of the snapshot's candidates
    "interaction_share",  # interactions / (the reader's interactions over all candidates + 1)
    "newness_rank",  # 0 for the newest candidate of the snapshot, 1 for the next...
)


def extract(pool: Sequence[Candidate], now_ms: int) -> list[list[float]]:
    """One row of FEATURES per candidate of `pool`, in the pool's order."""
    if not pool:
        return []
    per_author = Counter(c.author_id for c in pool)
    total_interactions = sum(max(0, c.interactions) for c in pool)
    newness = {c.post_id: i for i, c in enumerate(sorted(pool, key=lambda c: c.post_id, reverse=True))}
    size = len(pool)
    rows = []
    for c in pool:
        age_hours = max(0.0, (now_ms - c.created_ms) / 3_600_000)
        likes, comments, interactions = max(0, c.like_count), max(0, c.comment_count), max(0, c.interactions)
        rows.append([
            age_hours,
            float(likes),
            float(comments),
            float(interactions),
            likes / (age_hours + 1.0),
            comments / (likes + 1.0),
            per_author[c.author_id] / size,
            interactions / (total_interactions + 1.0),
            float(newness[c.post_id]),
        ])
    return rows


def matrix(pool: Sequence[Candidate], now_ms: int):
    """`extract` as a float64 numpy array (len(pool) x len(FEATURES)), built with array operations: what the
    API scores with (a tenth of `extract`'s time for a 100-candidate pool). The same numbers, bit for bit
    (the same float64 operations in the same order; tests/unit/test_ranking_serving.py holds them equal), so
    the model scores exactly the rows the impression log records."""
    import numpy as np

    size = len(pool)
    if not size:
        return np.empty((0, len(FEATURES)))
    ints = np.array([(c.post_id, c.like_count, c.comment_count, c.interactions, c.author_id) for c in pool],
                    dtype=np.int64)
    created_ms = (ints[:, 0] >> ID_TIME_SHIFT) + ID_EPOCH_MS  # Candidate.created_ms, for every row at once
    age_hours = np.maximum((now_ms - created_ms) / 3_600_000, 0.0)
    likes, comments, interactions = (np.maximum(ints[:, i], 0).astype(np.float64) for i in (1, 2, 3))
    _, author_of, per_author = np.unique(ints[:, 4], return_inverse=True, return_counts=True)
    post_ids = ints[:, 0]
    ascending = np.sort(post_ids)
    out = np.empty((size, len(FEATURES)))
    out[:, 0] = age_hours
    out[:, 1] = likes
    out[:, 2] = comments
    out[:, 3] = interactions
    out[:, 4] = likes / (age_hours + 1.0)
    out[:, 5] = comments / (likes + 1.0)
    out[:, 6] = per_author[author_of.reshape(-1)] / size
    out[:, 7] = interactions / (float(np.maximum(ints[:, 3], 0).sum()) + 1.0)
    # the newest id is 0 (extract's dict keeps an id's last place among equal ids: the same here)
    out[:, 8] = size - 1 - np.searchsorted(ascending, post_ids, side="left")
    return out


def row_dict(row: Sequence[float]) -> dict[str, float]:
    """A feature row by name (for logs, docs and tests)."""
    return dict(zip(FEATURES, row, strict=True))


def formula_inputs(row: Sequence[float]) -> tuple[float, float, float, float]:
    """(age_hours, likes, comments, interactions) of a row: what the formula ranker reads, so the training
    job can score logged impressions with the formula exactly as the feed did."""
    return row[0], row[1], row[2], row[3]


def is_finite(row: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in row)
