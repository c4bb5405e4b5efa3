"""The load audit (loadtest/audit.py) against the dev stack: real writes through the API, recorded in a ledger as
a Locust user records them, audited clean; then Cassandra changed behind the API's back (or a ledger claiming
what never happened), and each family of checks reports it."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.ids import hour_bucket
from loadtest.audit import AuditReport, audit
from loadtest.ledger import LedgerWriter, read_ledger
from tests.e2e.client.feed import active_reader
from tests.e2e.client.posts import SMALL_PHOTO, form
from tests.e2e.client.stories import story_form
from tests.e2e.client.users import Account, register

pytestmark = pytest.mark.usefixtures("streams_worker")

ROOT = Path(__file__).resolve().parents[2]
SETTLE_S = 60.0  # what the workers get to catch up in the clean audits
TAMPERED_SETTLE_S = 3.0  # a tampered value never settles: keep the failing audits short


class Recorder:
    """One account's write requests, each recorded in the ledger as PhotosUser records it."""

    def __init__(self, http, api_url: str, writer: LedgerWriter, account: Account) -> None:
        self.http, self.api_url, self.writer, self.account = http, api_url, writer, account
        self.id = int(account.id)

    async def _send(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        async with self.http.request(method, f"{self.api_url}{path}", headers=self.account.auth, **kwargs) as r:
            body = await r.json() if r.content_type == "application/json" else {}
            return r.status, body

    async def like(self, post_id: int, wanted: bool = True, *, answer_lost: bool = False) -> None:
        """`answer_lost`: the request is sent, but recorded as a client that never got the answer records it."""
        status, body = await self._send("PUT" if wanted else "DELETE", f"/v1/posts/{post_id}/like")
        assert status == 200, body
        if answer_lost:
            self.writer.like(self.id, post_id, wanted, 0, None)
        else:
            self.writer.like(self.id, post_id, wanted, status, body.get("liked"))

    async def follow(self, target: Recorder, wanted: bool = True) -> None:
        status, body = await self._send("PUT" if wanted else "DELETE", f"/v1/users/{target.id}/follow")
        assert status == 204, body
        self.writer.follow(self.id, target.id, wanted, status)

    async def comment(self, post_id: int) -> int:
        status, body = await self._send("POST", f"/v1/posts/{post_id}/comments", json={"text": "audited"})
        assert status == 201, body
        self.writer.comment(self.id, post_id, status, body["id"])
        return int(body["id"])

    async def upload(self, tag: str) -> int:
        status, body = await self._send("POST", "/v1/posts", data=form(SMALL_PHOTO, caption=f"out today #{tag}"))
        assert status == 201, body
        self.writer.upload(self.id, status, body["id"], [tag])
        return int(body["id"])

    async def story(self) -> int:
        status, body = await self._send("POST", "/v1/stories", data=story_form(SMALL_PHOTO))
        assert status == 201, body
        self.writer.story(self.id, status, body["id"])
        return int(body["id"])

    async def view(self, story_id: int) -> None:
        status, body = await self._send("PUT", f"/v1/stories/{story_id}/view")
        assert status == 204, body
        self.writer.view(self.id, story_id, status)


@dataclass
class World:
    """What one scenario made: the ledger's directory and the ids the tests tamper with."""

    ledger_dir: Path
    author: Recorder
    fans: list[Recorder]  # the author's stable followers, active readers
    seeded_post: int  # published before the run, liked by an account outside the ledger
    upload: int
    tag: str
    comment: int
    story: int


async def make_world(http, api_url, tmp_path: Path) -> World:
    """A small run: follows (one undone, one by a reader who never opens the feed), likes (one unlike, one
    whose answer was lost), a comment, an upload with a hashtag, a story and views (the author's own too)."""
    writer = LedgerWriter(tmp_path / "ledger")
    outsider = await register(http, api_url)  # the open world: not in the ledger
    accounts = [await register(http, api_url), *[await active_reader(http, api_url) for _ in range(3)],
                await register(http, api_url)]  # the last never opens the feed: fan-out skips it
    author, fan1, fan2, fickle, away = (Recorder(http, api_url, writer, a) for a in accounts)
    async with http.post(f"{api_url}/v1/posts", data=form(SMALL_PHOTO), headers=author.account.auth) as response:
        seeded_post = int((await response.json())["id"])
    async with http.put(f"{api_url}/v1/posts/{seeded_post}/like", headers=outsider.auth) as response:
        assert response.status == 200

    await fan1.follow(author)
    await fan2.follow(author)
    await away.follow(author)
    # the undone follow is of a fan, not of the author: a fourth follower would make the author a celebrity for a
    # moment (the session's threshold is 4) and its feeds pulled, which the audit would then not demand
    await fickle.follow(fan1)
    await fickle.follow(fan1, wanted=False)
    await fan1.like(seeded_post)
    await fan2.like(seeded_post)
    await fan2.like(seeded_post, wanted=False)
    await fickle.like(seeded_post, answer_lost=True)
    comment = await fan1.comment(seeded_post)
    tag = f"audit_{uuid.uuid4().hex[:10]}"
    upload = await author.upload(tag.upper())  # the ledger keeps it as the API does: lower-cased
    story = await author.story()
    await fan1.view(story)
    await author.view(story)  # an author's own view is not counted
    writer.close()
    return World(tmp_path / "ledger", author, [fan1, fan2], seeded_post, upload, tag, comment, story)


@pytest.fixture
async def world(http, api_url, tmp_path) -> World:
    return await make_world(http, api_url, tmp_path)


async def run_audit(storage, settings, world: World, settle: float) -> AuditReport:
    return await audit(storage, read_ledger(world.ledger_dir), settle, settings=settings)


async def clean(storage, world: World) -> AuditReport:
    """The audit as loadtest.chaos calls it: the stack's settings (and Redis) from the environment."""
    report = await audit(storage, read_ledger(world.ledger_dir), SETTLE_S)
    assert report.problems == []
    return report


def has(report: AuditReport, *fragments: str) -> bool:
    return any(all(f in problem for f in fragments) for problem in report.problems)


async def test_a_run_recorded_as_the_load_records_it_audits_clean(cass, storage, world):
    ledger = read_ledger(world.ledger_dir)
    assert ledger.likes[world.fans[0].id, world.seeded_post] is True
    assert [state for (_, post), state in ledger.likes.items() if post == world.seeded_post].count(None) == 1
    assert ledger.uploads[world.upload].hashtags == (world.tag,)

    report = await clean(storage, world)
    assert report.checked["like states"] == 2 and report.checked["follow states"] == 4
    assert report.checked["comments"] == 1 and report.checked["uploads"] == 1
    assert report.checked["stories"] == 1 and report.checked["views"] == 2
    assert report.checked["posts' like counts"] == 1 and report.checked["users' follow counts"] == 5
    assert report.checked["hashtags"] == 1 and report.checked["stories' view counts"] == 1
    assert report.checked["feed entries"] == 2 and report.checked["tray entries"] == 3
    assert report.checked["feed entries of inactive readers, skipped"] == 1  # by the stack's Redis
    assert 0 <= report.converged_after_s < SETTLE_S
    # the like count holds the outsider's like and the one whose answer was lost: read from the truth
    row = await cass.one("SELECT like_count FROM posts WHERE post_id = %s", (world.seeded_post,))
    assert row.like_count == 3

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadtest.audit", "--ledger", str(world.ledger_dir), "--settle-timeout", "30",
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 0, output
    assert "no problems" in output and "feed entries 2" in output


async def test_an_acknowledged_like_or_comment_that_never_happened_is_reported(
        http, api_url, storage, settings, world):
    writer = LedgerWriter(world.ledger_dir)
    stranger = int((await register(http, api_url)).id)
    writer.like(stranger, world.seeded_post, True, 200, True)  # claimed, never sent
    writer.comment(stranger, world.seeded_post, 201, world.comment + 1)  # no such comment
    writer.close()
    report = await run_audit(storage, settings, world, TAMPERED_SETTLE_S)
    assert has(report, f"like of post {world.seeded_post} by user {stranger}", "acknowledged liked",
               "edge says not liked")
    assert has(report, f"comment {world.comment + 1} on post {world.seeded_post}", "no comments row")
    assert has(report, f"post {world.seeded_post} comments", f"not counted [{world.comment + 1}]")


async def test_a_follow_edge_deleted_behind_the_api_is_reported(cass, storage, settings, world):
    await clean(storage, world)
    fan, author = world.fans[0].id, world.author.id
    await cass.execute("DELETE FROM following WHERE user_id = %s AND followee_id = %s", (fan, author))
    report = await run_audit(storage, settings, world, TAMPERED_SETTLE_S)
    assert has(report, f"follow of user {author} by user {fan}", "acknowledged following", "says not following")
    assert has(report, f"user {author} followers", f"followers has extra [{fan}]")


async def test_tampered_counts_are_reported(cass, storage, settings, world):
    await clean(storage, world)
    author = world.author.id
    await asyncio.gather(
        cass.execute("UPDATE posts SET like_count = 7, comment_count = 5 WHERE post_id = %s", (world.seeded_post,)),
        cass.execute("UPDATE users SET post_count = 9, following_count = 3 WHERE user_id = %s", (author,)),
        cass.execute("UPDATE hashtags SET post_count = 4 WHERE tag = %s", (world.tag,)),
        cass.execute("UPDATE stories SET view_count = 6 WHERE author_id = %s AND story_id = %s",
                     (author, world.story)),
    )
    report = await run_audit(storage, settings, world, TAMPERED_SETTLE_S)
    assert has(report, f"post {world.seeded_post} likes: like_count 7", "3 post_likers rows", "3 like edges")
    assert has(report, f"post {world.seeded_post} comments: comment_count 5", "1 post_live_comments rows")
    assert has(report, f"user {author} posts: post_count 9", "2 posts_by_user rows")
    assert has(report, f"user {author} following: following_count 3, 0 following rows")
    assert has(report, f"hashtag {world.tag}: post_count 4, 1 posts_by_hashtag rows")
    assert has(report, f"story {world.story} views: view_count 6", "1 story_viewers rows", "1 story_views")
    assert len(report.problems) == 6, report.problems
    assert report.converged_after_s >= TAMPERED_SETTLE_S


async def test_derived_rows_removed_behind_the_api_are_reported(cass, storage, settings, world):
    await clean(storage, world)
    fan1, fan2 = (fan.id for fan in world.fans)
    author = world.author.id
    likers = await cass.rows("SELECT bucket FROM post_like_buckets WHERE post_id = %s", (world.seeded_post,))
    await asyncio.gather(
        cass.execute("DELETE FROM post_likers WHERE post_id = %s AND bucket = %s AND user_id = %s",
                     (world.seeded_post, likers[0].bucket, fan1)),
        cass.execute("DELETE FROM feed_items WHERE user_id = %s AND post_id = %s", (fan1, world.upload)),
        cass.execute("DELETE FROM story_tray WHERE reader_id = %s AND author_id = %s", (fan2, author)),
        cass.execute("DELETE FROM posts_by_hashtag WHERE tag = %s AND bucket = %s AND post_id = %s",
                     (world.tag, hour_bucket(world.upload), world.upload)),
        cass.execute("DELETE FROM story_views WHERE story_id = %s AND viewer_id = %s", (world.story, fan1)),
    )
    report = await run_audit(storage, settings, world, TAMPERED_SETTLE_S)
    assert has(report, f"post {world.seeded_post} likes", f"post_likers lacks [{fan1}]")
    assert has(report, f"feed of user {fan1}: lacks post {world.upload}")
    assert has(report, f"tray of user {fan2}: lacks story {world.story} of followed author {author}")
    assert has(report, f"hashtag {world.tag}: upload {world.upload} not in posts_by_hashtag")
    assert has(report, f"view of story {world.story} by user {fan1}", "no story_views row")
    assert has(report, f"story {world.story} views", f"story_viewers has extra [{fan1}]")
