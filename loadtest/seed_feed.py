"""Seeding for the feed and like benchmarks: users, the social graph, posts and feeds written
straight through the table owners (app/wiring.Storage; far faster than HTTP), into the benchmark's own keyspace.

- `seed_followers`: N followers of one author (users rows, `following` edges claimed as the API
  claims them, the `followers` mirror), each marked as an active reader in Redis so fan-out
  pushes to them.
- `seed_readers`: users with session tokens (the like benchmark's clients).
- `seed_read_world`: authors with recent posts (`posts` rows with fake media keys, and their
  `posts_by_user` timelines), two celebrities (`celebrities`, `followed_celebrities`), and
  readers who follow all of them, each with a full `feed_items` partition and a session token.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PIL import Image
from redis.asyncio import Redis

from app.auth import SessionStore
from app.feed.writer import for_each
from app.ids import ID_EPOCH_MS, MAX_SHARD, SEQUENCE_BITS, SHARD_BITS, IdGenerator, id_time
from app.media.preview import preview
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.storage.feed import Entry
from app.wiring import Caches, Storage

SEED_CONCURRENCY = 128  # requests in flight while seeding
ACTIVE_TTL_S = 3600  # the benchmark's "active reader" marks outlive a run, then clean themselves up
VARIANT_SIZES = {"original": (2048, 1536), "large": (1080, 810), "medium": (640, 480), "thumbnail": (150, 150)}
PREVIEW = preview(Image.new("RGB", (64, 48), (200, 120, 40)))  # a real BlurHash: realistic response size


@dataclass
class Reader:
    user_id: int
    token: str
    auth: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.auth = {"Authorization": f"Bearer {self.token}"}


@dataclass
class ReadWorld:
    readers: list[Reader]
    authors: list[int]
    celebrities: list[int]
    posts: int
    feed_rows: int
    seconds: float


class Seeder:
    def __init__(self, settings: Settings, cass: CassandraSession, redis: Redis) -> None:
        self.settings = settings
        self.cass = cass
        self.redis = redis
        self.cache = Caches.for_settings(settings, redis).feed
        self.ids = IdGenerator()
        self.run_tag = f"{int(time.time()) % 10**8:x}"  # usernames unique per run (the keyspace is reused)
        self._shard = random.randrange(MAX_SHARD + 1)  # for post ids made at past instants
        self._sequence = 0

    async def prepare(self) -> Seeder:
        self.storage = await Storage.prepare(self.cass)
        self.users = self.storage.users
        self.follows = self.storage.follows
        self.posts = self.storage.posts
        self.feed = self.storage.feed
        self.sessions = SessionStore(self.storage.sessions, self.settings.session_ttl_s)
        return self

    def past_id(self, unix_ms: int) -> int:
        """A unique id made at a past instant (posts of the last days)."""
        self._sequence = (self._sequence + 1) & ((1 << SEQUENCE_BITS) - 1)
        if self._sequence == 0:
            unix_ms += 1
        return ((unix_ms - ID_EPOCH_MS) << (SHARD_BITS + SEQUENCE_BITS)) | (self._shard << SEQUENCE_BITS) | (
            self._sequence
        )

    async def add_users(self, user_ids: list[int], prefix: str) -> None:
        now = datetime.now(UTC)
        await for_each(
            user_ids,
            lambda uid: self.users.insert(uid, f"{prefix}{self.run_tag}_{uid}", f"bench {prefix}", "", now),
            SEED_CONCURRENCY,
        )

    async def seed_readers(self, count: int, prefix: str) -> list[Reader]:
        """`count` new users, each with a session token (as a login creates it)."""
        user_ids = [self.ids.next_id() for _ in range(count)]
        await self.add_users(user_ids, prefix)
        tokens: dict[int, str] = {}

        async def log_in(user_id: int) -> None:
            tokens[user_id] = await self.sessions.create(user_id)

        await for_each(user_ids, log_in, SEED_CONCURRENCY)
        return [Reader(user_id, tokens[user_id]) for user_id in user_ids]

    async def add_follows(self, pairs: list[tuple[int, int]]) -> None:
        """(follower, followee) edges, written as the API writes them: the claimed edge, then the mirror."""
        now = datetime.now(UTC)

        async def add(pair: tuple[int, int]) -> None:
            follower, followee = pair
            bucket = await self.follows.claim_edge(follower, followee, now, 0)
            await self.follows.write_mirror(followee, bucket, follower, now)

        await for_each(pairs, add, SEED_CONCURRENCY)

    async def mark_active(self, user_ids: list[int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in user_ids:
                pipe.set(self.cache.active_key(uid), b"1", ex=ACTIVE_TTL_S)
            await pipe.execute()

    async def seed_followers(self, author_id: int, count: int) -> list[int]:
        """`count` active followers of `author_id`; returned in id order (the order fan-out walks them)."""
        followers = sorted(self.ids.next_id() for _ in range(count))
        await self.add_users(followers, "f")
        await self.add_follows([(f, author_id) for f in followers])
        await self.mark_active(followers)
        return followers

    async def add_post(self, post_id: int, author_id: int) -> None:
        media = {name: (f"p/{post_id}/{name}-bench.jpg", w, h) for name, (w, h) in VARIANT_SIZES.items()}
        await self.posts.insert(
            post_id, author_id, f"bench post {post_id} #bench", [], [], "Lisbon", None, media, PREVIEW,
            id_time(post_id),
        )

    async def seed_read_world(
        self, readers: int, authors: int, posts_per_author: int, celebrities: int, celebrity_posts: int,
        feed_rows: int,
    ) -> ReadWorld:
        """Readers with full feeds of real posts, following pushed authors and pulled celebrities."""
        started = time.perf_counter()
        rng = random.Random(7)
        now_ms = int(time.time() * 1000)
        author_ids = [self.ids.next_id() for _ in range(authors)]
        celebrity_ids = [self.ids.next_id() for _ in range(celebrities)]
        reader_ids = [self.ids.next_id() for _ in range(readers)]
        await self.add_users(author_ids, "a")
        await self.add_users(celebrity_ids, "c")
        await self.add_users(reader_ids, "r")

        # posts of the last two days (pushed authors) and the last day (celebrities)
        pushed_posts = [
            Entry(self.past_id(now_ms - rng.randrange(1_000, 48 * 3_600_000)), author)
            for author in author_ids for _ in range(posts_per_author)
        ]
        pulled_posts = [
            Entry(self.past_id(now_ms - rng.randrange(1_000, 24 * 3_600_000)), celebrity)
            for celebrity in celebrity_ids for _ in range(celebrity_posts)
        ]
        await for_each([*pushed_posts, *pulled_posts], lambda e: self.add_post(e.post_id, e.author_id),
                       SEED_CONCURRENCY)
        await asyncio.gather(*(self.feed.mark_celebrity(c) for c in celebrity_ids))

        # the graph: every reader follows every author and every celebrity (the read path drops
        # posts of authors the reader does not follow)
        await self.add_follows([(r, a) for r in reader_ids for a in [*author_ids, *celebrity_ids]])
        await for_each(
            [(r, c) for r in reader_ids for c in celebrity_ids],
            lambda pair: self.feed.add_followed_celebrity(*pair),
            SEED_CONCURRENCY,
        )

        # feeds: each reader holds `feed_rows` of the pushed posts, as fan-out would have written them
        ttl_full = self.settings.feed_ttl_days * 86400

        def ttl(post_id: int) -> int:
            return int(ttl_full - (now_ms - id_time(post_id).timestamp() * 1000) / 1000)

        rows = [(r, e) for r in reader_ids for e in rng.sample(pushed_posts, min(feed_rows, len(pushed_posts)))]
        await for_each(rows, lambda row: self.feed.add(row[0], row[1], ttl(row[1].post_id)), SEED_CONCURRENCY)

        tokens = await asyncio.gather(*(self.sessions.create(r) for r in reader_ids))
        await self.mark_active(reader_ids)  # no rebuild on their first read: the steady state is measured
        return ReadWorld(
            readers=[Reader(r, t) for r, t in zip(reader_ids, tokens, strict=True)],
            authors=author_ids,
            celebrities=celebrity_ids,
            posts=len(pushed_posts) + len(pulled_posts),
            feed_rows=len(rows),
            seconds=time.perf_counter() - started,
        )
