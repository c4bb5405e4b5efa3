"""Pure trending logic: per-(tag, slot) contributions, hopping windows and the score.

State is a set of (author, post) pairs per (tag, 5-minute slot). Adding the same pair twice (a
redelivered `PostCreated`) changes nothing; `PostDeleted` removes exactly the pair it added, so
deleted posts stop counting. What scores is the number of *distinct authors*, never posts: one
account posting 1,000 times counts once.

For a window of N slots ending at slot `now` (1 h = 12 slots, 24 h = 288):

- observed = the sum over the window's slots of each slot's distinct authors (an author counts at
  most once per slot, so it is on the same scale as the baseline);
- expected = N x baseline, where baseline is an exponentially decayed average of the tag's
  per-slot distinct-author counts over the `baseline_slots` slots before the window (weight
  `decay ** age`, age in slots before the window), so always-popular tags have a high
  expectation and recent history weighs more than old;
- score = (observed - expected) / sqrt(expected + c): a Poisson z-score. Dividing by sqrt(expected)
  keeps a steady, busy tag (large expected, small relative surplus) from dominating, and `c`
  keeps a brand-new tag (expected 0) from scoring infinitely on a handful of authors.
- tags with fewer than `min_authors` distinct authors over the whole window are not ranked at all,
  so a single account (or two) cannot make a tag trend however often it posts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

SLOT_MS = 5 * 60 * 1000
WINDOWS = {"1h": 12, "24h": 288}


def slot_of(millis: int) -> int:
    return millis // SLOT_MS


@dataclass(frozen=True)
class TrendingParams:
    baseline_slots: int = 7 * 288  # a week of history before the window
    decay: float = 0.999  # per slot: a day-old slot still weighs ~0.75
    smoothing: float = 4.0  # c in the score
    min_authors: int = 3


@dataclass(frozen=True)
class Trend:
    tag: str
    score: float
    posts: int
    authors: int


@dataclass
class TagSlots:
    """(tag, slot) -> {(author, post)}; idempotent adds, exact deletes."""

    cells: dict[tuple[str, int], set[tuple[int, int]]] = field(default_factory=lambda: defaultdict(set))

    def add(self, tag: str, slot: int, author: int, post: int) -> None:
        self.cells[(tag, slot)].add((author, post))

    def remove(self, tag: str, slot: int, author: int, post: int) -> None:
        cell = self.cells.get((tag, slot))
        if cell is not None:
            cell.discard((author, post))
            if not cell:
                del self.cells[(tag, slot)]

    def tags(self) -> set[str]:
        return {tag for tag, _ in self.cells}

    def pairs(self, tag: str, slots: range) -> list[set[tuple[int, int]]]:
        return [self.cells[(tag, s)] for s in slots if (tag, s) in self.cells]


def expected_per_slot(per_slot_authors: list[int], decay: float) -> float:
    """Decayed average; per_slot_authors[0] is the slot just before the window (age 0)."""
    if not per_slot_authors:
        return 0.0
    weights = [decay**age for age in range(len(per_slot_authors))]
    return sum(w * n for w, n in zip(weights, per_slot_authors, strict=True)) / sum(weights)


def score(observed: int, expected: float, smoothing: float) -> float:
    return (observed - expected) / math.sqrt(expected + smoothing)


def rank(state: TagSlots, now_slot: int, window_slots: int, params: TrendingParams, limit: int = 20) -> list[Trend]:
    window = range(now_slot - window_slots + 1, now_slot + 1)
    baseline = range(window.start - 1, window.start - 1 - params.baseline_slots, -1)  # newest first
    trends = []
    for tag in state.tags():
        cells = state.pairs(tag, window)
        authors = {a for cell in cells for a, _ in cell}
        if len(authors) < params.min_authors:
            continue
        posts = sum(len(cell) for cell in cells)
        observed = sum(len({a for a, _ in cell}) for cell in cells)
        history = [len({a for a, _ in state.cells[(tag, s)]}) if (tag, s) in state.cells else 0 for s in baseline]
        expected = window_slots * expected_per_slot(history, params.decay)
        trends.append(Trend(tag, round(score(observed, expected, params.smoothing), 4), posts, len(authors)))
    trends.sort(key=lambda t: (-t.score, -t.authors, t.tag))
    return trends[:limit]
