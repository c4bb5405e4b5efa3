"""`photos-seed --verify`: sampled counts, feeds and trays checked against the truth tables.

Only reads. Every derived value of a sample is recomputed from the rows it derives from, the way its
worker computes it, and compared with what is stored:

- users (user 0, the most followed, and a random sample): `following_count` = COUNT(following);
  `follower_count` = the sum of `follower_buckets` = the sum of COUNT(followers) per bucket;
  `follower_bucket` is raised past every full bucket; `post_count` = the sum of `user_post_buckets` =
  the sum of COUNT(posts_by_user); the `celebrities` mark agrees with the follower count; the mirror agrees
  with `following` both ways (a sample of edges); the search index shows the follower count; `affinity`
  = the reader's `affinity_posts`;
- posts (the sampled users' posts, the most liked, a random sample): `like_count` = the sum of
  `post_like_buckets` = the buckets' static counts = COUNT(post_likers), and the likers hold like edges
  naming that bucket; `comment_count` = the live comments listed in `comments_by_post` and
  `replies_by_comment` = the live-comment counted set; each comment's `reply_count` likewise; every
  media key of the post is a stored JPEG;
- hashtags (of the sampled posts): `post_count` = the sum of `hashtag_buckets` = COUNT(posts_by_hashtag);
- active readers (marked in Redis): `feed_items` holds exactly what fan-out of their followees' posts
  holds (non-celebrities, inside the horizon, newest feed_max_entries), each row's TTL is the post's
  time left in the horizon; `followed_celebrities` = the celebrities they follow; `story_tray` = the live
  stories of the non-celebrities they follow.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.ids import ID_EPOCH_MS, first_id_at, id_millis, month_bucket
from app.media.store import MediaStore
from app.search.query import USERS
from app.settings import Settings
from app.storage.cassandra import CassandraSession
from app.storage.feed_cache import FeedCache
from app.storage.search_index import SearchIndex
from app.storage.stories import is_live
from loadtest.seeding.model import World

CONCURRENCY = 16
EDGE_SAMPLE = 20
TTL_SLACK_S = 5
MAX_REPORTED = 20


@dataclass
class Checks:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[str] = field(default_factory=list)

    def expect(self, kind: str, ok: bool, message: str) -> None:
        self.counts[kind] += 1
        if not ok:
            self.failures.append(message)


class Queries:
    """The verifier's reads, prepared once."""

    async def prepare(self, cass: CassandraSession) -> Queries:
        self.cass = cass
        p = cass.prepare
        self.user = await p("SELECT username, follower_count, following_count, post_count, follower_bucket"
                            " FROM users WHERE user_id = ?")
        self.count_following = await p("SELECT COUNT(*) AS n FROM following WHERE user_id = ?")
        self.following = await p("SELECT followee_id, follower_bucket FROM following WHERE user_id = ?")
        self.edge = await p("SELECT follower_bucket FROM following WHERE user_id = ? AND followee_id = ?")
        self.follower_buckets = await p("SELECT bucket, follower_count FROM follower_buckets WHERE user_id = ?")
        self.count_followers = await p("SELECT COUNT(*) AS n FROM followers WHERE user_id = ? AND bucket = ?")
        self.followers = await p("SELECT follower_id FROM followers WHERE user_id = ? AND bucket = ? LIMIT ?")
        self.mirror = await p("SELECT follower_id FROM followers WHERE user_id = ? AND bucket = ? AND follower_id = ?")
        self.post_buckets = await p("SELECT bucket, post_count FROM user_post_buckets WHERE author_id = ?")
        self.count_user_posts = await p("SELECT COUNT(*) AS n FROM posts_by_user WHERE author_id = ? AND bucket = ?")
        self.user_posts = await p("SELECT post_id FROM posts_by_user WHERE author_id = ? AND bucket = ?")
        self.celebrity = await p("SELECT user_id FROM celebrities WHERE user_id = ?")
        self.followed_celebrities = await p("SELECT celebrity_id FROM followed_celebrities WHERE user_id = ?")
        self.feed = await p("SELECT post_id, author_id, TTL(author_id) AS ttl FROM feed_items WHERE user_id = ?")
        self.post = await p("SELECT author_id, hashtags, media, like_count, comment_count, like_bucket"
                            " FROM posts WHERE post_id = ?")
        self.like_buckets = await p("SELECT bucket, like_count FROM post_like_buckets WHERE post_id = ?")
        self.count_likers = await p("SELECT COUNT(*) AS n FROM post_likers WHERE post_id = ? AND bucket = ?")
        self.likers_static = await p("SELECT like_count FROM post_likers WHERE post_id = ? AND bucket = ? LIMIT 1")
        self.likers = await p("SELECT user_id FROM post_likers WHERE post_id = ? AND bucket = ? LIMIT ?")
        self.like_edge = await p("SELECT bucket FROM likes WHERE user_id = ? AND month = ? AND post_id = ?")
        self.comment_buckets = await p("SELECT bucket FROM post_comment_buckets WHERE post_id = ?")
        self.comments_by_post = await p("SELECT comment_id FROM comments_by_post WHERE post_id = ? AND bucket = ?")
        self.comment = await p("SELECT post_id, parent_id, deleted, reply_count FROM comments WHERE comment_id = ?")
        self.reply_buckets = await p("SELECT bucket FROM comment_reply_buckets WHERE comment_id = ?")
        self.replies = await p("SELECT reply_id FROM replies_by_comment WHERE comment_id = ? AND bucket = ?")
        self.live_comment_index = await p(
            "SELECT bucket, comment_count FROM post_live_comment_buckets WHERE post_id = ?")
        self.live_comments = await p(
            "SELECT comment_id, comment_count FROM post_live_comments WHERE post_id = ? AND bucket = ?")
        self.live_reply_index = await p(
            "SELECT bucket, reply_count FROM comment_live_reply_buckets WHERE comment_id = ?")
        self.live_replies = await p(
            "SELECT reply_id, reply_count FROM comment_live_replies WHERE comment_id = ? AND bucket = ?")
        self.tag = await p("SELECT post_count FROM hashtags WHERE tag = ?")
        self.tag_buckets = await p("SELECT bucket, post_count FROM hashtag_buckets WHERE tag = ?")
        self.count_tag_posts = await p("SELECT COUNT(*) AS n FROM posts_by_hashtag WHERE tag = ? AND bucket = ?")
        self.stories = await p("SELECT story_id, expires_at FROM stories WHERE author_id = ?")
        self.tray = await p("SELECT author_id, username, story_ids FROM story_tray WHERE reader_id = ?")
        self.affinity = await p("SELECT author_id, interactions FROM affinity WHERE user_id = ?")
        self.affinity_posts = await p("SELECT liked, commented FROM affinity_posts WHERE user_id = ? AND author_id = ?")
        return self

    async def rows(self, statement, *params) -> list:
        return await self.cass.all_rows(statement, params, fetch_size=5000)

    async def one(self, statement, *params):
        return await self.cass.one(statement, params)

    async def count(self, statement, *params) -> int:
        return (await self.cass.one(statement, params)).n


class Verifier:
    def __init__(self, settings: Settings, cass: CassandraSession, redis: Redis, world: World, store: MediaStore,
                 sample: int) -> None:
        self.settings = settings
        self.redis = redis
        self.world = world
        self.store = store
        self.sample = sample
        self.cass = cass
        self.checks = Checks()
        self.cache = FeedCache.for_settings(settings, redis)
        self.index = SearchIndex(redis, settings.cassandra_keyspace)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.name_of = {}

    async def run(self) -> Checks:
        self.q = await Queries().prepare(self.cass)
        w = self.world
        rng = random.Random(f"photos-seed-verify:{w.params.seed}:{time.time_ns()}")
        n = w.params.users
        self.name_of = {w.user_ids[u]: w.usernames[u] for u in range(n)}
        by_followers = sorted(range(n), key=lambda u: -w.follower_count(u))
        users = sorted({0, *by_followers[:5], *rng.sample(range(n), min(self.sample, n))})
        await self._each(users, self._user)
        posts = {post for u in users for post in w.posts_by_author[u][-3:]}
        posts |= set(sorted(range(len(w.post_ids)), key=lambda i: -len(w.likers[i]))[:5])
        posts |= set(rng.sample(range(len(w.post_ids)), min(self.sample, len(w.post_ids))))
        await self._each(sorted(posts), self._post)
        tags = sorted({w.tag_name(t) for post in posts for t in w.post_tags[post]})
        await self._each(tags, self._tag)
        candidates = [u for u in rng.sample(range(n), n) if w.active[u]][: max(20, self.sample // 10)]
        marked = await self.redis.mget([self.cache.active_key(w.user_ids[u]) for u in candidates]) if candidates else []
        readers = [u for u, mark in zip(candidates, marked, strict=True) if mark is not None]
        self.checks.counts["active readers found in Redis"] += len(readers)
        self.checks.expect("active readers", bool(readers) or not candidates,
                           "no seeded active reader is marked active in Redis (fan-out would push to none)")
        await self._each(readers, self._reader)
        tray_readers = sorted({0, *rng.sample(range(n), min(max(20, self.sample // 10), n))})
        await self._each(tray_readers, self._tray)
        return self.checks

    async def _each(self, items, check) -> None:
        async def run(item) -> None:
            async with self._slots:
                await check(item)

        await asyncio.gather(*(run(item) for item in items))

    def _who(self, user_id: int) -> str:
        return f"user {user_id} ({self.name_of.get(user_id, '?')})"

    # --- users ---------------------------------------------------------------------------------------
    async def _user(self, user: int) -> None:
        q, c, p = self.q, self.checks, self.world.params
        user_id = self.world.user_ids[user]
        who = self._who(user_id)
        row = await q.one(q.user, user_id)
        if row is None:
            c.expect("users", False, f"{who}: no users row")
            return
        following = await q.count(q.count_following, user_id)
        c.expect("following_count", (row.following_count or 0) == following,
                 f"{who}: users.following_count = {row.following_count}, COUNT(following) = {following}")
        buckets = {r.bucket: r.follower_count or 0 for r in await q.rows(q.follower_buckets, user_id)}
        counted = {b: await q.count(q.count_followers, user_id, b) for b in buckets}
        stored = row.follower_count or 0
        c.expect("follower_count", stored == sum(buckets.values()) == sum(counted.values()),
                 f"{who}: users.follower_count = {row.follower_count}, sum of follower_buckets ="
                         f" {sum(buckets.values())}, sum of COUNT(followers) = {sum(counted.values())}")
        c.expect("follower_buckets", buckets == counted,
                 f"{who}: follower_buckets {buckets} but COUNT(followers) per bucket {counted}")
        full = [b for b, n in counted.items() if n >= p.followers_per_bucket]
        expected_open = max(full) + 1 if full else None
        c.expect("follower_bucket", row.follower_bucket == expected_open or (not full and not row.follower_bucket),
                 f"{who}: users.follower_bucket = {row.follower_bucket}, full buckets {full}")
        is_celebrity = await q.one(q.celebrity, user_id) is not None
        c.expect("celebrity mark", is_celebrity == (stored >= p.celebrity_followers),
                 f"{who}: {stored} followers, celebrity mark {is_celebrity}"
                         f" (threshold {p.celebrity_followers})")
        post_buckets = {r.bucket: r.post_count or 0 for r in await q.rows(q.post_buckets, user_id)}
        post_counted = {b: await q.count(q.count_user_posts, user_id, b) for b in post_buckets}
        c.expect("post_count", (row.post_count or 0) == sum(post_buckets.values()) == sum(post_counted.values()),
                 f"{who}: users.post_count = {row.post_count}, sum of user_post_buckets ="
                         f" {sum(post_buckets.values())}, sum of COUNT(posts_by_user) = {sum(post_counted.values())}")
        await self._mirror(user_id, buckets, who)
        await self._search(user_id, row.username, stored, who)
        await self._affinity(user_id, who)

    async def _mirror(self, user_id: int, buckets: dict[int, int], who: str) -> None:
        """A sample of the followers mirror has its `following` edge, naming that bucket; a sample of the
        user's edges has its mirror row."""
        q, c = self.q, self.checks
        for bucket in buckets:
            for r in await q.rows(q.followers, user_id, bucket, EDGE_SAMPLE):
                edge = await q.one(q.edge, r.follower_id, user_id)
                c.expect("mirror -> following", edge is not None and edge.follower_bucket == bucket,
                         f"{who}: follower {r.follower_id} in bucket {bucket} has edge {edge}")
        for r in (await q.rows(q.following, user_id))[:EDGE_SAMPLE]:
            mirrored = await q.one(q.mirror, r.followee_id, r.follower_bucket, user_id)
            c.expect("following -> mirror", mirrored is not None,
                     f"{who}: follows {r.followee_id} (bucket {r.follower_bucket}) without a mirror row")

    async def _search(self, user_id: int, username: str, followers: int, who: str) -> None:
        page = await self.index.search(USERS, username, 1, None)
        found = page.matches[0] if page.matches and page.matches[0].name == username else None
        self.checks.expect("search index", found is not None and found.popularity == followers,
                           f"{who}: search index shows {found} for {followers} followers")

    async def _affinity(self, user_id: int, who: str) -> None:
        q, c = self.q, self.checks
        for r in await q.rows(q.affinity, user_id):
            rows = await q.rows(q.affinity_posts, user_id, r.author_id)
            expected = sum(bool(x.liked) + bool(x.commented) for x in rows)
            c.expect("affinity", (r.interactions or 0) == expected,
                     f"{who}: affinity with {r.author_id} = {r.interactions},"
                                                    f" affinity_posts say {expected}")

    # --- posts ---------------------------------------------------------------------------------------
    async def _post(self, post: int) -> None:
        q, c = self.q, self.checks
        post_id = self.world.post_ids[post]
        row = await q.one(q.post, post_id)
        if row is None:
            c.expect("posts", False, f"post {post_id}: no posts row")
            return
        index = {r.bucket: r.like_count or 0 for r in await q.rows(q.like_buckets, post_id)}
        counted, static = {}, {}
        for bucket in index:
            counted[bucket] = await q.count(q.count_likers, post_id, bucket)
            static_row = await q.one(q.likers_static, post_id, bucket)
            static[bucket] = static_row.like_count if static_row else None
            for r in await q.rows(q.likers, post_id, bucket, EDGE_SAMPLE):
                edge = await q.one(q.like_edge, r.user_id, month_bucket(post_id), post_id)
                c.expect("likers -> likes", edge is not None and edge.bucket == bucket,
                         f"post {post_id}: liker {r.user_id} in bucket {bucket}, edge {edge}")
        c.expect("like_count", (row.like_count or 0) == sum(index.values()) and index == counted == static,
                 f"post {post_id}: posts.like_count = {row.like_count}, post_like_buckets {index},"
                         f" static counts {static}, COUNT(post_likers) {counted}")
        full = [b for b, n in counted.items() if n >= self.world.params.likes_per_bucket]
        c.expect("like_bucket", (row.like_bucket or 0) == (max(full) + 1 if full else 0),
                 f"post {post_id}: posts.like_bucket = {row.like_bucket}, full buckets {full}")
        await self._comments(post_id, row.comment_count or 0)
        for name, variant in (row.media or {}).items():
            data = await self.store.get(variant.key)
            c.expect("media", data is not None and data[:3] == b"\xff\xd8\xff",
                     f"post {post_id}: {name} media {variant.key} is not a stored"
                                                        " JPEG")

    async def _comments(self, post_id: int, stored: int) -> None:
        q, c = self.q, self.checks
        live = 0
        for b in await q.rows(q.comment_buckets, post_id):
            for r in await q.rows(q.comments_by_post, post_id, b.bucket):
                comment = await q.one(q.comment, r.comment_id)
                if comment is None or comment.post_id is None:
                    continue
                live += 0 if comment.deleted else 1
                replies = 0
                for rb in await q.rows(q.reply_buckets, r.comment_id):
                    for reply in await q.rows(q.replies, r.comment_id, rb.bucket):
                        reply_row = await q.one(q.comment, reply.reply_id)
                        replies += 1 if reply_row is not None and not reply_row.deleted else 0
                live += replies
                counted_replies = await self._counted_set(q.live_reply_index, q.live_replies, r.comment_id)
                c.expect("reply_count", (comment.reply_count or 0) == replies == counted_replies,
                         f"comment {r.comment_id}: reply_count = {comment.reply_count}, live replies listed {replies},"
                         f" counted set {counted_replies}")
        counted = await self._counted_set(q.live_comment_index, q.live_comments, post_id)
        c.expect("comment_count", stored == live == counted,
                 f"post {post_id}: comment_count = {stored}, live comments listed {live},"
                 f" counted set {counted}")

    async def _counted_set(self, index_statement, members_statement, owner: int) -> int | None:
        """The counted set's total when its index, static counts and members agree; None otherwise."""
        q = self.q
        total = 0
        for r in await q.rows(index_statement, owner):
            members = await q.rows(members_statement, owner, r.bucket)
            indexed = r[1] or 0
            static = members[0][1] if members else None
            if not (indexed == len(members) == (static or 0)):
                self.checks.failures.append(f"counted set of {owner}, bucket {r.bucket}: index {indexed},"
                                            f" static count {static}, {len(members)} members")
                return None
            total += indexed
        return total

    async def _tag(self, tag: str) -> None:
        q, c = self.q, self.checks
        row = await q.one(q.tag, tag)
        buckets = {r.bucket: r.post_count or 0 for r in await q.rows(q.tag_buckets, tag)}
        counted = {b: await q.count(q.count_tag_posts, tag, b) for b in buckets}
        stored = row.post_count if row else 0
        c.expect("hashtag post_count", stored == sum(buckets.values()) and buckets == counted,
                 f"#{tag}: hashtags.post_count = {stored}, hashtag_buckets sum {sum(buckets.values())},"
                         f" COUNT(posts_by_hashtag) sum {sum(counted.values())}")

    # --- feeds and trays -------------------------------------------------------------------------------
    async def _followees(self, user_id: int) -> tuple[list[int], set[int]]:
        q = self.q
        followees = [r.followee_id for r in await q.rows(q.following, user_id)]
        marks = await asyncio.gather(*(q.one(q.celebrity, f) for f in followees))
        return followees, {f for f, mark in zip(followees, marks, strict=True) if mark is not None}

    async def _reader(self, user: int) -> None:
        q, c = self.q, self.checks
        user_id = self.world.user_ids[user]
        who = self._who(user_id)
        followees, celebrities = await self._followees(user_id)
        now_ms = int(time.time() * 1000)
        ttl_full = self.settings.feed_ttl_days * 86_400
        horizon = first_id_at(now_ms - ttl_full * 1000)
        expected: list[tuple[int, int]] = []
        for followee in followees:
            if followee in celebrities:
                continue
            for b in await q.rows(q.post_buckets, followee):
                expected += [(r.post_id, followee) for r in await q.rows(q.user_posts, followee, b.bucket)
                             if r.post_id >= horizon]
        expected = sorted(expected, reverse=True)[: self.settings.feed_max_entries]
        rows = await q.rows(q.feed, user_id)
        stored = [(r.post_id, r.author_id) for r in rows]
        c.expect("feed_items", stored == expected,
                 f"{who}: feed_items holds {len(stored)} entries, fan-out of the followees' posts gives"
                         f" {len(expected)}; first difference: {_first_difference(stored, expected)}")
        for r in rows[:50]:
            left = ttl_full - (now_ms - id_millis(r.post_id) - ID_EPOCH_MS) / 1000
            c.expect("feed TTL", abs((r.ttl or 0) - left) <= TTL_SLACK_S,
                     f"{who}: feed row {r.post_id} has TTL {r.ttl}, {left:.0f} s left")
        pulled = {r.celebrity_id for r in await q.rows(q.followed_celebrities, user_id)}
        c.expect("followed_celebrities", pulled == celebrities,
                 f"{who}: followed_celebrities {sorted(pulled)}, celebrities followed {sorted(celebrities)}")

    async def _tray(self, user: int) -> None:
        q, c = self.q, self.checks
        user_id = self.world.user_ids[user]
        who = self._who(user_id)
        followees, celebrities = await self._followees(user_id)
        expected: dict[int, set[int]] = {}
        for followee in followees:
            if followee in celebrities:
                continue
            live = {r.story_id for r in await q.rows(q.stories, followee) if r.expires_at and is_live(r.expires_at)}
            if live:
                expected[followee] = live
        stored: dict[int, set[int]] = {}
        for r in await q.rows(q.tray, user_id):
            live = {sid for sid, expires in (r.story_ids or {}).items() if is_live(expires)}
            if live:
                stored[r.author_id] = live
                c.expect("tray username", r.username == self.name_of.get(r.author_id, r.username),
                         f"{who}: tray row of {r.author_id} names {r.username}")
        c.expect("story_tray", stored == expected,
                 f"{who}: story_tray has live stories of {len(stored)} authors, the followed"
                         f" non-celebrities have {len(expected)}")


def _first_difference(stored: list, expected: list) -> str:
    for i, (a, b) in enumerate(zip(stored, expected, strict=False)):
        if a != b:
            return f"at {i}: stored {a}, expected {b}"
    return f"stored {len(stored)} rows, expected {len(expected)}"


def summary(checks: Checks) -> list[str]:
    return [f"  {kind:<32} {count:>7,}" for kind, count in sorted(checks.counts.items())]
