"""The composition root: storage, caches, publishers and services built from `Settings`, in one place.

`photos-api` (app/main.py), `photos-streams` (streams/app.py), the CLIs and the benchmarks all
build what they use here, so a table owner, a cache or a service is made the same way everywhere:

- `Storage`: every table owner of app/storage/, prepared once on one Cassandra session;
- `Caches`: the Redis structures that cache or derive table data, on one Redis client;
- `Wiring`: what one process shares, each part made on first use (a stream worker may start while
  Cassandra is down: `storage()` raises then, leaves nothing open, and succeeds once it is back);
- `build_services`: the API's domain services from those parts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields

from cassandra.cluster import Cluster
from redis.asyncio import BlockingConnectionPool, Redis

from app.auth import Passwords, SessionStore
from app.client_security import redis_options
from app.comments.service import CommentService
from app.cursors import CursorCodec
from app.events import EventPublisher
from app.feed.service import FeedService
from app.feed.writer import FeedWriter
from app.hashtags.service import HashtagService
from app.idempotency import IdempotencyStore
from app.ids import IdGenerator
from app.likes.service import LikeService
from app.media.processor import ImageProcessor
from app.media.store import MediaStore, make_media_store
from app.metrics import CountingRedis
from app.notifications.service import NotificationService, make_notification_service
from app.outbox import Outbox
from app.posts.service import PostService
from app.ranking.impressions import ImpressionLog
from app.ranking.serving import FORMULA, FeedRankers
from app.ranking.watcher import ModelWatcher
from app.ratelimit import RateLimiter
from app.redis_breaker import RedisBreaker
from app.search.service import SearchService
from app.settings import Settings
from app.storage import cassandra
from app.storage.affinity import AffinityRepository
from app.storage.audit_reads import AuditReads
from app.storage.cassandra import CassandraSession
from app.storage.comments import CommentRepository
from app.storage.feed import FeedRepository
from app.storage.feed_cache import FeedCache
from app.storage.follows import FollowRepository
from app.storage.hashtags import HashtagRepository
from app.storage.idempotency import IdempotencyTable
from app.storage.like_counts import LikeCounts
from app.storage.likes import LikeRepository
from app.storage.media_sweep import MediaSweepLog
from app.storage.notifications import NotificationRepository
from app.storage.outbox import OutboxTable
from app.storage.post_cache import PostCache
from app.storage.posts import PostRepository
from app.storage.ranker_models import RankerModels
from app.storage.ranking_log import RankingLog
from app.storage.search_index import SearchIndex
from app.storage.session_cache import SessionCache
from app.storage.sessions import SessionTable
from app.storage.stories import StoryMediaLog, StoryRepository
from app.storage.trending import TrendingCells, TrendingRankings
from app.storage.user_cache import UserCache
from app.storage.users import UserRepository
from app.stories.service import StoryService
from app.trending.service import TrendingService
from app.users.service import UserService


@dataclass
class Storage:
    """Every table owner (app/storage/), prepared on one session: the only way anything reaches a table."""

    cass: CassandraSession
    users: UserRepository
    follows: FollowRepository
    sessions: SessionTable
    posts: PostRepository
    hashtags: HashtagRepository
    media_sweep: MediaSweepLog
    feed: FeedRepository
    affinity: AffinityRepository
    likes: LikeRepository
    comments: CommentRepository
    notifications: NotificationRepository
    stories: StoryRepository
    story_media: StoryMediaLog
    idempotency: IdempotencyTable
    outbox: OutboxTable
    ranker_models: RankerModels
    ranking_log: RankingLog
    audit: AuditReads  # read only: loadtest/audit.py's probes of tables the others own

    @classmethod
    async def prepare(cls, cass: CassandraSession) -> Storage:
        owners = {
            "users": UserRepository(cass),
            "follows": FollowRepository(cass),
            "sessions": SessionTable(cass),
            "posts": PostRepository(cass),
            "hashtags": HashtagRepository(cass),
            "media_sweep": MediaSweepLog(cass),
            "feed": FeedRepository(cass),
            "affinity": AffinityRepository(cass),
            "likes": LikeRepository(cass),
            "comments": CommentRepository(cass),
            "notifications": NotificationRepository(cass),
            "stories": StoryRepository(cass),
            "story_media": StoryMediaLog(cass),
            "idempotency": IdempotencyTable(cass),
            "outbox": OutboxTable(cass),
            "ranker_models": RankerModels(cass),
            "ranking_log": RankingLog(cass),
            "audit": AuditReads(cass),
        }
        assert owners.keys() == {f.name for f in fields(cls)} - {"cass"}, "every owner is prepared here"
        await asyncio.gather(*(owner.prepare() for owner in owners.values()))
        return cls(cass=cass, **owners)


@dataclass
class Caches:
    """The Redis structures in front of (or derived from) the tables, on one client; keys are namespaced
    by the keyspace, so a test keyspace never shares keys with a development system."""

    redis: Redis
    feed: FeedCache
    like_counts: LikeCounts
    search: SearchIndex
    trending_cells: TrendingCells
    trending_rankings: TrendingRankings
    sessions: SessionCache
    users: UserCache
    posts: PostCache

    @classmethod
    def for_settings(cls, settings: Settings, redis: Redis) -> Caches:
        namespace, trending_ttl_s = settings.cassandra_keyspace, settings.trending_ttl_days * 86_400
        users = UserCache.for_settings(settings, redis)
        return cls(
            redis=redis,
            feed=FeedCache.for_settings(settings, redis),
            like_counts=LikeCounts.for_settings(settings, redis),
            users=users,
            posts=PostCache.for_settings(settings, redis, users),
            search=SearchIndex(redis, namespace),
            trending_cells=TrendingCells(redis, namespace, trending_ttl_s),
            trending_rankings=TrendingRankings(redis, namespace, trending_ttl_s),
            sessions=SessionCache.for_settings(settings, redis),
        )


def redis_client(settings: Settings) -> Redis:
    """A Redis client that counts each route's (or agent's) commands and round trips (app/metrics.py).

    Its pool holds at most `redis_max_connections`; under a burst a command waits (up to the timeout) for a
    free connection, where the default pool would raise MaxConnectionsError at once."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s, socket_connect_timeout=settings.redis_timeout_s,
        **redis_options(settings),
    )
    return CountingRedis.from_pool(pool)  # closing the client closes its pool


class Wiring:
    """What one process shares, each part made on first use and closed by `close()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._cluster: Cluster | None = None
        self._storage: Storage | None = None
        self._redis: Redis | None = None
        self._caches: Caches | None = None
        self._events: EventPublisher | None = None
        self._media_store: MediaStore | None = None

    async def storage(self) -> Storage:
        """Every table owner on one session; the first call connects and prepares (and raises, leaving
        nothing open, while Cassandra cannot be reached)."""
        async with self._lock:
            if self._storage is None:
                cluster, session = await cassandra.connect(self.settings, self.settings.cassandra_keyspace)
                try:
                    self._storage = await Storage.prepare(session)
                except BaseException:
                    await cassandra.shutdown(cluster)
                    raise
                self._cluster = cluster
            return self._storage

    def redis(self) -> Redis:
        """The Redis client (it connects on first command, so making it cannot fail)."""
        if self._redis is None:
            self._redis = redis_client(self.settings)
        return self._redis

    def caches(self) -> Caches:
        if self._caches is None:
            self._caches = Caches.for_settings(self.settings, self.redis())
        return self._caches

    async def events(self) -> EventPublisher:
        """The event publisher; it connects in the background and raises Unavailable on publish until
        Kafka answers."""
        async with self._lock:
            if self._events is None:
                self._events = EventPublisher(self.settings)
                await self._events.start()
            return self._events

    def media_store(self) -> MediaStore:
        if self._media_store is None:
            self._media_store = make_media_store(self.settings)
        return self._media_store

    async def close(self) -> None:
        if self._events is not None:
            await self._events.stop()
        if self._media_store is not None:
            await self._media_store.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._cluster is not None:
            await cassandra.shutdown(self._cluster)
        self._cluster = self._storage = self._redis = self._caches = self._events = self._media_store = None


@dataclass
class Services:
    """The API's domain services, built once per process."""

    passwords: Passwords
    sessions: SessionStore
    limiter: RateLimiter
    idempotency: IdempotencyStore  # applied around the create routes by the route table (app/web.py)
    users: UserService
    posts: PostService
    feed: FeedService
    likes: LikeService
    comments: CommentService
    notifications: NotificationService
    hashtags: HashtagService
    stories: StoryService
    search: SearchService
    trending: TrendingService
    ranker_watcher: ModelWatcher | None = None  # loads newly promoted ranking models (feed_ranker model or split)

    def domain(self) -> list:
        """The domain services (what the routes call)."""
        return [self.users, self.posts, self.feed, self.likes, self.comments, self.notifications, self.hashtags,
                self.stories, self.search, self.trending]

    async def close(self) -> None:
        if self.ranker_watcher is not None:
            await self.ranker_watcher.stop()
        if self.feed.impressions is not None:  # impressions on their way to Kafka (bounded by its send timeout)
            await self.feed.impressions.drain()
        await self.idempotency.close()
        await self.sessions.close()
        await self.notifications.hub.stop()
        self.passwords.close()


def cursor_codec(settings: Settings) -> CursorCodec:
    """The API's cursors: signed with the secret key, verified with it or the previous one (a rotation)."""
    return CursorCodec(settings.secret_key, settings.secret_key_previous)


def build_services(settings: Settings, storage: Storage, caches: Caches, events: EventPublisher,
                   media_store: MediaStore, processor: ImageProcessor) -> Services:
    """The services of one API process (its notification hub, session revocation listener and ranking model
    watcher started: stop them with `close()`)."""
    s = storage
    ids = IdGenerator(shard=None if settings.id_shard < 0 else settings.id_shard)
    cursors = cursor_codec(settings)
    outbox = Outbox(s.outbox, settings.outbox_grace_s)  # what follows and comments owe the workers (app/outbox.py)
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_threads,
                          settings.argon2_max_waiting)
    sessions = SessionStore(s.sessions, settings.session_ttl_s, caches.sessions)
    idempotency = IdempotencyStore(s.idempotency, settings.idempotency_ttl_s, settings.idempotency_pending_ttl_s)
    users = UserService(
        users=s.users, follows=s.follows, sessions=sessions, passwords=passwords, events=events,
        feed_cache=caches.feed, profiles=caches.users, ids=ids, cursors=cursors, max_following=settings.max_following,
        outbox=outbox,
    )
    posts = PostService(
        posts=s.posts, sweep=s.media_sweep, users=s.users, store=media_store, processor=processor, events=events,
        feed_cache=caches.feed, ids=ids, cursors=cursors, likes=s.likes, objects=caches.posts, profiles=caches.users,
        max_caption_length=settings.max_caption_length, max_location_length=settings.max_location_length,
    )
    impressions = ImpressionLog(events, settings.ranking_impression_sample)  # the ranking log's: feed and comments
    rankers = FeedRankers(settings.feed_ranker, settings.feed_ranker_split_percent)
    feed = FeedService(
        feed=s.feed, writer=feed_writer(settings, storage, caches), cache=caches.feed, follows=s.follows,
        affinity=s.affinity, post_rows=s.posts, posts=posts, ids=ids, cursors=cursors,
        rankers=rankers,
        rank_window=settings.feed_rank_window, refill_after_s=settings.feed_refill_after_s,
        rebuild_wait_s=settings.feed_rebuild_wait_ms / 1000,
        impressions=impressions,
    )
    notifications = make_notification_service(settings, s.notifications, caches.redis, cursors)
    caches.sessions.on_revoked(notifications.hub.revoke)  # a revoked token's WebSockets are closed
    sessions.start()
    ranker_watcher = None
    if settings.feed_ranker != FORMULA:  # its first poll runs at once: the promoted model within a moment
        ranker_watcher = ModelWatcher(s.ranker_models, media_store, rankers, settings.ranker_poll_s)
        ranker_watcher.start()
    limiter = RateLimiter(caches.redis, settings.rate_window_s)
    return Services(
        passwords=passwords,
        sessions=sessions,
        idempotency=idempotency,
        limiter=limiter,
        users=users,
        posts=posts,
        feed=feed,
        likes=LikeService(
            likes=s.likes, counts=caches.like_counts, posts=s.posts, events=events, feed_cache=caches.feed,
            cursors=cursors, limiter=limiter, rate_per_user=settings.like_rate_per_user,  # counted in its one script
        ),
        notifications=notifications,
        comments=CommentService(
            comments=s.comments, posts=s.posts, users=s.users, events=events, ids=ids, cursors=cursors,
            max_comment_length=settings.max_comment_length, outbox=outbox, impressions=impressions,
        ),
        hashtags=HashtagService(hashtags=s.hashtags, posts=posts),
        stories=StoryService(
            stories=s.stories, media_log=s.story_media, users=s.users, follows=s.follows, feed=s.feed,
            affinity=s.affinity, store=media_store, processor=processor, events=events, ids=ids, cursors=cursors,
            ttl_s=settings.story_ttl_s, max_live=settings.story_max_live, feed_cache=caches.feed, outbox=outbox,
        ),
        search=SearchService(caches.search, cursors, RedisBreaker("search")),
        trending=TrendingService(caches.trending_rankings),
        ranker_watcher=ranker_watcher,
    )


def feed_writer(settings: Settings, storage: Storage, caches: Caches) -> FeedWriter:
    """Writes to home feeds (the fan-out agent's and the feed service's, which backfills feeds on read)."""
    return FeedWriter.for_settings(settings, storage.feed, storage.posts.by_user, caches.feed)
