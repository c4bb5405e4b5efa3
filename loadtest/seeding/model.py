"""The seeded world as plain data: a pure function of `Params` and the time anchor.

Nothing here does I/O, so a re-run with the same seed rebuilds exactly the same ids, names, graph,
posts, likes, comments and stories, and the distributions are unit-tested on their own
(tests/unit/test_seed_model.py). Every random choice comes from a `random.Random` seeded with
(seed, aspect), so changing how one aspect is drawn leaves the others as they were.

The distributions (docs/seeding.md has the reasoning and the figures they give):

- Popularity: users are ranked by a seeded shuffle; each follow picks its followee from a bounded
  Zipf distribution over those ranks, P(rank r) proportional to 1 / r^zipf_exponent (r = 1..N).
- Following: each user follows round(lognormal(ln following_median, following_sigma)) accounts, at
  least 1 and at most min(max_following, N - 1), all distinct.
- Posts: each user posts as a Poisson process over the 28 days before the anchor, at a rate drawn
  from lognormal(ln posts_median, posts_sigma) posts per 28 days (at most max_posts).
- Hashtags: 0-3 per post (mean 1.0) from a vocabulary ranked by Zipf(tag_zipf_exponent).
- Likes: a follower is a "fan" of an author with probability fan_share; fans like each post with
  probability fan_like, every follower (fan or not) with probability casual_like; a like comes an
  exponential delay (mean like_delay_mean_ms) after the post, and only if that is before the anchor.
- Comments: a liker comments with probability comment_share (30 min mean delay); the author
  replies to a comment with probability reply_share (2 h mean delay).
- Stories: a user has live stories with probability story_share: 1 + geometric (mean stories_mean)
  of them, posted within the story span before the anchor.
- Readers: a user is an active reader (opened the feed within feed_inactive_after_days) with
  probability active_share, last seen within active_within_ms of the anchor.
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from dataclasses import dataclass, field

from app.ids import ID_EPOCH_MS, MAX_SEQUENCE, MAX_SHARD, SEQUENCE_BITS, SHARD_BITS
from app.settings import Settings

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
POST_SPAN_MS = 28 * DAY_MS  # posts, likes and comments: the four weeks before the anchor (inside the feed horizon)
ACCOUNT_SPAN_MS = 90 * DAY_MS  # accounts are created over the 90 days before that, user 0 first
USER0_BEFORE_MS = POST_SPAN_MS + ACCOUNT_SPAN_MS  # user 0's id is made this long before the anchor
STORY_SPAN_MS = 23 * HOUR_MS  # live stories: posted within the 23 hours before the anchor
MAX_SEED = 999_999_999  # a username is at most 30 characters: name (8) + index (7) + "_s" + seed (9)
MAX_USERS = 9_999_999
POOL_SIZE = 12  # processed images every post and story links to (loadtest/seeding/media.py)

_M64 = (1 << 64) - 1
_KINDS = {"user": 0, "post": 1, "comment": 2, "story": 3}

FIRST_NAMES = (
    "ada", "alba", "alex", "amir", "ana", "anton", "aria", "ben", "bianca", "carla", "chen", "chloe", "dario",
    "dev", "diego", "ebba", "elif", "elsa", "emma", "farah", "felix", "finn", "gia", "hana", "hugo", "ines",
    "ivan", "jade", "jonas", "kai", "kenji", "lara", "leo", "lina", "luca", "maya", "marta", "milo", "nadia",
    "nico", "noah", "nora", "omar", "oscar", "paula", "priya", "rafa", "rosa", "ruby", "sami", "sara", "theo",
    "uma", "vera", "wen", "yara", "yusuf", "zoe",
)
LAST_NAMES = (
    "Almeida", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Kowalski",
    "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Umar", "Varga",
    "Weber", "Xu", "Yilmaz", "Zhang",
)
TAG_WORDS = (
    "sunset", "travel", "food", "coffee", "nature", "beach", "city", "art", "music", "love", "friends", "family",
    "dog", "cat", "summer", "winter", "autumn", "spring", "mountains", "hiking", "photography", "streetart",
    "architecture", "fashion", "style", "fitness", "yoga", "running", "cycling", "football", "books", "reading",
    "design", "vintage", "flowers", "garden", "ocean", "lake", "forest", "snow", "rain", "night", "morning",
    "brunch", "pizza", "sushi", "tacos", "baking", "cake", "wine", "cocktails", "party", "wedding", "baby",
    "selfie", "ootd", "tbt", "weekend", "roadtrip", "vanlife", "camping", "skyline", "bridge", "museum", "concert",
    "festival", "dance", "skate", "surf", "sailing", "island", "desert", "paris", "lisbon", "tokyo", "berlin",
    "newyork", "rome", "london", "bangkok", "market", "streetfood", "blackandwhite", "portrait", "macro",
    "minimal", "goldenhour", "bluehour", "reflection", "clouds", "sky", "stars", "moon", "gardening", "plants",
    "homedecor", "interior", "cozy", "tea",
)
CAPTION_OPENINGS = (
    "Golden hour again", "Best day in a while", "Could stay here forever", "Weekend mood", "New favourite spot",
    "Not a bad view", "Finally made it", "Quiet morning", "Same place, different light", "Throwback",
    "Little things", "Home for now", "Out and about", "Look at this", "Caught the last light",
)
LOCATIONS = (
    "Lisbon", "Porto", "Paris", "Berlin", "Tokyo", "New York", "Rome", "London", "Bangkok", "Mexico City",
    "Cape Town", "Sydney", "Reykjavik", "Istanbul", "Seoul",
)
COMMENT_TEXTS = (
    "Love this!", "Wow", "So good", "Amazing shot", "Where is this?", "Need to go there", "Beautiful colours",
    "This is everything", "Great light", "Miss this place", "Stunning", "Ha, classic", "Take me with you",
)
REPLY_TEXTS = ("thank you!", "thanks so much", "glad you like it", "you have to go", "next time together")
TAG_COUNTS = (0, 0, 0, 0, 1, 1, 1, 2, 2, 3)  # hashtags per post, drawn uniformly: mean 1.0, four in ten have none


def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer (names, edge times, shards)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def rng_for(seed: int, aspect: str) -> random.Random:
    return random.Random(f"photos-seed:{seed}:{aspect}")


def username(seed: int, index: int) -> str:
    """The seeded user `index`'s username: lower-case, at most 30 characters, unique per (seed, index)."""
    return f"{FIRST_NAMES[mix64(seed * 10_000_019 + index) % len(FIRST_NAMES)]}{index}_s{seed}"


def hashtag(seed: int, index: int) -> str:
    """The `index`-th tag of the seed's vocabulary (carries the seed: no two seeds count the same tag)."""
    word = TAG_WORDS[index % len(TAG_WORDS)]
    round_ = index // len(TAG_WORDS)
    return f"{word}{round_ + 1 if round_ else ''}_s{seed}"


def anchor_from_user0(user0_id: int) -> int:
    """The anchor (unix ms) of a world whose user 0 has this id."""
    return (user0_id >> (SHARD_BITS + SEQUENCE_BITS)) + ID_EPOCH_MS + USER0_BEFORE_MS


class IdMaker:
    """Ids in app/ids.py's layout (ms | shard | sequence) for instants in the past, unique within a world.

    Each kind of object gets its own shard, derived from the seed, so kinds never collide and two seeds
    share a shard only by chance (and then would also need the same millisecond and sequence). The
    sequence is the object's index; an id already made moves one millisecond on."""

    def __init__(self, seed: int, kind: str) -> None:
        self.shard = (mix64(seed) + _KINDS[kind] * 1021) % (MAX_SHARD + 1)
        self._used: set[int] = set()

    def make(self, unix_ms: int, index: int) -> int:
        ms = unix_ms - ID_EPOCH_MS
        if ms < 0:
            raise ValueError("the seeded world would start before the id epoch (2026-01-01)")
        while True:
            candidate = (ms << (SHARD_BITS + SEQUENCE_BITS)) | (self.shard << SEQUENCE_BITS) | (index & MAX_SEQUENCE)
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
            ms += 1


@dataclass(frozen=True)
class Params:
    users: int
    seed: int
    # settings that shape derived data (Params.for_settings copies them)
    max_following: int = 7_500
    celebrity_followers: int = 10_000
    followers_per_bucket: int = 100_000
    likes_per_bucket: int = 100_000
    story_ttl_s: int = 86_400
    # the follow graph
    zipf_exponent: float = 0.9
    following_median: float = 15.0
    following_sigma: float = 1.0
    # posts
    posts_median: float = 1.5  # posts per 28 days
    posts_sigma: float = 1.0
    max_posts: int = 200
    tag_zipf_exponent: float = 1.0
    mention_share: float = 0.15
    location_share: float = 0.5
    # engagement
    fan_share: float = 0.1
    fan_like: float = 0.5
    casual_like: float = 0.01
    like_delay_mean_ms: int = 6 * HOUR_MS
    comment_share: float = 0.06
    reply_share: float = 0.3
    # stories and readers
    story_share: float = 0.12
    stories_mean: float = 2.5
    active_share: float = 0.25
    active_within_ms: int = 2 * DAY_MS

    @classmethod
    def for_settings(cls, users: int, seed: int, settings: Settings, **overrides) -> Params:
        return cls(
            users=users, seed=seed, max_following=settings.max_following,
            celebrity_followers=settings.feed_celebrity_followers, followers_per_bucket=settings.followers_per_bucket,
            likes_per_bucket=settings.likes_per_bucket, story_ttl_s=settings.story_ttl_s, **overrides,
        )

    def check(self) -> None:
        if not 2 <= self.users <= MAX_USERS:
            raise ValueError(f"--users must be between 2 and {MAX_USERS:,}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed must be between 0 and {MAX_SEED:,}")

    @property
    def vocabulary(self) -> int:
        """Distinct hashtags: one per 10 users, between 30 and 20 rounds of the word list."""
        return max(30, min(self.users // 10, 20 * len(TAG_WORDS)))


@dataclass
class Comment:
    comment_id: int
    post: int  # post index
    parent_id: int | None  # a reply's top-level comment
    author: int  # user index
    at_ms: int
    text: str


@dataclass
class Story:
    story_id: int
    author: int
    at_ms: int
    expires_ms: int
    image: int  # pool index


@dataclass
class World:
    params: Params
    anchor_ms: int
    user_ms: array = field(default_factory=lambda: array("q"))
    user_ids: array = field(default_factory=lambda: array("q"))
    usernames: list[str] = field(default_factory=list)
    display_names: list[str] = field(default_factory=list)
    by_rank: list[int] = field(default_factory=list)  # user index at each popularity rank, most popular first
    following: list[array] = field(default_factory=list)  # followee indices, per user
    following_ms: list[array] = field(default_factory=list)  # when each of those follows was made
    followers: list[array] = field(default_factory=list)  # follower indices, per user
    followers_ms: list[array] = field(default_factory=list)  # when each of them followed
    # posts, by index (sorted by time, so by id)
    post_ids: array = field(default_factory=lambda: array("q"))
    post_ms: array = field(default_factory=lambda: array("q"))
    post_author: array = field(default_factory=lambda: array("i"))
    post_image: array = field(default_factory=lambda: array("b"))
    post_caption: list[str] = field(default_factory=list)
    post_location: list[str] = field(default_factory=list)
    post_tags: list[tuple[int, ...]] = field(default_factory=list)  # vocabulary indices, in caption order
    posts_by_author: list[list[int]] = field(default_factory=list)  # post indices, oldest first
    likers: list[array] = field(default_factory=list)  # per post: user indices in the order they liked
    liked_ms: list[array] = field(default_factory=list)  # per post: when each of them liked
    comments: list[Comment] = field(default_factory=list)
    stories: list[Story] = field(default_factory=list)
    active: bytearray = field(default_factory=bytearray)
    last_read_ms: array = field(default_factory=lambda: array("q"))

    @property
    def post_start_ms(self) -> int:
        return self.anchor_ms - POST_SPAN_MS

    def follower_count(self, user: int) -> int:
        return len(self.followers[user])

    def is_celebrity(self, user: int) -> bool:
        """Pulled at read time: the follow worker marks an author once followers reach the threshold (the
        seeded graph only ever grew, so the 90% way back never applies)."""
        return len(self.followers[user]) >= self.params.celebrity_followers

    def follower_buckets(self, user: int) -> list[list[int]]:
        """The user's followers split into `followers` buckets as the API and the follow worker fill them:
        in follow order, each bucket up to followers_per_bucket."""
        followers = list(self.followers[user])
        size = self.params.followers_per_bucket
        if len(followers) < size:
            return [followers] if followers else []
        followers = [f for _, f in sorted(zip(self.followers_ms[user], followers, strict=True))]
        return [followers[i : i + size] for i in range(0, len(followers), size)]

    def open_follower_bucket(self, user: int) -> int | None:
        """users.follower_bucket as the follow worker leaves it: raised past each full bucket, else unset."""
        count = len(self.followers[user])
        return count // self.params.followers_per_bucket if count >= self.params.followers_per_bucket else None

    def tag_name(self, tag: int) -> str:
        return hashtag(self.params.seed, tag)


def build(params: Params, anchor_ms: int) -> World:
    """The whole world for these parameters and anchor (about 1 s per 10,000 users)."""
    params.check()
    world = World(params, anchor_ms)
    _users(world)
    _graph(world)
    _posts(world)
    _engagement(world)
    _stories(world)
    _readers(world)
    return world


def _users(world: World) -> None:
    p = world.params
    ids = IdMaker(p.seed, "user")
    start = world.anchor_ms - USER0_BEFORE_MS
    names = rng_for(p.seed, "names")
    for i in range(p.users):
        ms = start + i * ACCOUNT_SPAN_MS // p.users
        world.user_ms.append(ms)
        world.user_ids.append(ids.make(ms, i))
        world.usernames.append(username(p.seed, i))
        first = world.usernames[-1].split(str(i), 1)[0]
        world.display_names.append(f"{first.capitalize()} {names.choice(LAST_NAMES)}")


def zipf_cumulative(n: int, exponent: float) -> list[float]:
    """Cumulative weights of ranks 1..n under a bounded Zipf distribution, P(r) ~ 1 / r^exponent."""
    total, cumulative = 0.0, []
    for rank in range(1, n + 1):
        total += rank ** -exponent
        cumulative.append(total)
    return cumulative


def following_count(rng: random.Random, params: Params) -> int:
    cap = min(params.max_following, params.users - 1)
    drawn = round(rng.lognormvariate(math.log(params.following_median), params.following_sigma))
    return max(1, min(cap, drawn))


def _graph(world: World) -> None:
    p = world.params
    n = p.users
    rng = rng_for(p.seed, "graph")
    world.by_rank = list(range(n))
    rng.shuffle(world.by_rank)
    by_rank = world.by_rank
    cumulative = zipf_cumulative(n, p.zipf_exponent)
    total = cumulative[-1]
    followers: list[list[int]] = [[] for _ in range(n)]
    followers_ms: list[list[int]] = [[] for _ in range(n)]
    times = rng_for(p.seed, "follow-times")
    user_ms, last_ms = world.user_ms, world.post_start_ms - SECOND_MS
    for user in range(n):
        k = following_count(rng, p)
        if k > n // 3:  # most of the network: weighted sampling without replacement, by keys (Efraimidis-Spirakis)
            keys = sorted(((rng.random() ** (1.0 / (r + 1) ** -p.zipf_exponent), by_rank[r])
                           for r in range(n) if by_rank[r] != user), reverse=True)
            chosen = [v for _, v in keys[:k]]
        else:
            seen = {user}
            chosen = []
            while len(chosen) < k:
                want = k - len(chosen)
                for _ in range(2 * want + 4):
                    followee = by_rank[bisect.bisect(cumulative, rng.random() * total, 0, n - 1)]
                    if followee not in seen:
                        seen.add(followee)
                        chosen.append(followee)
                        if len(chosen) == k:
                            break
        world.following.append(array("i", chosen))
        made = array("q")
        for followee in chosen:  # a follow is made after both accounts exist, before the posts begin
            low = max(user_ms[user], user_ms[followee]) + SECOND_MS
            at = low + int(times.random() * max(1, last_ms - low))
            made.append(at)
            followers[followee].append(user)
            followers_ms[followee].append(at)
        world.following_ms.append(made)
    world.followers = [array("i", f) for f in followers]
    world.followers_ms = [array("q", f) for f in followers_ms]


def _posts(world: World) -> None:
    p = world.params
    rng = rng_for(p.seed, "posts")
    end = world.anchor_ms - MINUTE_MS
    timed: list[tuple[int, int]] = []
    for user in range(p.users):
        rate = rng.lognormvariate(math.log(p.posts_median), p.posts_sigma) / POST_SPAN_MS  # posts per ms
        at = world.post_start_ms
        for _ in range(p.max_posts):
            at += int(rng.expovariate(rate)) + 1
            if at >= end:
                break
            timed.append((at, user))
    timed.sort()
    ids = IdMaker(p.seed, "post")
    tags_cumulative = zipf_cumulative(p.vocabulary, p.tag_zipf_exponent)
    tags_total = tags_cumulative[-1]
    world.posts_by_author = [[] for _ in range(p.users)]
    content = rng_for(p.seed, "captions")
    for index, (at, author) in enumerate(timed):
        world.post_ids.append(ids.make(at, index))
        world.post_ms.append(at)
        world.post_author.append(author)
        world.post_image.append(content.randrange(POOL_SIZE))
        world.posts_by_author[author].append(index)
        tags: list[int] = []
        for _ in range(content.choice(TAG_COUNTS)):
            tag = bisect.bisect(tags_cumulative, content.random() * tags_total, 0, p.vocabulary - 1)
            if tag not in tags:
                tags.append(tag)
        world.post_tags.append(tuple(tags))
        caption = content.choice(CAPTION_OPENINGS)
        followees = world.following[author]
        if followees and content.random() < p.mention_share:
            caption += f" with @{world.usernames[followees[content.randrange(len(followees))]]}"
        if tags:
            caption += " " + " ".join(f"#{world.tag_name(t)}" for t in tags)
        world.post_caption.append(caption)
        world.post_location.append(content.choice(LOCATIONS) if content.random() < p.location_share else "")


def bernoulli_indices(rng: random.Random, n: int, probability: float) -> list[int]:
    """The indices 0..n-1 each kept with `probability`, drawn by geometric skips (cost ~ the number kept)."""
    if probability <= 0 or n <= 0:
        return []
    if probability >= 1:
        return list(range(n))
    log_q = math.log1p(-probability)
    kept, i = [], -1
    while True:
        i += 1 + int(math.log(1.0 - rng.random()) / log_q)
        if i >= n:
            return kept
        kept.append(i)


def _engagement(world: World) -> None:
    p = world.params
    rng = rng_for(p.seed, "likes")
    texts = rng_for(p.seed, "comments")
    comment_ids = IdMaker(p.seed, "comment")
    end = world.anchor_ms - SECOND_MS
    world.likers = [array("i") for _ in world.post_ids]
    world.liked_ms = [array("q") for _ in world.post_ids]
    pending: list[tuple[int, int, int | None, int, str]] = []  # (at, post, parent index, author, text)
    for author in range(p.users):
        posts = world.posts_by_author[author]
        if not posts:
            continue
        followers = world.followers[author]
        fans = bernoulli_indices(rng, len(followers), p.fan_share)
        for post in posts:
            chosen = {followers[i] for i in fans if rng.random() < p.fan_like}
            chosen.update(followers[i] for i in bernoulli_indices(rng, len(followers), p.casual_like))
            likes = []
            for liker in sorted(chosen):
                at = world.post_ms[post] + SECOND_MS + int(rng.expovariate(1.0 / p.like_delay_mean_ms))
                if at < end:  # a like due after the anchor has not happened yet
                    likes.append((at, liker))
            likes.sort()
            world.likers[post] = array("i", [liker for _, liker in likes])
            world.liked_ms[post] = array("q", [at for at, _ in likes])
            for liked_at, liker in likes:
                if texts.random() < p.comment_share:
                    at = liked_at + SECOND_MS + int(texts.expovariate(1.0 / (30 * MINUTE_MS)))
                    if at < end:
                        text = texts.choice(COMMENT_TEXTS)
                        if texts.random() < 0.2:
                            text = f"@{world.usernames[author]} {text}"
                        pending.append((at, post, None, liker, text))
                        if texts.random() < p.reply_share:
                            reply_at = at + SECOND_MS + int(texts.expovariate(1.0 / (2 * HOUR_MS)))
                            if reply_at < end:
                                reply = f"@{world.usernames[liker]} {texts.choice(REPLY_TEXTS)}"
                                pending.append((reply_at, post, len(pending) - 1, author, reply))
    made: list[Comment] = []
    for index, (at, post, parent, author, text) in enumerate(pending):  # parents come before their replies
        parent_id = made[parent].comment_id if parent is not None else None
        made.append(Comment(comment_ids.make(at, index), post, parent_id, author, at, text))
    world.comments = made


def _stories(world: World) -> None:
    p = world.params
    rng = rng_for(p.seed, "stories")
    ids = IdMaker(p.seed, "story")
    ttl_ms = p.story_ttl_s * SECOND_MS
    span = max(MINUTE_MS, min(STORY_SPAN_MS, ttl_ms * 9 // 10))  # every story is live at the anchor
    stories: list[tuple[int, int, int]] = []
    for user in range(p.users):
        if rng.random() >= p.story_share:
            continue
        count = 1
        while rng.random() < 1 - 1 / p.stories_mean:
            count += 1
        for _ in range(min(count, 20)):
            at = world.anchor_ms - rng.randrange(MINUTE_MS, span + MINUTE_MS)
            stories.append((at, user, rng.randrange(POOL_SIZE)))
    stories.sort()
    world.stories = [Story(ids.make(at, i), user, at, at + ttl_ms, image)
                     for i, (at, user, image) in enumerate(stories)]


def _readers(world: World) -> None:
    p = world.params
    rng = rng_for(p.seed, "readers")
    for _ in range(p.users):
        active = rng.random() < p.active_share
        world.active.append(1 if active else 0)
        world.last_read_ms.append(world.anchor_ms - rng.randrange(p.active_within_ms) if active else 0)
