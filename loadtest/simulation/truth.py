"""The synthetic truth of `photos-simulate`: who the authors and readers are, and what a reader does with a post
the ranked feed showed them. Pure: no I/O, no clock; docs/simulation.md documents every number here.

- An author has a latent quality q ~ N(0, 1) and a topic mix over TOPICS topics ~ Dirichlet(0.3, ..., 0.3)
  (most authors lean to one or two topics). Authors follow nobody.
- A reader has a taste vector over the same topics ~ N(0, I) and an activity ~ U(0.5, 1.0), the chance
  they read their feed in a round, and follows a random FOLLOW_SHARE share of the authors.
- A post inherits its author's topics. Each author's first post is published before round 0; the others at
  a round drawn uniformly from 0..rounds-1.
- A reader who reads examines the item at position i (0-based, over both pages) with probability
  EXAMINE_DECAY ** i (position bias), and for an examined post draws its interest

      interest = QUALITY_WEIGHT * q + TASTE_WEIGHT * (taste . topics) - AGE_WEIGHT * age_rounds + N(0, NOISE_SD)

  then likes it with probability sigmoid(INTERCEPTS["like"] + interest), comments with
  sigmoid(INTERCEPTS["comment"] + interest) and opens its comments with sigmoid(INTERCEPTS["open"] + interest)
  (a comment is written after opening them, so a comment implies an open). The run (loadtest/simulate.py)
  takes each action at most once per (reader, post): a later draw of an action already taken sends nothing.

Popularity has no causal role: nothing a post's like or comment count says enters a decision (`respond` takes
no count). Each decision draws from a generator of its own, seeded by (seed, reader, round, post), so the same
post shown to the same reader in the same round gets the same draws at whatever position and in whatever page
it lands: the ranker changes what is examined, not the reader's underlying reaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TOPICS = 8
TOPIC_CONCENTRATION = 0.3  # Dirichlet alpha of an author's topic mix
FOLLOW_SHARE = (0.25, 0.75)  # a reader follows round(U(lo, hi) * authors) authors, at least one
ACTIVITY = (0.5, 1.0)  # a reader's chance to read their feed in a round ~ U(lo, hi)
SECOND_PAGE = 0.35  # the chance a reader who read the first page reads the second
EXAMINE_DECAY = 0.97  # P(examine the item at position i) = EXAMINE_DECAY ** i
QUALITY_WEIGHT = 1.0
TASTE_WEIGHT = 2.5
AGE_WEIGHT = 0.1  # per round since the post was published
NOISE_SD = 0.5
INTERCEPTS = {"like": -1.0, "open": -2.0, "comment": -3.0}
KINDS = tuple(INTERCEPTS)

_WORLD, _READS, _SECOND_PAGE, _ITEM = 1, 2, 3, 4  # the generators' streams
MAX_SEED = 2**32 - 1


def rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator of its own for one decision, stable across runs and platforms (numpy's SeedSequence)."""
    return np.random.default_rng([seed, *keys])


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass(frozen=True)
class Params:
    authors: int
    readers: int
    posts_per_author: int
    rounds: int
    seed: int = 1
    topics: int = TOPICS

    def check(self) -> None:
        """ValueError naming the first bad value."""
        for name in ("authors", "readers", "posts_per_author", "rounds", "topics"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must be 0 to {MAX_SEED}, not {self.seed}")


@dataclass(frozen=True)
class Author:
    index: int
    quality: float
    topics: tuple[float, ...]


@dataclass(frozen=True)
class Reader:
    index: int
    taste: tuple[float, ...]
    activity: float
    follows: tuple[int, ...]  # author indices, ascending


@dataclass(frozen=True)
class Post:
    index: int
    author: int
    slot: int  # the author's n-th post
    round: int  # published before this round's reads


@dataclass
class World:
    params: Params
    authors: list[Author]
    readers: list[Reader]
    posts: list[Post]  # by (round, author, slot)
    followers: list[list[int]] = field(default_factory=list)  # author -> reader indices, ascending

    def posts_of_round(self, round_: int) -> list[Post]:
        return [p for p in self.posts if p.round == round_]


def build(params: Params) -> World:
    """The world of a seed: every latent parameter, drawn in a fixed order from one generator."""
    params.check()
    g = rng(params.seed, _WORLD)
    authors = [Author(a, float(g.normal()), tuple(float(x) for x in g.dirichlet([TOPIC_CONCENTRATION] * params.topics)))
               for a in range(params.authors)]
    readers = []
    for r in range(params.readers):
        taste = tuple(float(x) for x in g.normal(size=params.topics))
        activity = float(g.uniform(*ACTIVITY))
        count = max(1, round(g.uniform(*FOLLOW_SHARE) * params.authors))
        follows = tuple(sorted(int(a) for a in g.choice(params.authors, size=count, replace=False)))
        readers.append(Reader(r, taste, activity, follows))
    drafts = []
    for a in range(params.authors):
        for slot in range(params.posts_per_author):
            drafts.append((0 if slot == 0 else int(g.integers(0, params.rounds)), a, slot))
    posts = [Post(i, a, slot, round_) for i, (round_, a, slot) in enumerate(sorted(drafts))]
    followers: list[list[int]] = [[] for _ in authors]
    for reader in readers:
        for a in reader.follows:
            followers[a].append(reader.index)
    return World(params, authors, readers, posts, followers)


def match(world: World, reader: int, post: int) -> float:
    """taste . topics: how much the post's topics are the reader's."""
    taste = world.readers[reader].taste
    topics = world.authors[world.posts[post].author].topics
    return float(sum(t * w for t, w in zip(taste, topics, strict=True)))


def interest(quality: float, taste_match: float, age_rounds: int, noise: float = 0.0) -> float:
    return QUALITY_WEIGHT * quality + TASTE_WEIGHT * taste_match - AGE_WEIGHT * max(0, age_rounds) + noise


def probability(kind: str, quality: float, taste_match: float, age_rounds: int, noise: float = 0.0) -> float:
    """P(`kind` | examined): a logistic model of quality, taste match, age and noise. No count enters it."""
    return sigmoid(INTERCEPTS[kind] + interest(quality, taste_match, age_rounds, noise))


def reads(world: World, reader: int, round_: int) -> bool:
    return bool(rng(world.params.seed, _READS, reader, round_).random() < world.readers[reader].activity)


def reads_second_page(world: World, reader: int, round_: int) -> bool:
    return bool(rng(world.params.seed, _SECOND_PAGE, reader, round_).random() < SECOND_PAGE)


@dataclass(frozen=True)
class Outcome:
    post: int
    position: int
    examined: bool
    like: bool = False
    open: bool = False
    comment: bool = False
    interest: float | None = None  # the drawn interest of an examined post


def respond(world: World, reader: int, round_: int, post: int, position: int) -> Outcome:
    """What `reader` does in `round_` with `post` shown at `position` (0-based over the pages read)."""
    g = rng(world.params.seed, _ITEM, reader, round_, post)
    u_examine, noise = g.random(), float(g.normal(0.0, NOISE_SD))
    u = {kind: g.random() for kind in KINDS}
    if u_examine >= EXAMINE_DECAY ** position:
        return Outcome(post, position, False)
    the_post = world.posts[post]
    quality = world.authors[the_post.author].quality
    level = interest(quality, match(world, reader, post), round_ - the_post.round, noise)
    acts = {kind: bool(u[kind] < sigmoid(INTERCEPTS[kind] + level)) for kind in KINDS}
    return Outcome(post, position, True, like=acts["like"], open=acts["open"] or acts["comment"],
                   comment=acts["comment"], interest=level)


def to_json(world: World) -> dict:
    """Every latent parameter and constant of the world (ids are added by the run)."""
    return {
        "params": {"authors": world.params.authors, "readers": world.params.readers,
                   "posts_per_author": world.params.posts_per_author, "rounds": world.params.rounds,
                   "seed": world.params.seed, "topics": world.params.topics},
        "model": {"topic_concentration": TOPIC_CONCENTRATION, "follow_share": list(FOLLOW_SHARE),
                  "activity": list(ACTIVITY), "second_page": SECOND_PAGE, "examine_decay": EXAMINE_DECAY,
                  "quality_weight": QUALITY_WEIGHT, "taste_weight": TASTE_WEIGHT, "age_weight": AGE_WEIGHT,
                  "noise_sd": NOISE_SD, "intercepts": dict(INTERCEPTS)},
        "authors": [{"index": a.index, "quality": a.quality, "topics": list(a.topics)} for a in world.authors],
        "readers": [{"index": r.index, "taste": list(r.taste), "activity": r.activity, "follows": list(r.follows)}
                    for r in world.readers],
        "posts": [{"index": p.index, "author": p.author, "slot": p.slot, "round": p.round} for p in world.posts],
    }
