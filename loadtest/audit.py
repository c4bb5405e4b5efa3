"""The audit of a load run's ledger (loadtest/ledger.py) against Cassandra, once the run has ended.

    python -m loadtest.audit --ledger DIR [--settle-timeout 120]

The world is open: accounts and posts come from a seeded data set that others touched before the run. So
no check compares a count with the ledger alone: a derived value is compared with the truth (the tables
the API writes before it answers) read for every user the derived state names plus every ledger user
who touched the entity.

**Presence** (checked once: an acknowledged write was in Cassandra before its answer was sent):
- every acknowledged like state (liked or not) is the `likes` edge's state (`liked_at` null: not liked);
- every acknowledged follow state is the `following` edge's (read at LOCAL_SERIAL: conditional writes);
- every acknowledged comment is a `comments` row of its post, not deleted;
- every acknowledged upload is a `posts` row with its author, listed in its author's `posts_by_user`;
- every acknowledged story that has not expired (created less than `story_ttl_s` ago) is in
  `stories_by_id` with its author and in the author's `stories`;
- every acknowledged view of a live story by someone other than its author has its `story_views` row
  (LOCAL_SERIAL); an author's own view is not recorded, by design.

The like and follow states are read again once the derived values have settled (or the time ran out):
the workers write edges too, and none may have undone an acknowledged one meanwhile.

**Derived** (polled until every one agrees or `settle_timeout_s` passes; whatever disagrees then is a
problem; `converged_after_s` is how long agreement took):
- per post the run liked, unliked or commented on: `posts.like_count` == the rows of `post_likers` over the
  buckets `post_like_buckets` lists == the users among (those rows + the ledger users who touched the
  post) whose `likes` edge is a like, and the rows name exactly those users; `posts.comment_count` ==
  the rows of `post_live_comments` over `post_live_comment_buckets`, every acknowledged comment is among
  them and every one of them is a live comment of the post;
- per user on either side of a follow the run touched: `users.follower_count` == the rows of `followers`
  over `follower_buckets` == the users among (those rows + the ledger users who followed or unfollowed
  them) whose `following` edge exists (LOCAL_SERIAL), naming exactly those; `users.following_count` == the
  rows of the user's `following` partition;
- per uploading user: `users.post_count` == the rows of `posts_by_user` over `user_post_buckets`;
- per hashtag of an acknowledged upload: the post is in `posts_by_hashtag` (its hour bucket), and
  `hashtags.post_count` == the rows of `posts_by_hashtag` over every bucket `hashtag_buckets` lists;
- per story the run viewed (live): `stories.view_count` == the rows of `story_viewers` over
  `story_viewer_buckets` == the users among (those rows + the ledger users who viewed it, its author
  excepted) with a `story_views` row (LOCAL_SERIAL), naming exactly those;
- feeds: an acknowledged upload by an author who is not a celebrity (no `celebrities` row) is in the
  `feed_items` of every *stable* follower (a follow from before the run that the run never touched, read
  from the `followers` mirror and confirmed in `following`; or one acknowledged before the upload was, and no request on
  the pair since) who is an active reader now, by the stack's Redis `active:` keys (fan-out skips the others
  until their next feed read rebuilds their feed, so one active now either got the push or was rebuilt
  since; when Redis cannot say, no feed is demanded and the skipped count says so). The rule guarantees only the
  newest `feed_max_entries` entries: a missing entry is not reported when the reader holds at least
  that many newer ones (trimmed by design); posts older than the feed horizon do not occur in a run;
- trays: an acknowledged live story by an author who is not a celebrity is in the `story_tray` row
  (reader, author) of every stable follower.

Celebrity status is read once, when the derived checks begin: an author who crossed the line back down during the
run had their earlier stories pulled, not pushed, and nothing copies those into trays (feeds get copies;
streams/feed_graph.py has no tray step), so such a story is reported missing from its followers' trays.

**Not checked**: the state of a pair whose last request got no 2xx (it may or may not have landed; the
derived checks still count whatever the truth holds), comments or uploads that were not acknowledged
(they may exist), like and follow edges of users neither the ledger nor the derived rows name (the
open world), notifications, affinity, search and trending (derived with no exact rule to hold them to),
media objects, and feeds and trays of celebrities' followers (pulled at read time).

Every read goes through the tables' owners in app/storage/ (`Storage`, app/wiring.py; the probes no owner
needs for itself are `AuditReads`, app/storage/audit_reads.py), each statement prepared once. Every read is
bounded: a single row, one bucket partition paged (1,000 to 5,000 rows a round trip) or counted (`COUNT(*)` of
one `posts_by_user` month or `posts_by_hashtag` hour), each bounded by its table's cap (cql/TABLES.md), and at
most `concurrency` reads are in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cassandra import Timeout
from cassandra.protocol import ErrorMessage
from redis.asyncio import Redis

from app.client_security import redis_options
from app.settings import Settings
from app.storage.counted_set import CountedSet
from app.storage.feed_cache import FeedCache
from app.wiring import Storage, Wiring
from loadtest.ledger import Ledger, read_ledger

SERIAL_READ_ATTEMPTS = 6
POLL_INTERVAL_S = 1.0
READ_RETRIES = 3  # a presence check whose reads failed is tried this many times more
SHOWN = 10  # ids shown per list in a problem line

T = TypeVar("T")
Check = Callable[[], Awaitable[list[str]]]
ActiveReaders = Callable[[list[int]], Awaitable[set[int] | None]]


@dataclass
class AuditReport:
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    converged_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = ["checked: " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.checked.items()))]
        if self.problems:
            lines.append(f"derived values polled for {self.converged_after_s:.1f} s; {len(self.problems)} problem(s):")
        else:
            lines.append(f"derived values agreed after {self.converged_after_s:.1f} s; no problems")
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def _ids(ids: Iterable[int]) -> str:
    ordered = sorted(ids)
    more = f" (+{len(ordered) - SHOWN} more)" if len(ordered) > SHOWN else ""
    return "[" + ", ".join(map(str, ordered[:SHOWN])) + "]" + more


def set_difference(what: str, found: set[int], expected: set[int]) -> str:
    """'' when equal, else which ids the derived rows lack and which they hold in excess."""
    parts = []
    if expected - found:
        parts.append(f"{what} lacks {_ids(expected - found)}")
    if found - expected:
        parts.append(f"{what} has extra {_ids(found - expected)}")
    return "; ".join(parts)


class Reads:
    """The audit's reads through the table owners: a cap on reads in flight, and LOCAL_SERIAL reads tried again
    after a pause."""

    def __init__(self, concurrency: int = 32) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def __call__(self, read: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """One owner read (a row, or one bounded partition page by page), holding one of the slots."""
        async with self._slots:
            return await read(*args, **kwargs)

    async def serial(self, read: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """An owner read at LOCAL_SERIAL. It is a Paxos round that concurrent rounds (the audit's own, a busy node)
        can defeat or time out; it changes nothing, so it is tried again after a random pause."""
        for attempt in range(SERIAL_READ_ATTEMPTS):
            try:
                return await self(read, *args, **kwargs)
            except (ErrorMessage, Timeout):
                if attempt == SERIAL_READ_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(random.uniform(0.05, 0.2) * 2**attempt)
        raise AssertionError("unreachable")

    async def members(self, counted_set: CountedSet, owner: int, buckets: Iterable[int]) -> list[int]:
        """The members of every listed bucket of a counted set (a static-only row, no member, is skipped)."""
        pages = await asyncio.gather(*(self(counted_set.members, owner, bucket) for bucket in buckets))
        return [member for page in pages for member in page if member is not None]

    async def gather_map(self, keys: Iterable, read: Callable[[object], Awaitable[object]]) -> dict:
        keys = list(keys)
        return dict(zip(keys, await asyncio.gather(*(read(k) for k in keys)), strict=True))


class Audit:
    def __init__(self, storage: Storage, ledger: Ledger, *, settle_timeout_s: float,
                 active_readers: ActiveReaders | None, feed_max_entries: int, story_ttl_s: float,
                 concurrency: int) -> None:
        self.s = storage
        self.read = Reads(concurrency)
        self.ledger = ledger
        self.settle_timeout_s = settle_timeout_s
        self.active_readers = active_readers
        self.feed_max_entries = feed_max_entries
        self.story_ttl_s = story_ttl_s
        self.checked: Counter = Counter()

    # --- running checks ---------------------------------------------------------------------------
    async def run(self) -> AuditReport:
        problems = await self._settle(self.presence_checks(), self.settle_timeout_s, poll=False)
        started = time.monotonic()
        problems += await self._settle(await self.derived_checks(), self.settle_timeout_s, poll=True)
        converged = round(time.monotonic() - started, 3)
        # the workers write edges too (a like whose request died after its event): none may have undone one
        later = await self._settle(self.edge_checks(), self.settle_timeout_s, poll=False)
        problems += [f"after settling: {problem}" for problem in later if problem not in problems]
        return AuditReport(problems, dict(self.checked), converged)

    async def _settle(self, checks: list[tuple[str, Check]], timeout: float, *, poll: bool) -> list[str]:
        """Run the checks; when polling, run those that disagree again each POLL_INTERVAL_S until all agree or
        `timeout` passes. A check whose reads failed is run again either way (at most READ_RETRIES more times
        when not polling). Returns the last problems of those that never agreed."""
        deadline = time.monotonic() + timeout
        results: dict[int, tuple[list[str], bool]] = {}  # check -> its latest (problems, a read failed)
        pending = list(range(len(checks)))
        attempts = 0
        while True:
            found = await asyncio.gather(*(self._try(*checks[i]) for i in pending))
            results.update(zip(pending, found, strict=True))
            again = [i for i in pending if results[i][0] and (poll or results[i][1])]
            attempts += 1
            if not again or time.monotonic() >= deadline or (not poll and attempts > READ_RETRIES):
                return [problem for i in range(len(checks)) for problem in results[i][0]]
            pending = again
            await asyncio.sleep(POLL_INTERVAL_S)

    @staticmethod
    async def _try(name: str, check: Check) -> tuple[list[str], bool]:
        """(problems, whether a read failed)."""
        try:
            return await check(), False
        except Exception as exc:  # a read that failed is no verdict: reported only if it keeps failing
            return [f"{name}: read failed: {type(exc).__name__}: {exc}"], True

    def _count(self, kind: str, items: Iterable) -> list:
        items = list(items)
        self.checked[kind] += len(items)
        return items

    # --- which checks ------------------------------------------------------------------------------
    def presence_checks(self) -> list[tuple[str, Check]]:
        ledger, now = self.ledger, time.time()
        live_stories = [s for s in ledger.stories.values() if s.t + self.story_ttl_s > now]
        self.checked["stories expired, skipped"] += len(ledger.stories) - len(live_stories)
        self._count("like states", _known(ledger.likes))
        self._count("follow states", _known(ledger.follows))
        checks = self.edge_checks()
        checks += [(f"comment {c}", self._bind(self.comment_exists, p, c))
                   for p, c in self._count("comments", ((p, c) for p, cs in ledger.comments.items() for c in cs))]
        checks += [(f"upload {u.post_id}", self._bind(self.upload_exists, u.post_id, u.author_id))
                   for u in self._count("uploads", ledger.uploads.values())]
        checks += [(f"story {s.story_id}", self._bind(self.story_exists, s.story_id, s.author_id))
                   for s in self._count("stories", live_stories)]
        checks += [(f"view {s}/{v}", self._bind(self.view_exists, s, v))
                   for s, v in self._count("views", sorted(ledger.views))]
        return checks

    def edge_checks(self) -> list[tuple[str, Check]]:
        """Every acknowledged like and follow state (the edges later requests and the workers may write)."""
        return [(f"like {p}", self._bind(self.like_state, u, p, s)) for (u, p), s in _known(self.ledger.likes)] + [
            (f"follow {a}->{b}", self._bind(self.follow_state, a, b, s)) for (a, b), s in _known(self.ledger.follows)]

    async def derived_checks(self) -> list[tuple[str, Check]]:
        ledger = self.ledger
        checks: list[tuple[str, Check]] = []
        checks += [(f"post {p} likes", self._bind(self.like_count, p))
                   for p in self._count("posts' like counts", sorted({p for _, p in ledger.likes}))]
        checks += [(f"post {p} comments", self._bind(self.comment_count, p))
                   for p in self._count("posts' comment counts", sorted(ledger.comment_touches))]
        checks += [(f"user {u} follows", self._bind(self.follow_counts, u))
                   for u in self._count("users' follow counts", sorted(ledger.follow_users()))]
        authors = sorted({u.author_id for u in ledger.uploads.values()})
        checks += [(f"user {u} posts", self._bind(self.post_count, u))
                   for u in self._count("users' post counts", authors)]
        tags = sorted({tag for u in ledger.uploads.values() for tag in u.hashtags})
        checks += [(f"hashtag {t}", self._bind(self.hashtag, t)) for t in self._count("hashtags", tags)]
        checks += [(f"story {s} views", self._bind(self.view_count, s))
                   for s in self._count("stories' view counts", sorted(ledger.view_touches))]
        checks += await self.feed_checks()
        checks += await self.tray_checks()
        return checks

    @staticmethod
    def _bind(method, *args) -> Check:
        return lambda: method(*args)

    async def _celebrities(self, authors: Iterable[int]) -> set[int]:
        found = await self.read.gather_map(set(authors), lambda a: self.read(self.s.feed.is_celebrity, a))
        return {a for a, celebrity in found.items() if celebrity}

    async def _followers_from_before(self, authors: Iterable[int]) -> dict[int, set[int]]:
        """Per author, the followers whose follow the run never touched and the `following` truth confirms: they
        followed before the run began (the seeded graph), so every upload and story of the run is theirs too.
        Read from the `followers` mirror (every bucket) and confirmed edge by edge; callers leave celebrities
        out, so each list is below the celebrity threshold."""
        async def of(author: int) -> set[int]:
            buckets = await self.read(self.s.follows.follower_counts.buckets, author)
            pages = await asyncio.gather(*(self.read(self.s.follows.all_followers_in_bucket, author, b)
                                           for b in buckets))
            untouched = {f for page in pages for f in page if (f, author) not in self.ledger.follows}
            edges = await self.read.gather_map(untouched, lambda f: self._follows(f, author))
            return {f for f, following in edges.items() if following}
        return await self.read.gather_map(set(authors), of)

    async def feed_checks(self) -> list[tuple[str, Check]]:
        uploads = list(self.ledger.uploads.values())
        celebrities = await self._celebrities(u.author_id for u in uploads)
        earlier = await self._followers_from_before(u.author_id for u in uploads if u.author_id not in celebrities)
        readers = {u.post_id: self.ledger.stable_followers(u.author_id, u.t) | earlier.get(u.author_id, set())
                   for u in uploads}
        active = await self._active({r for rs in readers.values() for r in rs})
        checks: list[tuple[str, Check]] = []
        for upload in uploads:
            if upload.author_id in celebrities:
                self.checked["feed entries of celebrities' posts, pulled, skipped"] += len(readers[upload.post_id])
                continue
            self.checked["feed entries of inactive readers, skipped"] += len(readers[upload.post_id] - active)
            checks += [(f"feed {r} post {upload.post_id}", self._bind(self.feed_entry, r, upload.post_id))
                       for r in self._count("feed entries", sorted(readers[upload.post_id] & active))]
        return checks

    async def _active(self, readers: set[int]) -> set[int]:
        """The readers fan-out pushes to: all of them when no `active_readers` was given (tests), none when Redis
        cannot say (a reader who is not active gets nothing pushed, so nothing can be demanded)."""
        if self.active_readers is None or not readers:
            return readers
        active = await self.active_readers(sorted(readers))
        if active is None:
            self.checked["feed entries, reader activity unknown (Redis), skipped"] += len(readers)
            return set()
        return active

    async def tray_checks(self) -> list[tuple[str, Check]]:
        now = time.time()
        stories = [s for s in self.ledger.stories.values() if s.t + self.story_ttl_s > now]
        celebrities = await self._celebrities(s.author_id for s in stories)
        earlier = await self._followers_from_before(s.author_id for s in stories if s.author_id not in celebrities)
        checks: list[tuple[str, Check]] = []
        for story in stories:
            readers = self.ledger.stable_followers(story.author_id, story.t) | earlier.get(story.author_id, set())
            if story.author_id in celebrities:
                self.checked["tray entries of celebrities' stories, pulled, skipped"] += len(readers)
                continue
            checks += [(f"tray {r} story {story.story_id}",
                        self._bind(self.tray_entry, r, story.author_id, story.story_id))
                       for r in self._count("tray entries", sorted(readers))]
        return checks

    # --- presence ----------------------------------------------------------------------------------
    async def _liked(self, user_id: int, post_id: int) -> bool:
        """The like edge: a row whose liked_at is null is an unlike (blind writes: read at the session's level)."""
        state = await self.read(self.s.likes.state, user_id, post_id)
        return state is not None and state.liked

    async def _follows(self, follower: int, followee: int) -> bool:
        """The `following` edge, read at LOCAL_SERIAL (conditional writes: a half-done one is finished first)."""
        return await self.read.serial(self.s.follows.edge, follower, followee, serial=True) is not None

    async def _viewed(self, story_id: int, viewer: int) -> bool:
        """The `story_views` claim (read at LOCAL_SERIAL by its owner)."""
        return await self.read.serial(self.s.stories.view, story_id, viewer) is not None

    async def like_state(self, user_id: int, post_id: int, acknowledged: bool) -> list[str]:
        found = await self._liked(user_id, post_id)
        if found == acknowledged:
            return []
        return [f"like of post {post_id} by user {user_id}: acknowledged {_liked(acknowledged)}, "
                f"the edge says {_liked(found)}"]

    async def follow_state(self, follower: int, followee: int, acknowledged: bool) -> list[str]:
        found = await self._follows(follower, followee)
        if found == acknowledged:
            return []
        return [f"follow of user {followee} by user {follower}: acknowledged {_following(acknowledged)}, "
                f"the edge says {_following(found)}"]

    async def comment_exists(self, post_id: int, comment_id: int) -> list[str]:
        row = await self.read(self.s.comments.get, comment_id)  # None: no row, or one without its post_id
        if row is None:
            return [f"comment {comment_id} on post {post_id}: acknowledged, no comments row"]
        if row.post_id != post_id:
            return [f"comment {comment_id}: acknowledged on post {post_id}, the row says post {row.post_id}"]
        if row.deleted:
            return [f"comment {comment_id} on post {post_id}: acknowledged, the row is deleted"]
        return []

    async def upload_exists(self, post_id: int, author_id: int) -> list[str]:
        row, listed = await asyncio.gather(
            self.read(self.s.posts.get, post_id),  # None: no row, or one without its author
            self.read(self.s.audit.in_user_posts, author_id, post_id),
        )
        problems = []
        if row is None:
            problems.append(f"upload {post_id} by user {author_id}: acknowledged, no posts row")
        elif row.author_id != author_id:
            problems.append(f"upload {post_id}: acknowledged for user {author_id}, the row says {row.author_id}")
        if not listed:
            problems.append(f"upload {post_id}: not in posts_by_user of its author {author_id}")
        return problems

    async def story_exists(self, story_id: int, author_id: int) -> list[str]:
        by_id, listed = await asyncio.gather(
            self._story(story_id),
            self.read(self.s.stories.get, author_id, story_id),
        )
        problems = []
        if by_id is None or by_id.author_id != author_id:
            found = "no row" if by_id is None else f"author {by_id.author_id}"
            problems.append(f"story {story_id} by user {author_id}: acknowledged, stories_by_id has {found}")
        if listed is None:
            problems.append(f"story {story_id}: not in stories of its author {author_id}")
        return problems

    async def view_exists(self, story_id: int, viewer: int) -> list[str]:
        story = await self._story(story_id)
        if story is None:  # expired (or never was: a view of it was acknowledged, so it was live then)
            self.checked["views of expired stories, skipped"] += 1
            return []
        if story.author_id == viewer:
            return []  # an author's own view is not recorded
        if await self._viewed(story_id, viewer):
            return []
        return [f"view of story {story_id} by user {viewer}: acknowledged, no story_views row"]

    async def _story(self, story_id: int):
        """The `stories_by_id` row as stored (None once its TTL removed it)."""
        return await self.read(self.s.stories.stored_by_id, story_id)

    # --- derived -----------------------------------------------------------------------------------
    async def like_count(self, post_id: int) -> list[str]:
        post, buckets = await asyncio.gather(
            self.read(self.s.posts.like_state, post_id),  # None: no row, or one without its author
            self.read(self.s.likes.likers.buckets, post_id),
        )
        if post is None:
            return [f"post {post_id}: no posts row"]
        rows = await self.read.members(self.s.likes.likers, post_id, buckets)
        candidates = set(rows) | self.ledger.like_users(post_id)
        edges = await self.read.gather_map(candidates, lambda u: self._liked(u, post_id))
        truth = {u for u, liked in edges.items() if liked}
        count = post.like_count or 0
        if count == len(rows) == len(truth) and set(rows) == truth:
            return []
        return [_disagreement(f"post {post_id} likes", f"like_count {count}", f"{len(rows)} post_likers rows",
                              f"{len(truth)} like edges among {len(candidates)} users read",
                              set_difference("post_likers", set(rows), truth), _duplicates(rows))]

    async def comment_count(self, post_id: int) -> list[str]:
        post, buckets = await asyncio.gather(
            self.read(self.s.posts.get, post_id),  # None: no row, or one without its author
            self.read(self.s.comments.live_comments.buckets, post_id),
        )
        if post is None:
            return [f"post {post_id}: no posts row"]
        rows = await self.read.members(self.s.comments.live_comments, post_id, buckets)
        acknowledged = set(self.ledger.comments.get(post_id, ()))
        truth = await self.read.gather_map(set(rows), lambda c: self.read(self.s.comments.get, c))
        dead = {c for c, row in truth.items() if row is None or row.post_id != post_id or row.deleted}
        count = post.comment_count or 0
        if count == len(rows) and acknowledged <= set(rows) and not dead:
            return []
        uncounted = f"acknowledged comments not counted {_ids(acknowledged - set(rows))}" \
            if acknowledged - set(rows) else ""
        return [_disagreement(f"post {post_id} comments", f"comment_count {count}",
                              f"{len(rows)} post_live_comments rows", uncounted,
                              f"rows that are no live comment of the post {_ids(dead)}" if dead else "",
                              _duplicates(rows))]

    async def follow_counts(self, user_id: int) -> list[str]:
        follows = self.s.follows
        user, buckets, followees = await asyncio.gather(
            self.read(self.s.users.get, user_id),
            self.read(follows.follower_counts.buckets, user_id),
            self.read(follows.count_following, user_id),  # the edges, not the static-only row of a count
        )
        if user is None:
            return [f"user {user_id}: no users row"]
        pages = await asyncio.gather(*(self.read(follows.all_followers_in_bucket, user_id, b) for b in buckets))
        rows = [follower for page in pages for follower in page]
        candidates = set(rows) | {a for a, b in self.ledger.follows if b == user_id}
        edges = await self.read.gather_map(candidates, lambda a: self._follows(a, user_id))
        truth = {a for a, following in edges.items() if following}
        followers = user.follower_count or 0
        problems = []
        if not (followers == len(rows) == len(truth) and set(rows) == truth):
            problems.append(_disagreement(
                f"user {user_id} followers", f"follower_count {followers}", f"{len(rows)} followers rows",
                f"{len(truth)} following edges among {len(candidates)} users read",
                set_difference("followers", set(rows), truth), _duplicates(rows)))
        if (user.following_count or 0) != followees:
            problems.append(f"user {user_id} following: following_count {user.following_count or 0}, "
                            f"{followees} following rows")
        return problems

    async def post_count(self, user_id: int) -> list[str]:
        counts = self.s.posts.user_post_counts
        user, buckets = await asyncio.gather(
            self.read(self.s.users.get, user_id),
            self.read(counts.buckets, user_id),
        )
        if user is None:
            return [f"user {user_id}: no users row"]
        rows = sum(await asyncio.gather(*(self.read(counts.count_bucket, user_id, b) for b in buckets)))
        if (user.post_count or 0) == rows:
            return []
        return [f"user {user_id} posts: post_count {user.post_count or 0}, {rows} posts_by_user rows"]

    async def hashtag(self, tag: str) -> list[str]:
        posts = [u.post_id for u in self.ledger.uploads.values() if tag in u.hashtags]
        listed = await self.read.gather_map(posts, lambda p: self.read(self.s.audit.in_hashtag_posts, tag, p))
        problems = [f"hashtag {tag}: upload {p} not in posts_by_hashtag" for p, found in listed.items() if not found]
        counts = self.s.posts.hashtag_post_counts
        count, buckets = await asyncio.gather(
            self.read(self.s.hashtags.post_count, tag),  # 0 when the tag has no row or no count
            self.read(counts.buckets, tag),
        )
        rows = sum(await asyncio.gather(*(self.read(counts.count_bucket, tag, b) for b in buckets)))
        if count != rows:
            problems.append(f"hashtag {tag}: post_count {count}, {rows} posts_by_hashtag rows "
                            f"over {len(buckets)} hours")
        return problems

    async def view_count(self, story_id: int) -> list[str]:
        story = await self._story(story_id)
        if story is None:
            return []  # expired: every row of it with it (counted among the skipped in presence)
        listed, buckets = await asyncio.gather(
            self.read(self.s.stories.get, story.author_id, story_id),
            self.read(self.s.stories.viewers.buckets, story_id),
        )
        if listed is None:
            return [f"story {story_id}: not in stories of its author {story.author_id}"]
        rows = await self.read.members(self.s.stories.viewers, story_id, buckets)
        candidates = (set(rows) | self.ledger.view_touches.get(story_id, set())) - {story.author_id}
        views = await self.read.gather_map(candidates, lambda v: self._viewed(story_id, v))
        truth = {v for v, viewed in views.items() if viewed}
        count = listed.view_count or 0
        if count == len(rows) == len(truth) and set(rows) == truth:
            return []
        return [_disagreement(f"story {story_id} views", f"view_count {count}", f"{len(rows)} story_viewers rows",
                              f"{len(truth)} story_views among {len(candidates)} users read",
                              set_difference("story_viewers", set(rows), truth), _duplicates(rows))]

    async def feed_entry(self, reader: int, post_id: int) -> list[str]:
        if await self.read(self.s.feed.holds, reader, post_id):
            return []
        newest = await self.read(self.s.feed.newest, reader, self.feed_max_entries)  # newest first
        newer = [entry for entry in newest if entry.post_id > post_id]
        if len(newer) >= self.feed_max_entries:
            return []  # trimmed by design: the feed keeps its newest feed_max_entries
        return [f"feed of user {reader}: lacks post {post_id} of a followed author ({len(newer)} newer entries)"]

    async def tray_entry(self, reader: int, author_id: int, story_id: int) -> list[str]:
        row = await self.read(self.s.stories.tray_row, reader, author_id)
        if row is not None and story_id in (row.story_ids or {}):
            return []
        return [f"tray of user {reader}: lacks story {story_id} of followed author {author_id}"]


def _known(states: dict) -> list:
    return sorted((pair, state) for pair, state in states.items() if state is not None)


def _liked(state: bool) -> str:
    return "liked" if state else "not liked"


def _following(state: bool) -> str:
    return "following" if state else "not following"


def _duplicates(rows: list[int]) -> str:
    twice = {r for r, n in Counter(rows).items() if n > 1}
    return f"in more than one bucket {_ids(twice)}" if twice else ""


def _disagreement(entity: str, *facts: str) -> str:
    return f"{entity}: " + ", ".join(fact for fact in facts if fact)


async def audit(storage: Storage, ledger: Ledger, settle_timeout_s: float = 120.0, *,
                settings: Settings | None = None, active_readers: ActiveReaders | None = None,
                feed_max_entries: int | None = None, story_ttl_s: float | None = None,
                concurrency: int = 32) -> AuditReport:
    """The ledger against Cassandra, read through the table owners of `storage` (`await Wiring(settings).storage()`;
    what is checked: the module docstring).

    `settings` are the audited stack's (`Settings.from_env()` when not given): its feed cap and story life,
    and its Redis, where the feed's `active:` keys say which readers fan-out pushes to. `active_readers`,
    `feed_max_entries` and `story_ttl_s` replace what the settings say."""
    settings = settings or Settings.from_env()
    redis = None
    if active_readers is None:
        redis = Redis.from_url(settings.redis_url, **redis_options(settings))
        active_readers = FeedCache.for_settings(settings, redis).active_among
    try:
        return await Audit(
            storage, ledger, settle_timeout_s=settle_timeout_s, active_readers=active_readers,
            feed_max_entries=settings.feed_max_entries if feed_max_entries is None else feed_max_entries,
            story_ttl_s=settings.story_ttl_s if story_ttl_s is None else story_ttl_s, concurrency=concurrency,
        ).run()
    finally:
        if redis is not None:
            await redis.aclose()


async def _main(ledger_dir: Path, settle_timeout_s: float) -> int:
    settings = Settings.from_env()
    ledger = read_ledger(ledger_dir)
    print(f"ledger {ledger_dir}: {ledger.records} records ({ledger.truncated} unreadable lines), "
          f"answers {dict(sorted(ledger.statuses.items()))}")
    if ledger.shared_accounts:
        print(f"warning: {len(ledger.shared_accounts)} accounts were driven by more than one process; their like"
              " and follow states are taken as unknown")
    if not ledger.records:
        print("no records: nothing was audited")
        return 1
    wiring = Wiring(settings)
    try:
        report = await audit(await wiring.storage(), ledger, settle_timeout_s, settings=settings)
    finally:
        await wiring.close()
    print(report.summary())
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger", type=Path, required=True, help="the directory of the ledger-*.jsonl files")
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds derived values may take to agree (default 120)")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.ledger, args.settle_timeout))


if __name__ == "__main__":
    sys.exit(main())
