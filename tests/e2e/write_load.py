"""A write load for the crash tests, a ledger of what it was told, and the audit of that ledger against
what Cassandra and the media store hold once everything has settled.

Each user is driven by one client, one request at a time, so the ledger knows the order of its own
requests: for a like or a follow it keeps the state the last answer acknowledged, or "unknown" when
the last request got no 2xx (its change may or may not have landed). The audit then demands:
- every acknowledged state is the state of the edge (nothing acknowledged is lost);
- every derived count equals what the truth holds now, whatever the unknown requests did: a like
  count is the number of like edges, a follower count the number of follow edges, and the
  followers mirror holds exactly the edges;
- a comment count is exactly the comments acknowledged (a comment whose create failed must end
  deleted or absent, never counted), and every acknowledged comment is live;
- every acknowledged upload is a post with all its media, in its author's posts; a post count is
  the number of its author's timeline entries, and each of those is a post; no upload is left
  unsettled in the media sweep log.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from cassandra import ConsistencyLevel, Timeout
from cassandra.protocol import ErrorMessage

from app.ids import month_bucket
from app.storage.media_sweep import SWEEP_SHARDS, current_hour_bucket
from tests.e2e.client.posts import SMALL_PHOTO, form, publish
from tests.e2e.client.users import Account, register
from tests.support.polling import eventually

UPLOAD = SMALL_PHOTO
WEIGHTS = {"like": 45, "follow": 20, "comment": 20, "upload": 15}
SETTLE_TIMEOUT_S = 120.0
SERIAL_READ_ATTEMPTS = 6


@dataclass
class Ledger:
    """What the clients were told. A like or follow pair maps to its acknowledged state, None if unknown."""

    likes: dict[tuple[int, int], bool | None] = field(default_factory=dict)
    follows: dict[tuple[int, int], bool | None] = field(default_factory=dict)
    comments: dict[int, list[int]] = field(default_factory=dict)  # post -> acknowledged comment ids
    uploads: dict[int, list[int]] = field(default_factory=dict)  # author -> acknowledged post ids
    statuses: Counter = field(default_factory=Counter)  # (operation, status) -> answers
    last_ack: float = 0.0  # monotonic time of the latest 2xx

    def acknowledged(self, operation: str) -> int:
        return sum(n for (op, status), n in self.statuses.items() if op == operation and status in (200, 201, 204))

    def acknowledged_all(self) -> int:
        return sum(self.acknowledged(op) for op in WEIGHTS)

    def failed(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status not in (200, 201, 204))


@dataclass
class Cast:
    """The accounts and posts a load works on, and the ledger of every load run on them so far."""

    users: list[Account]
    posts: list[int]
    ledger: Ledger = field(default_factory=Ledger)


async def make_cast(http: aiohttp.ClientSession, api_url: str, users: int, posts: int) -> Cast:
    accounts = list(await asyncio.gather(*(register(http, api_url) for _ in range(users))))
    post_ids = []
    for i in range(posts):
        post_ids.append(int((await publish(http, api_url, accounts[i % len(accounts)], image=UPLOAD))["id"]))
    return Cast(accounts, post_ids)


class WriteLoad:
    """Likes and unlikes, follows and unfollows, comments and uploads, one client per user."""

    def __init__(self, http: aiohttp.ClientSession, api_url: str, cast: Cast, seed: int) -> None:
        self.http = http
        self.api_url = api_url
        self.cast = cast
        self.ledger = cast.ledger
        self.rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._clients: list[asyncio.Task] = []

    def start(self) -> None:
        self._clients = [asyncio.create_task(self._client(user)) for user in self.cast.users]

    async def stop(self) -> Ledger:
        self._stop.set()
        await asyncio.gather(*self._clients)
        return self.ledger

    async def until_acknowledged(self, count: int, after: float, timeout: float) -> None:
        """Wait until `count` more writes were acknowledged after the monotonic time `after`."""
        base = sum(self.ledger.acknowledged(op) for op in WEIGHTS)
        deadline = time.monotonic() + timeout
        while sum(self.ledger.acknowledged(op) for op in WEIGHTS) < base + count or self.ledger.last_ack < after:
            assert time.monotonic() < deadline, f"the load got no {count} acknowledgements within {timeout} s: " \
                                                f"{dict(self.ledger.statuses)}"
            await asyncio.sleep(0.1)

    async def _client(self, user: Account) -> None:
        operations, weights = zip(*WEIGHTS.items(), strict=True)
        while not self._stop.is_set():
            operation = self.rng.choices(operations, weights)[0]
            await getattr(self, operation)(user)

    async def _send(self, operation: str, method: str, path: str, user: Account, **kwargs) -> tuple[int, dict]:
        try:
            async with self.http.request(method, f"{self.api_url}{path}", headers=user.auth, **kwargs) as response:
                body = await response.json() if response.content_type == "application/json" else {}
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:  # an answer that never came: outcome unknown
            status, body = type(exc).__name__, {}
        self.ledger.statuses[operation, status] += 1
        if status in (200, 201, 204):
            self.ledger.last_ack = time.monotonic()
        elif status == 503:
            await asyncio.sleep(0.05)  # what a client does after 503: back off a little, then go on
        return status, body

    async def like(self, user: Account) -> None:
        post_id = self.rng.choice(self.cast.posts)
        pair = (int(user.id), post_id)
        wanted = self.ledger.likes.get(pair) is not True  # like what is not known liked, else unlike
        method = "PUT" if wanted else "DELETE"
        status, body = await self._send("like", method, f"/v1/posts/{post_id}/like", user)
        self.ledger.likes[pair] = body["liked"] if status == 200 else None

    async def follow(self, user: Account) -> None:
        other = self.rng.choice([u for u in self.cast.users if u is not user])
        pair = (int(user.id), int(other.id))
        wanted = self.ledger.follows.get(pair) is not True
        status, _ = await self._send("follow", "PUT" if wanted else "DELETE", f"/v1/users/{other.id}/follow", user)
        self.ledger.follows[pair] = wanted if status == 204 else None

    async def comment(self, user: Account) -> None:
        post_id = self.rng.choice(self.cast.posts)
        status, body = await self._send(
            "comment", "POST", f"/v1/posts/{post_id}/comments", user, json={"text": f"crash test {self.rng.random()}"}
        )
        if status == 201:
            self.ledger.comments.setdefault(post_id, []).append(int(body["id"]))

    async def upload(self, user: Account) -> None:
        status, body = await self._send("upload", "POST", "/v1/posts", user, data=form(UPLOAD))
        if status == 201:
            self.ledger.uploads.setdefault(int(user.id), []).append(int(body["id"]))


class Audit:
    """The ledger against Cassandra (read at SERIAL where a conditional write may have been left half done)."""

    def __init__(self, cass, http: aiohttp.ClientSession, api_url: str, cast: Cast) -> None:
        self.cass = cass
        self.http = http
        self.api_url = api_url
        self.cast = cast
        self.ledger = cast.ledger
        self.user_ids = [int(u.id) for u in cast.users]

    async def run(self) -> None:
        await self.likes()
        await self.follows()
        await self.comments()
        await self.uploads()

    async def _rows(self, cql: str, params: tuple, serial: bool = False) -> list:
        """The rows; a SERIAL read is a Paxos round, and the audit's own concurrent rounds on one partition can
        defeat each other or time out (on several replicas, or one busy node: "CAS operation result is unknown",
        a ReadTimeout at LOCAL_SERIAL): such a read changes nothing, so it is tried again after a random pause."""
        if not serial:
            return await self.cass.rows(cql, params)
        for attempt in range(SERIAL_READ_ATTEMPTS):
            try:
                return await self.cass.rows(cql, params, consistency=ConsistencyLevel.LOCAL_SERIAL)
            except (ErrorMessage, Timeout):
                if attempt == SERIAL_READ_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0.05, 0.2) * 2**attempt)
        raise AssertionError("unreachable")

    async def likes(self) -> None:
        """Acknowledged like states hold, and counts and likers settle on the edges.

        The edges themselves may still change while the workers catch up: a like whose request died after
        publishing its event (answered 503, state unknown) is written by the count worker. So each probe reads
        the edges and the derived state together and waits until they agree.
        """
        async def edges() -> dict[int, set[int]]:
            result = {}
            for post_id in self.cast.posts:
                found = await asyncio.gather(*(
                    self._rows("SELECT liked_at FROM likes WHERE user_id = %s AND month = %s AND post_id = %s",
                               (uid, month_bucket(post_id), post_id), serial=True)
                    for uid in self.user_ids
                ))
                # an edge is a like while its liked_at is set: an unlike keeps the row with liked_at null
                result[post_id] = {uid for uid, rows in zip(self.user_ids, found, strict=True)
                                   if rows and rows[0].liked_at is not None}
            return result

        def lost(found: dict[int, set[int]]) -> list[tuple[int, int, bool]]:
            return [(u, p, s) for (u, p), s in self.ledger.likes.items() if s is not None and (u in found[p]) != s]

        first = await edges()
        assert not lost(first), f"acknowledged like states not in Cassandra (user, post, acknowledged): {lost(first)}"

        async def settled() -> tuple[dict[int, tuple[int, set[int]]], dict[int, tuple[int, set[int]]]]:
            found = {}
            for post_id in self.cast.posts:
                row = (await self._rows("SELECT like_count FROM posts WHERE post_id = %s", (post_id,)))[0]
                likers = await self._rows("SELECT user_id FROM post_likers WHERE post_id = %s AND bucket = 0",
                                          (post_id,))
                found[post_id] = (row.like_count or 0, {r.user_id for r in likers})
            now = await edges()
            return found, {p: (len(users), users) for p, users in now.items()}

        await eventually(settled, lambda pair: pair[0] == pair[1], timeout=SETTLE_TIMEOUT_S, interval=1.0)
        final = await edges()
        assert not lost(final), f"acknowledged like states changed after the audit began: {lost(final)}"

    async def follows(self) -> None:
        pairs = [(a, b) for a in self.user_ids for b in self.user_ids if a != b]
        found = await asyncio.gather(*(
            self._rows("SELECT followee_id FROM following WHERE user_id = %s AND followee_id = %s", pair, serial=True)
            for pair in pairs
        ))
        edges = {pair for pair, rows in zip(pairs, found, strict=True) if rows}
        lost = [(a, b, s) for (a, b), s in self.ledger.follows.items() if s is not None and ((a, b) in edges) != s]
        assert not lost, f"acknowledged follow states not in Cassandra (follower, followee, acknowledged): {lost}"

        async def derived() -> dict[int, tuple[int, int, set[int]]]:
            result = {}
            for uid in self.user_ids:
                row = (await self._rows("SELECT follower_count, following_count FROM users WHERE user_id = %s",
                                        (uid,)))[0]
                mirror = await self._rows("SELECT follower_id FROM followers WHERE user_id = %s AND bucket = 0",
                                          (uid,))
                result[uid] = (row.follower_count or 0, row.following_count or 0, {r.follower_id for r in mirror})
            return result

        expected = {
            uid: (sum(1 for _, b in edges if b == uid), sum(1 for a, _ in edges if a == uid),
                  {a for a, b in edges if b == uid})
            for uid in self.user_ids
        }
        await eventually(derived, lambda found: found == expected, timeout=SETTLE_TIMEOUT_S, interval=1.0)

    async def comments(self) -> None:
        for comment_ids in self.ledger.comments.values():
            for comment_id in comment_ids:
                rows = await self._rows("SELECT deleted FROM comments WHERE comment_id = %s", (comment_id,))
                assert rows and not rows[0].deleted, f"acknowledged comment {comment_id} is missing or deleted"

        async def counts() -> dict[int, int]:
            result = {}
            for post_id in self.cast.posts:
                row = (await self._rows("SELECT comment_count FROM posts WHERE post_id = %s", (post_id,)))[0]
                result[post_id] = row.comment_count or 0
            return result

        expected = {p: len(self.ledger.comments.get(p, ())) for p in self.cast.posts}
        await eventually(counts, lambda found: found == expected, timeout=SETTLE_TIMEOUT_S, interval=1.0)

    async def uploads(self) -> None:
        author = {}
        for user_id, post_ids in self.ledger.uploads.items():
            for post_id in post_ids:
                author[post_id] = user_id
        viewer = self.cast.users[0]
        for post_id in author:
            async with self.http.get(f"{self.api_url}/v1/posts/{post_id}", headers=viewer.auth) as response:
                assert response.status == 200, f"acknowledged upload {post_id}: {response.status}"
                media = (await response.json())["media"]
            for variant in ("original", "large", "medium", "thumbnail"):
                async with self.http.get(media[variant]["url"]) as response:
                    assert response.status == 200, f"upload {post_id}: its {variant} is missing"

        async def timelines() -> dict[int, tuple[int, set[int], bool]]:
            """Per user: the stored post count, the posts in their timeline, whether each is a post."""
            result = {}
            months = {month_bucket(p) for p in [*self.cast.posts, *author]}
            for uid in self.user_ids:
                row = (await self._rows("SELECT post_count FROM users WHERE user_id = %s", (uid,)))[0]
                listed: set[int] = set()
                for month in months:
                    rows = await self._rows("SELECT post_id FROM posts_by_user WHERE author_id = %s AND bucket = %s",
                                            (uid, month))
                    listed |= {r.post_id for r in rows}
                present = await asyncio.gather(*(self._rows("SELECT author_id FROM posts WHERE post_id = %s", (p,))
                                                 for p in listed))
                result[uid] = (row.post_count or 0, listed, all(rows and rows[0].author_id for rows in present))
            return result

        def settled(found: dict[int, tuple[int, set[int], bool]]) -> bool:
            return all(count == len(listed) and every_post and set(self.ledger.uploads.get(uid, ())) <= listed
                       for uid, (count, listed, every_post) in found.items())

        await eventually(timelines, settled, timeout=SETTLE_TIMEOUT_S, interval=1.0)
        await eventually(self._unsettled_uploads, lambda left: not left, timeout=SETTLE_TIMEOUT_S, interval=1.0)

    async def _unsettled_uploads(self) -> list[int]:
        """Upload records the sweeper has not settled (media_sweep holds an entry for each until it has)."""
        now = current_hour_bucket()
        left = []
        for bucket in (now - 1, now):
            for shard in range(SWEEP_SHARDS):
                rows = await self._rows("SELECT post_id, reason FROM media_sweep WHERE bucket = %s AND shard = %s",
                                        (bucket, shard))
                left += [r.post_id for r in rows if r.reason == "upload"]
        return left
