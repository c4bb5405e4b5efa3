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

from app.ids import ID_EPOCH_MS, first_id_at, id_millis
from app.media.store import MediaStore
from app.search.query import USERS
from app.settings import Settings
from app.storage.counted_set import CountedSet
from app.storage.paging import LATEST_BUCKET, NO_UPPER_BOUND
from app.storage.stories import is_live
from app.storage.timelines import BucketedTimeline
from app.wiring import Caches, Storage
from loadtest.seeding.model import World

CONCURRENCY = 16
EDGE_SAMPLE = 20
TTL_SLACK_S = 5
MAX_REPORTED = 20
TIMELINE_PAGE = 1000


@dataclass
class Checks:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[str] = field(default_factory=list)

    def expect(self, kind: str, ok: bool, message: str) -> None:
        self.counts[kind] += 1
        if not ok:
            self.failures.append(message)


async def every_item(timeline: BucketedTimeline, key: int | str) -> list[int]:
    """Every id of a bucketed timeline (all its indexed buckets), paged newest first as the API pages it."""
    ids: list[int] = []
    bucket, before = LATEST_BUCKET, NO_UPPER_BOUND
    while True:
        page, last_bucket = await timeline.page(key, bucket, before, TIMELINE_PAGE)
        ids += page
        if len(page) < TIMELINE_PAGE:
            return ids
        bucket, before = last_bucket, page[-1]


class Verifier:
    """Reads only, and only through the table owners (app/storage/)."""

    def __init__(self, settings: Settings, storage: Storage, redis: Redis, world: World, store: MediaStore,
                 sample: int) -> None:
        self.settings = settings
        self.redis = redis
        self.world = world
        self.store = store
        self.sample = sample
        self.s = storage
        self.checks = Checks()
        caches = Caches.for_settings(settings, redis)
        self.cache = caches.feed
        self.index = caches.search
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.name_of = {}

    async def run(self) -> Checks:
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
        s, c, p = self.s, self.checks, self.world.params
        user_id = self.world.user_ids[user]
        who = self._who(user_id)
        row = await s.users.get(user_id)
        if row is None:
            c.expect("users", False, f"{who}: no users row")
            return
        following = await s.follows.count_following(user_id)
        c.expect("following_count", (row.following_count or 0) == following,
                 f"{who}: users.following_count = {row.following_count}, COUNT(following) = {following}")
        followers = s.follows.follower_counts
        buckets = await followers.buckets(user_id)
        counted = {b: await followers.count_bucket(user_id, b) for b in buckets}
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
        is_celebrity = await s.feed.is_celebrity(user_id)
        c.expect("celebrity mark", is_celebrity == (stored >= p.celebrity_followers),
                 f"{who}: {stored} followers, celebrity mark {is_celebrity}"
                         f" (threshold {p.celebrity_followers})")
        posts = s.posts.user_post_counts
        post_buckets = await posts.buckets(user_id)
        post_counted = {b: await posts.count_bucket(user_id, b) for b in post_buckets}
        c.expect("post_count", (row.post_count or 0) == sum(post_buckets.values()) == sum(post_counted.values()),
                 f"{who}: users.post_count = {row.post_count}, sum of user_post_buckets ="
                         f" {sum(post_buckets.values())}, sum of COUNT(posts_by_user) = {sum(post_counted.values())}")
        await self._mirror(user_id, buckets, who)
        await self._search(user_id, row.username, stored, who)
        await self._affinity(user_id, who)

    async def _mirror(self, user_id: int, buckets: dict[int, int], who: str) -> None:
        """A sample of the followers mirror has its `following` edge, naming that bucket; a sample of the
        user's edges has its mirror row."""
        follows, c = self.s.follows, self.checks
        for bucket in buckets:
            for follower_id in await follows.followers_in_bucket(user_id, bucket, EDGE_SAMPLE):
                edge = await follows.edge(follower_id, user_id)
                c.expect("mirror -> following", edge is not None and edge.follower_bucket == bucket,
                         f"{who}: follower {follower_id} in bucket {bucket} has edge {edge}")
        for followee_id in (await follows.all_following(user_id))[:EDGE_SAMPLE]:
            edge = await follows.edge(user_id, followee_id)
            bucket = edge.follower_bucket if edge is not None else None
            mirrored = bucket is not None and await follows.is_mirrored(followee_id, bucket, user_id)
            c.expect("following -> mirror", mirrored,
                     f"{who}: follows {followee_id} (bucket {bucket}) without a mirror row")

    async def _search(self, user_id: int, username: str, followers: int, who: str) -> None:
        page = await self.index.search(USERS, username, 1, None)
        found = page.matches[0] if page.matches and page.matches[0].name == username else None
        self.checks.expect("search index", found is not None and found.popularity == followers,
                           f"{who}: search index shows {found} for {followers} followers")

    async def _affinity(self, user_id: int, who: str) -> None:
        affinity, c = self.s.affinity, self.checks
        for author_id, interactions in (await affinity.of_reader(user_id)).items():
            expected = await affinity.count_interactions(user_id, author_id)
            c.expect("affinity", interactions == expected,
                     f"{who}: affinity with {author_id} = {interactions},"
                                                    f" affinity_posts say {expected}")

    # --- posts ---------------------------------------------------------------------------------------
    async def _post(self, post: int) -> None:
        s, c = self.s, self.checks
        post_id = self.world.post_ids[post]
        row = await s.posts.get(post_id)
        if row is None:
            c.expect("posts", False, f"post {post_id}: no posts row")
            return
        likers = s.likes.likers
        index = await likers.buckets(post_id)
        counted, static = {}, {}
        for bucket in index:
            counted[bucket] = await likers.count_members(post_id, bucket)
            static[bucket] = await likers.stored_count(post_id, bucket)
            for user_id in await likers.members(post_id, bucket, EDGE_SAMPLE):
                edge = await s.likes.edge(user_id, post_id)
                c.expect("likers -> likes", edge is not None and edge.bucket == bucket,
                         f"post {post_id}: liker {user_id} in bucket {bucket}, edge {edge}")
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
        comments, c = self.s.comments, self.checks
        live = 0
        for comment_id in await every_item(comments.top_level, post_id):
            comment = await comments.get(comment_id)
            if comment is None:
                continue
            live += 0 if comment.deleted else 1
            replies = 0
            for reply_id in await every_item(comments.replies, comment_id):
                reply_row = await comments.get(reply_id)
                replies += 1 if reply_row is not None and not reply_row.deleted else 0
            live += replies
            counted_replies = await self._counted_set(comments.live_replies, comment_id)
            c.expect("reply_count", (comment.reply_count or 0) == replies == counted_replies,
                     f"comment {comment_id}: reply_count = {comment.reply_count}, live replies listed {replies},"
                     f" counted set {counted_replies}")
        counted = await self._counted_set(comments.live_comments, post_id)
        c.expect("comment_count", stored == live == counted,
                 f"post {post_id}: comment_count = {stored}, live comments listed {live},"
                 f" counted set {counted}")

    async def _counted_set(self, counted_set: CountedSet, owner: int) -> int | None:
        """The counted set's total when its index, static counts and members agree; None otherwise."""
        total = 0
        for bucket, indexed in (await counted_set.buckets(owner)).items():
            members = await counted_set.members(owner, bucket)
            static = await counted_set.stored_count(owner, bucket) if members else None
            if not (indexed == len(members) == (static or 0)):
                self.checks.failures.append(f"counted set of {owner}, bucket {bucket}: index {indexed},"
                                            f" static count {static}, {len(members)} members")
                return None
            total += indexed
        return total

    async def _tag(self, tag: str) -> None:
        s, c = self.s, self.checks
        stored = await s.hashtags.post_count(tag)
        counts = s.posts.hashtag_post_counts
        buckets = await counts.buckets(tag)
        counted = {b: await counts.count_bucket(tag, b) for b in buckets}
        c.expect("hashtag post_count", stored == sum(buckets.values()) and buckets == counted,
                 f"#{tag}: hashtags.post_count = {stored}, hashtag_buckets sum {sum(buckets.values())},"
                         f" COUNT(posts_by_hashtag) sum {sum(counted.values())}")

    # --- feeds and trays -------------------------------------------------------------------------------
    async def _followees(self, user_id: int) -> tuple[list[int], set[int]]:
        s = self.s
        followees = await s.follows.all_following(user_id)
        marks = await asyncio.gather(*(s.feed.is_celebrity(f) for f in followees))
        return followees, {f for f, mark in zip(followees, marks, strict=True) if mark}

    async def _reader(self, user: int) -> None:
        s, c = self.s, self.checks
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
            expected += [(post_id, followee) for post_id in await every_item(s.posts.by_user, followee)
                         if post_id >= horizon]
        expected = sorted(expected, reverse=True)[: self.settings.feed_max_entries]
        rows = await s.feed.entries_with_ttl(user_id)
        stored = [(r.post_id, r.author_id) for r in rows]
        c.expect("feed_items", stored == expected,
                 f"{who}: feed_items holds {len(stored)} entries, fan-out of the followees' posts gives"
                         f" {len(expected)}; first difference: {_first_difference(stored, expected)}")
        for r in rows[:50]:
            left = ttl_full - (now_ms - id_millis(r.post_id) - ID_EPOCH_MS) / 1000
            c.expect("feed TTL", abs((r.ttl or 0) - left) <= TTL_SLACK_S,
                     f"{who}: feed row {r.post_id} has TTL {r.ttl}, {left:.0f} s left")
        pulled = set(await s.feed.followed_celebrities(user_id))
        c.expect("followed_celebrities", pulled == celebrities,
                 f"{who}: followed_celebrities {sorted(pulled)}, celebrities followed {sorted(celebrities)}")

    async def _tray(self, user: int) -> None:
        s, c = self.s, self.checks
        user_id = self.world.user_ids[user]
        who = self._who(user_id)
        followees, celebrities = await self._followees(user_id)
        expected: dict[int, set[int]] = {}
        for followee in followees:
            if followee in celebrities:
                continue
            live = {story_id for story_id, _ in await s.stories.live_ids(followee)}
            if live:
                expected[followee] = live
        stored: dict[int, set[int]] = {}
        for r in await s.stories.tray(user_id):
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
