"""The model written to Cassandra and Redis as the API and the stream workers would have left it.

Truth rows are the API's (users, names, sessions, follow and like edges, posts and their timelines,
comments and their lists, stories); derived rows are what each worker computes from them, written with
that worker's own statements (its table owners', handed out by loadtest/seeding/statements.py) and rules:

- follow_graph: the `followers` mirror in buckets of followers_per_bucket (follow order), each bucket's
  count in `follower_buckets`, `users.follower_count` / `following_count` / `follower_bucket`;
- feed_graph: `celebrities` (followers >= feed_celebrity_followers) and every follower's
  `followed_celebrities` row;
- feed_fanout: each active reader's `feed_items`: the posts of the non-celebrities they follow, each
  row with the TTL `FeedWriter.ttl_for` gives, trimmed to the newest feed_max_entries (what the 1-in-64
  trim keeps; a live partition may briefly hold a few hundred more);
- post_counts, hashtag_counts: per-bucket counts and totals (`users.post_count`, `hashtags.post_count`);
- like_counts: `post_likers` (buckets of likes_per_bucket in like order, static counts),
  `post_like_buckets`, `posts.like_count` / `like_bucket`;
- comment_counts: the live-comment and live-reply counted sets, `posts.comment_count`,
  `comments.reply_count`;
- affinity_likes / affinity_comments: `affinity_posts` and `affinity.interactions`;
- story_tray: every follower's `story_tray` row of each non-celebrity author's live stories, with the
  story's remaining TTL; the story media log for the sweeper;
- Redis: the `active:` marks of the active readers (fan-out's test), the search index
  (app/search/rebuild.py's entries; a full rebuild when the index is not ready) and the trending cells
  (streams/trending.py) of the posts still inside trending_ttl_days (the rankings are the workers' timer's).

Not seeded: notifications and story views (left to live traffic; docs/seeding.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis
from tqdm import tqdm

from app.feed.writer import FeedWriter
from app.ids import hour_bucket, month_bucket
from app.media.store import MediaStore
from app.posts import text
from app.search.query import HASHTAGS, USERS
from app.search.rebuild import now_us, rebuild, user_payload
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.storage.search_index import Entry as SearchEntry
from app.storage.stories import remaining_s, row_ttl_s
from app.storage.trending import TrendingCells
from app.trending.scoring import SLOT_MS, slot_of
from app.wiring import Caches
from loadtest.seeding.media import MediaLinker, PoolImage
from loadtest.seeding.model import Comment, World
from loadtest.seeding.statements import Statements, Write, password_salt
from loadtest.seeding.writer import BatchWriter, WriterStats

REDIS_CHUNK = 2_000
SEARCH_CHUNK = 500


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class Phase:
    name: str
    seconds: float
    detail: str


@dataclass
class LoadReport:
    phases: list[Phase] = field(default_factory=list)
    writes: WriterStats | None = None
    tokens: dict[int, str] = field(default_factory=dict)  # user index -> session token
    feed_rows: int = 0
    tray_rows: int = 0
    media_links: int = 0
    search: str = ""
    trending: str = ""


class Loader:
    def __init__(self, settings: Settings, cass: CassandraSession, redis: Redis, world: World, statements: Statements,
                 store: MediaStore, pool: list[PoolImage], *, progress: bool = True, trending: bool = True,
                 tokens: dict[int, str] | None = None) -> None:
        self.settings = settings
        self.cass = cass
        self.redis = redis
        self.world = world
        self.s = statements
        self.store = store
        self.pool = pool
        self.progress = progress
        self.with_trending = trending
        self.report = LoadReport(tokens=dict(tokens or {}))
        self.caches = Caches.for_settings(settings, redis)
        self.cache = self.caches.feed
        self.feeds = FeedWriter.for_settings(settings, statements.feed, statements.posts.by_user, self.cache)
        self.read_at = now_us()  # the "read time" every recount stamps its totals with
        self.now_s = time.time()
        self._derive()

    # --- what several phases need -----------------------------------------------------------
    def _derive(self) -> None:
        w, p = self.world, self.world.params
        self.celebrity = [w.is_celebrity(u) for u in range(p.users)]
        # followers in buckets (follow order); where a follower sits in a big account's buckets
        self.buckets_of_big: dict[int, dict[int, int]] = {}
        for user in range(p.users):
            if w.follower_count(user) >= p.followers_per_bucket:
                self.buckets_of_big[user] = {f: b for b, fs in enumerate(w.follower_buckets(user)) for f in fs}
        # each liker's likes, each post's comments, and who engaged with whom
        self.likes_by_user: list[list[tuple[int, int, int]]] = [[] for _ in range(p.users)]  # (post, ms, bucket)
        self.affinity: dict[tuple[int, int], dict[int, list[bool]]] = defaultdict(dict)  # (user, author) -> post
        for post, likers in enumerate(w.likers):
            author = w.post_author[post]
            for i, (liker, ms) in enumerate(zip(likers, w.liked_ms[post], strict=True)):
                self.likes_by_user[liker].append((post, ms, i // p.likes_per_bucket))
                if liker != author:
                    self.affinity[liker, author].setdefault(post, [False, False])[0] = True
        self.top_comments: dict[int, list[Comment]] = defaultdict(list)  # post -> its top-level comments
        self.replies: dict[int, list[Comment]] = defaultdict(list)  # comment id -> its replies
        for comment in w.comments:
            if comment.parent_id is None:
                self.top_comments[comment.post].append(comment)
            else:
                self.replies[comment.parent_id].append(comment)
            author = w.post_author[comment.post]
            if comment.author != author:
                self.affinity[comment.author, author].setdefault(comment.post, [False, False])[1] = True
        self.authors_of: dict[int, list[int]] = defaultdict(list)  # user -> the authors they engaged with
        for user, author in self.affinity:
            self.authors_of[user].append(author)
        self.live_stories: dict[int, list] = defaultdict(list)  # author -> their stories still live
        for story in w.stories:
            if remaining_s(at(story.expires_ms), self.now_s) > 0:
                self.live_stories[story.author].append(story)

    def _bar(self, name: str, total: int, position: int = 0) -> tqdm:
        return tqdm(total=total, desc=f"{name:<10}", unit=" items", disable=not self.progress, leave=False,
                    mininterval=0.5, smoothing=0.1, position=position)

    # --- the run ------------------------------------------------------------------------------
    async def run(self, password_hash_fn) -> LoadReport:
        self.password_hash = await password_hash_fn(password_salt(self.world.params.seed))
        self.writer = BatchWriter(self.cass)
        started = time.perf_counter()
        # the media is linked (in threads) while the accounts and the graph are written; posts and stories,
        # which point at it, are written once it is all in place, as the API stores media before the row
        media = asyncio.ensure_future(self._phase("media", self._media))
        try:
            await self._phase("users", self._users)
        finally:
            await media
        await self._phase("posts", self._posts)
        await self._phase("comments", self._comments)
        await self._phase("hashtags", self._hashtags)
        await self._phase("engagement", self._engagement)
        await self._phase("stories", self._stories)
        await self._phase("sessions", self._sessions)
        drained = time.perf_counter()
        self.report.writes = await self.writer.drain()
        stats = self.report.writes
        self.report.phases.append(Phase("drain", time.perf_counter() - drained, "the last batches in flight"))
        cassandra_s = time.perf_counter() - started
        self.report.phases.append(Phase(
            "cassandra", cassandra_s,
            f"{stats.rows:,} rows in {stats.partitions:,} partitions, {stats.batches:,} batches"
            f" ({stats.rows / cassandra_s:,.0f} rows/s, {stats.partitions / cassandra_s:,.0f} partitions/s,"
            f" {stats.retries} retried)"))
        await self._phase("redis", self._redis)
        return self.report

    async def _phase(self, name: str, step) -> None:
        started = time.perf_counter()
        detail = await step()
        self.report.phases.append(Phase(name, time.perf_counter() - started, detail or ""))

    async def put(self, writes: list[Write]) -> None:
        await self.writer.put(writes)

    # --- media ----------------------------------------------------------------------------------
    async def _media(self) -> str:
        w = self.world
        linker = MediaLinker(self.store, self.settings)

        def pairs() -> Iterable[tuple[str, str, bytes]]:
            for post_id, image in zip(w.post_ids, w.post_image, strict=True):
                yield from self._links("p", post_id, self.pool[image])
            for stories in self.live_stories.values():
                for story in stories:
                    yield from self._links("s", story.story_id, self.pool[story.image])

        total = (len(w.post_ids) + sum(len(s) for s in self.live_stories.values())) * len(self.pool[0].variants)
        with self._bar("media", total, position=1) as bar:
            try:
                await linker.link(pairs(), bar.update)
            finally:
                linker.close()
        self.report.media_links = linker.linked
        return f"{linker.linked:,} keys linked to a pool of {len(self.pool)} processed images ({total:,} keys in all)"

    @staticmethod
    def _links(prefix: str, object_id: int, image: PoolImage) -> Iterable[tuple[str, str, bytes]]:
        for name, (key, _, _) in image.keys_for(prefix, object_id).items():
            yield image.variants[name][0], key, image.data[name]

    # --- posts: rows, counts, timelines, likers ---------------------------------------------------
    async def _posts(self) -> str:
        w, s, p = self.world, self.s, self.world.params
        by_user_month: dict[tuple[int, int], list[int]] = defaultdict(list)
        with self._bar("posts", len(w.post_ids)) as bar:
            for post, post_id in enumerate(w.post_ids):
                author, author_id = w.post_author[post], w.user_ids[w.post_author[post]]
                image = self.pool[w.post_image[post]]
                caption = w.post_caption[post]
                likers, liked_ms = w.likers[post], w.liked_ms[post]
                live_comments = len(self.top_comments.get(post, ())) + sum(
                    len(self.replies.get(c.comment_id, ())) for c in self.top_comments.get(post, ()))
                row = [s.posts.post(post_id, author_id, caption, text.hashtags(caption), text.mentions(caption),
                                    w.post_location[post], image.filter, image.keys_for("p", post_id), image.preview,
                                    w.post_ms[post])]
                if likers:
                    row.append(s.posts.like_count(post_id, len(likers), self.read_at))
                    if len(likers) >= p.likes_per_bucket:
                        row.append(s.posts.like_bucket(post_id, len(likers) // p.likes_per_bucket))
                if live_comments:
                    row.append(s.posts.comment_count(post_id, live_comments, self.read_at))
                await self.put(row)
                if likers:  # the counted set of likers, bucket by bucket, and its index
                    index = []
                    size = p.likes_per_bucket
                    for bucket, start in enumerate(range(0, len(likers), size)):
                        members = [s.likes.likers.member(post_id, bucket, w.user_ids[u], ms)
                                   for u, ms in zip(likers[start : start + size], liked_ms[start : start + size],
                                                    strict=True)]
                        members.append(s.likes.likers.count(post_id, bucket, len(members)))
                        await self.put(members)
                        index.append(s.likes.likers.index(post_id, bucket, len(members) - 1, self.read_at))
                    await self.put(index)
                by_user_month[author, month_bucket(post_id)].append(post_id)
                bar.update()
        with self._bar("timelines", len(by_user_month)) as bar:
            for (author, month), post_ids in by_user_month.items():
                await self.put([s.posts.by_user.item(w.user_ids[author], month, post_id) for post_id in post_ids])
                bar.update()
        likes = sum(len(likers) for likers in w.likers)
        return f"{len(w.post_ids):,} posts, {likes:,} likers rows, {len(by_user_month):,} (author, month) timelines"

    # --- comments: rows, lists, counted sets ---------------------------------------------------------
    async def _comments(self) -> str:
        w, s = self.world, self.s
        post_ids = w.post_ids
        with self._bar("comments", len(self.top_comments)) as bar:
            for post, top in self.top_comments.items():
                post_id = post_ids[post]
                live: dict[int, list[int]] = defaultdict(list)  # hour -> live comments (replies included)
                listed: dict[int, list[int]] = defaultdict(list)  # hour -> top-level comments
                for comment in top:
                    replies = self.replies.get(comment.comment_id, [])
                    row = [self._comment_row(comment, post_id)]
                    if replies:
                        row.append(s.comments.reply_count(comment.comment_id, len(replies), self.read_at))
                    await self.put(row)
                    hour = hour_bucket(comment.comment_id)
                    listed[hour].append(comment.comment_id)
                    live[hour].append(comment.comment_id)
                    if replies:
                        await self._replies(comment, post_id, replies, live)
                for hour, ids in listed.items():
                    await self.put([s.comments.top_level.item(post_id, hour, cid) for cid in ids])
                await self.put([s.comments.top_level.mark(post_id, hour) for hour in listed])
                await self._counted(s.comments.live_comments, post_id, live)
                bar.update()
        return f"{len(w.comments):,} comments and replies on {len(self.top_comments):,} posts"

    def _comment_row(self, comment: Comment, post_id: int) -> Write:
        return self.s.comments.comment(comment.comment_id, post_id, comment.parent_id,
                                       self.world.user_ids[comment.author], comment.text,
                                       text.mentions(comment.text), comment.at_ms)

    async def _replies(self, parent: Comment, post_id: int, replies: list[Comment],
                       live: dict[int, list[int]]) -> None:
        s = self.s
        by_hour: dict[int, list[int]] = defaultdict(list)
        for reply in replies:
            await self.put([self._comment_row(reply, post_id)])
            hour = hour_bucket(reply.comment_id)
            by_hour[hour].append(reply.comment_id)
            live[hour].append(reply.comment_id)
        for hour, ids in by_hour.items():
            await self.put([s.comments.replies.item(parent.comment_id, hour, rid) for rid in ids])
        await self.put([s.comments.replies.mark(parent.comment_id, hour) for hour in by_hour])
        await self._counted(s.comments.live_replies, parent.comment_id, by_hour)

    async def _counted(self, counted, owner: int, members_by_bucket: dict[int, list[int]]) -> None:
        """A counted set written whole: each bucket's members with its static count, then the index."""
        for bucket, members in members_by_bucket.items():
            await self.put([*(counted.member(owner, bucket, m) for m in members),
                            counted.count(owner, bucket, len(members))])
        await self.put([counted.index(owner, bucket, len(members), self.read_at)
                        for bucket, members in members_by_bucket.items()])

    # --- hashtags ------------------------------------------------------------------------------------
    async def _hashtags(self) -> str:
        w, s = self.world, self.s
        by_hour: dict[tuple[int, int], list[int]] = defaultdict(list)
        for post, tags in enumerate(w.post_tags):
            for tag in tags:
                by_hour[tag, hour_bucket(w.post_ids[post])].append(post)
        hours_of: dict[int, dict[int, int]] = defaultdict(dict)
        with self._bar("hashtags", len(by_hour)) as bar:
            for (tag, hour), posts in by_hour.items():
                name = w.tag_name(tag)
                await self.put([s.posts.by_hashtag.item(name, hour, w.post_ids[post], w.user_ids[w.post_author[post]])
                                for post in posts])
                hours_of[tag][hour] = len(posts)
                bar.update()
        self.tag_counts: dict[str, int] = {}
        for tag, hours in hours_of.items():
            name = w.tag_name(tag)
            writes = []
            for hour, count in hours.items():
                writes += [s.posts.by_hashtag.mark(name, hour),
                           s.posts.hashtag_post_counts.bucket_count(name, hour, count)]
            await self.put(writes)
            self.tag_counts[name] = sum(hours.values())
            await self.put([s.posts.hashtag_post_counts.total(name, self.tag_counts[name], self.read_at)])
        return f"{len(hours_of):,} tags in {len(by_hour):,} (tag, hour) partitions"

    # --- likes edges and affinity ----------------------------------------------------------------------
    async def _engagement(self) -> str:
        w, s = self.world, self.s
        with self._bar("likes", w.params.users) as bar:
            for user, likes in enumerate(self.likes_by_user):
                by_month: dict[int, list[Write]] = defaultdict(list)
                for post, ms, bucket in likes:
                    post_id = w.post_ids[post]
                    by_month[month_bucket(post_id)].append(s.likes.edge(w.user_ids[user], post_id, ms, bucket))
                for writes in by_month.values():
                    await self.put(writes)
                bar.update()
        with self._bar("affinity", len(self.affinity)) as bar:
            for (user, author), posts in self.affinity.items():
                user_id, author_id = w.user_ids[user], w.user_ids[author]
                writes = []
                for post, (liked, commented) in posts.items():
                    if liked:
                        writes.append(s.affinity.liked(user_id, author_id, w.post_ids[post]))
                    if commented:
                        writes.append(s.affinity.commented(user_id, author_id, w.post_ids[post]))
                await self.put(writes)
                bar.update()
        return f"{sum(len(x) for x in self.likes_by_user):,} like edges, {len(self.affinity):,} reader-author pairs"

    # --- users: everything partitioned by one user id ------------------------------------------------------
    async def _users(self) -> str:
        w, s, p = self.world, self.s, self.world.params
        feed_rows = tray_rows = 0
        with self._bar("users", p.users) as bar:
            for user in range(p.users):
                user_id = w.user_ids[user]
                await self._account(user, user_id)
                await self._graph(user, user_id)
                feed_rows += await self._feed(user, user_id)
                tray_rows += await self._tray(user, user_id)
                interactions = [
                    s.affinity.interactions(user_id, w.user_ids[author],
                                            sum(a + c for a, c in self.affinity[user, author].values()), self.read_at)
                    for author in self.authors_of.get(user, ())
                ]
                await self.put(interactions)
                bar.update()
        self.report.feed_rows, self.report.tray_rows = feed_rows, tray_rows
        active = sum(w.active)
        return (f"{p.users:,} accounts, {sum(len(f) for f in w.following):,} follows,"
                f" {feed_rows:,} feed rows for {active:,} active readers, {tray_rows:,} tray entries")

    async def _account(self, user: int, user_id: int) -> None:
        w, s = self.world, self.s
        posts = w.posts_by_author[user]
        row = [s.users.user(user_id, w.usernames[user], w.display_names[user], self.password_hash, w.user_ms[user]),
               s.users.following_count(user_id, len(w.following[user]), self.read_at)]
        followers = w.follower_count(user)
        if followers:
            row.append(s.follows.follower_counts.total(user_id, followers, self.read_at))
        if posts:
            row.append(s.posts.user_post_counts.total(user_id, len(posts), self.read_at))
        open_bucket = w.open_follower_bucket(user)
        if open_bucket is not None:
            row.append(s.users.follower_bucket(user_id, open_bucket))
        await self.put(row)
        await self.put([s.users.username(w.usernames[user], user_id)])
        if posts:  # user_post_buckets: the months posted in, with their counts
            months: dict[int, int] = defaultdict(int)
            for post in posts:
                months[month_bucket(w.post_ids[post])] += 1
            writes = []
            for month, count in months.items():
                writes += [s.posts.by_user.mark(user_id, month),
                           s.posts.user_post_counts.bucket_count(user_id, month, count)]
            await self.put(writes)
        if self.celebrity[user]:
            await self.put([s.feed.celebrity(user_id, w.anchor_ms)])

    async def _graph(self, user: int, user_id: int) -> None:
        """`following` (truth), the `followers` mirror and its bucket counts, the followed celebrities."""
        w, s = self.world, self.s
        ids = w.user_ids
        edges = []
        celebrities = []
        big = self.buckets_of_big
        for followee, made in zip(w.following[user], w.following_ms[user], strict=True):
            bucket = big[followee][user] if followee in big else 0
            edges.append(s.follows.edge(user_id, ids[followee], made, bucket))
            if self.celebrity[followee]:
                celebrities.append(s.feed.followed_celebrity(user_id, ids[followee]))
        await self.put(edges)
        if celebrities:
            await self.put(celebrities)
        buckets = w.follower_buckets(user)
        made = dict(zip(w.followers[user], w.followers_ms[user], strict=True)) if len(buckets) > 1 else None
        for bucket, followers in enumerate(buckets):
            if made is None:  # one bucket: the followers in their own order, with their times
                mirror = [s.follows.mirror(user_id, 0, ids[f], ms)
                          for f, ms in zip(w.followers[user], w.followers_ms[user], strict=True)]
            else:
                mirror = [s.follows.mirror(user_id, bucket, ids[f], made[f]) for f in followers]
            await self.put(mirror)
        if buckets:
            marks = []
            for bucket, followers in enumerate(buckets):
                marks += [s.follows.bucket(user_id, bucket),
                          s.follows.follower_counts.bucket_count(user_id, bucket, len(followers))]
            await self.put(marks)

    def expected_feed(self, user: int) -> list[tuple[int, int]]:
        """What fan-out holds for an active reader: (post id, author id) of the posts of the non-celebrities
        they follow that are still inside the feed horizon, newest first, at most feed_max_entries."""
        w = self.world
        horizon = self.feeds.horizon_id()
        entries = [(w.post_ids[post], w.user_ids[followee])
                   for followee in w.following[user] if not self.celebrity[followee]
                   for post in w.posts_by_author[followee] if w.post_ids[post] >= horizon]
        entries.sort(reverse=True)
        return entries[: self.feeds.max_entries]

    async def _feed(self, user: int, user_id: int) -> int:
        if not self.world.active[user]:
            return 0  # fan-out skips readers who are away; their feed is rebuilt when they return
        rows = []
        for post_id, author_id in self.expected_feed(user):
            ttl = self.feeds.ttl_for(post_id)
            if ttl > 0:
                rows.append(self.s.feed.item(user_id, post_id, author_id, ttl))
        await self.put(rows)
        return len(rows)

    async def _tray(self, user: int, user_id: int) -> int:
        w, s = self.world, self.s
        rows = []
        for followee in w.following[user]:
            if self.celebrity[followee]:
                continue  # pulled at read time
            for story in self.live_stories.get(followee, ()):
                ttl = row_ttl_s(at(story.expires_ms), self.now_s)
                rows.append(s.stories.tray(user_id, w.user_ids[followee], w.usernames[followee], story.story_id,
                                           story.expires_ms, ttl))
        await self.put(rows)
        return len(rows)

    # --- stories -----------------------------------------------------------------------------------------
    def _story_row(self, story, author_id: int) -> Write:
        image = self.pool[story.image]
        remaining = row_ttl_s(at(story.expires_ms), self.now_s)
        return self.s.stories.story(author_id, story.story_id, image.keys_for("s", story.story_id), image.preview,
                                    story.at_ms, story.expires_ms, remaining)

    async def _stories(self) -> str:
        w, s = self.world, self.s
        by_place: dict[tuple[int, int], list[Write]] = defaultdict(list)
        live = [story for stories in self.live_stories.values() for story in stories]
        for author, stories in self.live_stories.items():  # the author's partition: their live stories
            await self.put([self._story_row(story, w.user_ids[author]) for story in stories])
        with self._bar("stories", len(live)) as bar:
            for story in live:
                ttl = row_ttl_s(at(story.expires_ms), self.now_s)
                await self.put([s.stories.by_id(story.story_id, w.user_ids[story.author], story.expires_ms, ttl)])
                keys = [key for key, _, _ in self.pool[story.image].keys_for("s", story.story_id).values()]
                place, write = s.story_media.record(story.story_id, at(story.expires_ms), keys, ttl)
                by_place[place].append(write)
                bar.update()
        for writes in by_place.values():
            await self.put(writes)
        return f"{len(live):,} live stories of {len(self.live_stories):,} authors"

    # --- sessions --------------------------------------------------------------------------------------
    async def _sessions(self) -> str:
        w = self.world
        now = datetime.now(UTC)
        reused = len(self.report.tokens)
        with self._bar("sessions", w.params.users - reused) as bar:
            for user in range(w.params.users):
                if user in self.report.tokens:
                    continue
                token, write = self.s.sessions.create_write(w.user_ids[user], now)
                self.report.tokens[user] = token
                await self.put([write])
                bar.update()
        return f"{w.params.users - reused:,} sessions created, {reused:,} reused from the last run"

    # --- Redis -------------------------------------------------------------------------------------------
    async def _redis(self) -> str:
        w = self.world
        active_ttl = self.settings.feed_inactive_after_days * 86_400
        now_ms = int(time.time() * 1000)
        readers = [u for u in range(w.params.users) if w.active[u]]
        marked = 0
        for start in range(0, len(readers), REDIS_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for user in readers[start : start + REDIS_CHUNK]:
                    ttl = active_ttl - (now_ms - w.last_read_ms[user]) // 1000
                    if ttl > 0:
                        pipe.set(self.cache.active_key(w.user_ids[user]), b"1", ex=ttl)
                        marked += 1
                await pipe.execute()
            await self.cache.invalidate(w.user_ids[u] for u in readers[start : start + REDIS_CHUNK])
        self.report.search = await self._search()
        self.report.trending = await self._trending() if self.with_trending else "not seeded (--no-trending)"
        return f"{marked:,} active readers marked; search: {self.report.search}; trending: {self.report.trending}"

    async def _search(self) -> str:
        w = self.world
        index = self.caches.search
        if not await index.is_ready():  # lost or never built: what the workers' repair does, now
            stats = await rebuild(self.s.users, self.s.hashtags, index)
            return f"index rebuilt from Cassandra ({stats.users:,} users, {stats.hashtags:,} tags)"
        read_at = now_us()
        users = [SearchEntry(w.usernames[u], w.follower_count(u), read_at,
                             user_payload(w.user_ids[u], w.display_names[u])) for u in range(w.params.users)]
        for start in range(0, len(users), SEARCH_CHUNK):
            await index.upsert(USERS, users[start : start + SEARCH_CHUNK])
        tags = [SearchEntry(name, count, read_at) for name, count in self.tag_counts.items()]
        for start in range(0, len(tags), SEARCH_CHUNK):
            await index.upsert(HASHTAGS, tags[start : start + SEARCH_CHUNK])
        return f"{len(users):,} users and {len(tags):,} tags written"

    async def _trending(self) -> str:
        """The trending agent's cells (streams/trending.py) for the posts still inside trending_ttl_days, each
        expiring when it would have (trending_ttl_days after its slot). The rankings are the leader timer's:
        a stream worker on this keyspace computes them within trending_refresh_s of starting."""
        w = self.world
        ttl_s = self.settings.trending_ttl_days * 86_400
        ns = self.settings.cassandra_keyspace
        now_ms = int(time.time() * 1000)
        by_slot: dict[int, list[tuple[str, int, int, int]]] = defaultdict(list)
        for post, tags in enumerate(w.post_tags):
            ms = w.post_ms[post]
            if tags and now_ms - ms < ttl_s * 1000:
                slot, author_id = slot_of(ms), w.user_ids[w.post_author[post]]
                by_slot[slot] += [(w.tag_name(t), slot, author_id, w.post_ids[post]) for t in tags]
        for slot, added in by_slot.items():
            remaining = ttl_s - (now_ms - slot * SLOT_MS) // 1000
            if remaining > 0:
                await TrendingCells(self.redis, ns, remaining).apply(added, [])
        return f"{sum(len(a) for a in by_slot.values()):,} tag uses in {len(by_slot):,} 5-minute slots"
