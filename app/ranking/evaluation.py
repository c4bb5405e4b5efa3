"""What the training job decides with, pure and small: ranking metrics, the time split, and the promotion gate.

A query is one ranked snapshot a reader was shown (one `request_id`): its posts with their logged features
and a graded label (3 comment, 2 like, 1 open, 0 nothing within the label window). Metrics compare two
rankers on the same held-out queries, so the model and the formula are judged on what readers actually did.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

K = 10  # the metrics' cut-off: about the first screen of a feed


@dataclass(frozen=True)
class Query:
    reader_id: int
    request_id: int
    served_ms: int  # when the snapshot was served (its earliest impression)
    post_ids: tuple[int, ...]  # in logged order (position)
    features: tuple[tuple[float, ...], ...]
    labels: tuple[int, ...]
    # per post, the (at_ms, grade) of the engagements that labelled it (empty when not known)
    acts: tuple[tuple[tuple[int, int], ...], ...] = ()

    def labelled_before(self, cutoff_ms: int) -> Query:
        """The query labelled only by engagements made before `cutoff_ms`: a training query must not learn
        from what readers did once the held-out part had begun (a like in the held-out hours of a post
        shown earlier is a held-out interaction)."""
        if not self.acts:
            return self
        labels = tuple(max((grade for at, grade in acts if at < cutoff_ms), default=0) for acts in self.acts)
        return dataclasses.replace(self, labels=labels)

    @property
    def positives(self) -> int:
        return sum(1 for label in self.labels if label > 0)

    def evaluable(self) -> bool:
        """A query that can tell two rankers apart: some post engaged, and more than one post to order."""
        return self.positives > 0 and len(self.labels) >= 2


def ranked_labels(scores: Sequence[float], post_ids: Sequence[int], labels: Sequence[int]) -> list[int]:
    """The labels in the order the scores rank them: higher first, ties to the newer (larger) post id, as
    the feed breaks them (app/feed/ranking.py, app/ranking/serving.py)."""
    order = sorted(range(len(labels)), key=lambda i: (scores[i], post_ids[i]), reverse=True)
    return [labels[i] for i in order]


def dcg_at_k(labels: Sequence[int], k: int = K) -> float:
    """Discounted cumulative gain of labels in ranked order: sum of (2^label - 1) / log2(place + 1), place 1-based."""
    return sum((2 ** label - 1) / math.log2(place + 2) for place, label in enumerate(labels[:k]))


def ndcg_at_k(labels: Sequence[int], k: int = K) -> float:
    """DCG of this order over the DCG of the best order; 0 for a query with nothing engaged."""
    ideal = dcg_at_k(sorted(labels, reverse=True), k)
    return dcg_at_k(labels, k) / ideal if ideal > 0 else 0.0


def recall_at_k(labels: Sequence[int], k: int = K) -> float:
    """The share of the query's engaged posts that this order puts in its first k; 0 with none engaged."""
    positives = sum(1 for label in labels if label > 0)
    return sum(1 for label in labels[:k] if label > 0) / positives if positives else 0.0


@dataclass(frozen=True)
class Scores:
    queries: int
    ndcg: float
    recall: float


def evaluate(queries: Sequence[Query], score: Callable[[Query], Sequence[float]], k: int = K) -> Scores:
    """Mean NDCG@k and recall@k of a ranker over the evaluable queries."""
    usable = [q for q in queries if q.evaluable()]
    if not usable:
        return Scores(0, 0.0, 0.0)
    ndcg = recall = 0.0
    for query in usable:
        labels = ranked_labels(score(query), query.post_ids, query.labels)
        ndcg += ndcg_at_k(labels, k)
        recall += recall_at_k(labels, k)
    return Scores(len(usable), ndcg / len(usable), recall / len(usable))


@dataclass(frozen=True)
class Split:
    train: list[Query]
    holdout: list[Query]
    holdout_from_ms: int  # the held-out side starts here (every training query was served before it)


def split_by_days(queries: Sequence[Query], holdout_from_ms: int) -> Split:
    """Queries served from `holdout_from_ms` on (the last whole days of the window) are held out. The training
    queries keep only the labels of engagements made before it, so every interaction of the held-out part is
    used to judge the model, none to train it."""
    ordered = sorted(queries, key=_serving_order)
    return Split([q.labelled_before(holdout_from_ms) for q in ordered if q.served_ms < holdout_from_ms],
                 [q for q in ordered if q.served_ms >= holdout_from_ms], holdout_from_ms)


def split_by_fraction(queries: Sequence[Query], fraction: float) -> Split:
    """The latest `fraction` of the queries by serving time are held out (at least one when there are two or
    more). Queries served in the same millisecond as the first held-out one are held out with it, so the
    boundary is a time: nothing trained on was served at or after it."""
    ordered = sorted(queries, key=_serving_order)
    if not ordered:
        return Split([], [], 0)
    held = min(len(ordered) - 1, max(1 if len(ordered) > 1 else 0, round(len(ordered) * fraction)))
    if held == 0:
        return Split(list(ordered), [], ordered[-1].served_ms + 1)
    return split_by_days(ordered, ordered[len(ordered) - held].served_ms)


def _serving_order(query: Query) -> tuple[int, int, int]:
    return query.served_ms, query.reader_id, query.request_id


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def gate(model: Scores, formula: Scores, min_queries: int, min_gain: float) -> Verdict:
    """Promote only a model that beats the formula's held-out NDCG@10 by more than `min_gain`, measured on at
    least `min_queries` queries."""
    if model.queries < min_queries:
        return Verdict(False, f"only {model.queries} held-out queries with an engaged post (at least {min_queries}"
                              " needed)")
    gain = model.ndcg - formula.ndcg
    compared = f"NDCG@{K} {model.ndcg:.4f} vs the formula's {formula.ndcg:.4f} on {model.queries} queries"
    if gain > min_gain:
        return Verdict(True, f"promoted: {compared} (gain {gain:+.4f} > {min_gain:g})")
    return Verdict(False, f"not better: {compared} (gain {gain:+.4f}, more than {min_gain:g} needed)")
