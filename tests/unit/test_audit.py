"""The audit's pure parts: polling until derived values agree, and the checks' verdicts on tables held in memory,
read through the real table owners (`Storage`) prepared on a session that answers from those tables."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from cassandra import ConsistencyLevel, ReadTimeout

from app.wiring import Storage
from loadtest import audit as audit_module
from loadtest.audit import Audit, AuditReport, set_difference
from loadtest.ledger import Ledger


class FakeCass:
    """A session for the table owners: a prepared statement is its CQL, answered from in-memory rows: `tables`
    maps a regex of the statement to a function of its params."""

    def __init__(self, tables: dict[str, object]) -> None:
        self.tables = tables
        self.serial: list[str] = []  # the statements read at LOCAL_SERIAL

    async def prepare(self, cql: str) -> str:
        return cql

    def _answer(self, cql: str, params: tuple) -> list:
        for pattern, answer in self.tables.items():
            if re.search(pattern, cql):
                return [SimpleNamespace(**row) for row in answer(*params)]
        raise AssertionError(f"unexpected read: {cql}")

    async def rows(self, cql, params=None, *, consistency=None):
        if consistency == ConsistencyLevel.LOCAL_SERIAL:
            self.serial.append(cql)
        return self._answer(cql, params)

    async def one(self, cql, params=None):
        found = await self.rows(cql, params)
        return found[0] if found else None

    async def execute(self, cql, params=None, *, fetch_size=None, paging_state=None, consistency=None, **_):
        return SimpleNamespace(current_rows=await self.rows(cql, params, consistency=consistency), paging_state=None)

    async def all_rows(self, cql, params=None, *, fetch_size=1000):
        return await self.rows(cql, params)


async def make_audit(cass, ledger: Ledger | None = None, timeout: float = 0.3) -> Audit:
    return Audit(await Storage.prepare(cass), ledger or Ledger(), settle_timeout_s=timeout, active_readers=None,
                 feed_max_entries=3, story_ttl_s=86400, concurrency=4)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(audit_module, "POLL_INTERVAL_S", 0.01)


def test_a_set_difference_names_what_is_missing_and_what_is_extra():
    assert set_difference("likers", {1, 2}, {1, 2}) == ""
    assert set_difference("likers", {1, 4}, {1, 2, 3}) == "likers lacks [2, 3]; likers has extra [4]"
    assert set_difference("x", set(range(15)), set()).endswith("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9] (+5 more)")


def test_the_summary_lists_counts_and_problems():
    report = AuditReport(["post 1 likes: like_count 2"], {"uploads": 3}, 1.5)
    assert not report.ok
    assert report.summary().splitlines() == [
        "checked: uploads 3", "derived values polled for 1.5 s; 1 problem(s):", "  - post 1 likes: like_count 2"]
    assert AuditReport([], {}, 0.2).summary().endswith("agreed after 0.2 s; no problems")


async def test_polling_runs_again_only_what_disagrees_until_it_agrees():
    calls = {"a": 0, "b": 0}

    async def agrees():
        calls["a"] += 1
        return []

    async def settles_on_the_third_read():
        calls["b"] += 1
        return [] if calls["b"] >= 3 else ["b: not yet"]

    audit = await make_audit(FakeCass({}), timeout=5)
    assert await audit._settle([("a", agrees), ("b", settles_on_the_third_read)], 5, poll=True) == []
    assert calls == {"a": 1, "b": 3}


async def test_what_never_agrees_is_reported_with_its_last_reading_at_the_deadline():
    readings = iter(range(1000))

    async def never():
        return [f"x: reading {next(readings)}"]

    audit = await make_audit(FakeCass({}))
    problems = await audit._settle([("x", never)], 0.05, poll=True)
    assert len(problems) == 1 and problems[0].startswith("x: reading ") and problems[0] != "x: reading 0"


async def test_presence_is_read_once_and_a_failed_read_is_tried_again():
    calls = {"wrong": 0, "flaky": 0}

    async def wrong():
        calls["wrong"] += 1
        return ["wrong: acknowledged liked, the edge says not liked"]

    async def flaky():
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ReadTimeout("busy")
        return []

    audit = await make_audit(FakeCass({}), timeout=5)
    problems = await audit._settle([("w", wrong), ("f", flaky)], 5, poll=False)
    assert problems == ["wrong: acknowledged liked, the edge says not liked"]
    assert calls == {"wrong": 1, "flaky": 2}


def post_row(post_id: int, like_count: int) -> dict:
    """The `posts` row a like reads (PostRepository.like_state)."""
    return {"post_id": post_id, "author_id": 99, "like_count": like_count, "like_bucket": 0}


def like_row(liked: bool) -> dict:
    """A `likes` row (LikeRepository.state): an unlike keeps its row, with `liked_at` null."""
    return {"liked_at": 1 if liked else None, "bucket": None, "buckets": {0}, "changed_us": 1}


def likes_world(edges: dict[int, bool], likers: list[int], like_count: int) -> FakeCass:
    return FakeCass({
        r"FROM posts WHERE": lambda post: [post_row(post, like_count)],
        r"FROM post_like_buckets": lambda post: [{"bucket": 0, "n": len(likers)}],
        # a bucket whose members were all removed keeps its static count: one row without a member
        r"FROM post_likers": lambda post, bucket, limit: [{"member": u} for u in likers] + [{"member": None}],
        r"FROM likes WHERE": lambda user, month, post: [like_row(edges[user])],
    })


async def test_a_like_count_agrees_with_the_edges_of_the_named_and_the_ledger_users():
    ledger = Ledger(likes={(3, 10): None})  # a ledger user whose like is unknown: the edge decides
    cass = likes_world({1: True, 2: True, 3: False}, [1, 2], 2)
    assert await (await make_audit(cass, ledger)).like_count(10) == []
    cass = likes_world({1: True, 2: True, 3: True}, [1, 2], 2)
    assert await (await make_audit(cass, ledger)).like_count(10) == [
        "post 10 likes: like_count 2, 2 post_likers rows, 3 like edges among 3 users read, post_likers lacks [3]"]


async def test_a_like_state_is_read_at_the_sessions_level_and_a_follow_at_local_serial():
    cass = FakeCass({
        r"FROM likes WHERE": lambda user, month, post: [like_row(False)],  # an unlike keeps its row
        r"FROM following WHERE": lambda a, b: [{"followee_id": b}],
    })
    audit = await make_audit(cass)
    assert await audit.like_state(1, 10, True) == [
        "like of post 10 by user 1: acknowledged liked, the edge says not liked"]
    assert await audit.like_state(1, 10, False) == []
    assert await audit.follow_state(1, 2, False) == [
        "follow of user 2 by user 1: acknowledged not following, the edge says following"]
    assert cass.serial and all("FROM following" in cql for cql in cass.serial)


async def test_a_trimmed_feed_entry_is_not_reported_but_a_missing_one_is():
    feeds = {5: [103, 102, 101, 99], 6: [101, 99, 98]}  # newest first; 6 holds only one post newer than 100
    cass = FakeCass({
        r"FROM feed_items WHERE user_id = \? AND post_id = \?$": lambda reader, post: [],
        r"FROM feed_items WHERE user_id = \? LIMIT \?": lambda reader, limit: [
            {"post_id": p, "author_id": 1} for p in feeds[reader][:limit]],
    })
    audit = await make_audit(cass)
    assert await audit.feed_entry(5, 100) == []  # three newer entries: the feed keeps 3, trimmed by design
    assert await audit.feed_entry(6, 100) == ["feed of user 6: lacks post 100 of a followed author (1 newer entries)"]


async def test_an_authors_own_view_and_an_expired_story_are_not_claimed():
    cass = FakeCass({
        r"FROM stories_by_id": lambda story: [
            {"story_id": story, "author_id": 7, "expires_at": None, "view_bucket": 0}] if story == 1 else [],
        r"FROM story_views": lambda story, viewer: [],
    })
    audit = await make_audit(cass)
    assert await audit.view_exists(1, 7) == []
    assert await audit.view_exists(2, 8) == [] and audit.checked["views of expired stories, skipped"] == 1
    assert await audit.view_exists(1, 8) == ["view of story 1 by user 8: acknowledged, no story_views row"]
    assert cass.serial and all("FROM story_views" in cql for cql in cass.serial)  # a claim: read at LOCAL_SERIAL


def test_the_command_refuses_an_empty_ledger_without_connecting(tmp_path, capsys):
    assert audit_module.main(["--ledger", str(tmp_path)]) == 1
    assert "no records: nothing was audited" in capsys.readouterr().out


async def test_an_edge_undone_while_the_derived_values_settle_is_reported():
    reads = iter([True, True, False])  # the like holds for presence and the count, then a worker undoes it
    cass = FakeCass({
        r"FROM posts WHERE": lambda post: [post_row(post, 1)],
        r"FROM post_like_buckets": lambda post: [{"bucket": 0, "n": 1}],
        r"FROM post_likers": lambda post, bucket, limit: [{"member": 1}],
        r"FROM likes WHERE": lambda user, month, post: [like_row(next(reads))],
    })
    report = await (await make_audit(cass, Ledger(likes={(1, 10): True}))).run()
    assert report.problems == ["after settling: like of post 10 by user 1: acknowledged liked, the edge says not liked"]
    assert report.checked["like states"] == 1 and report.checked["posts' like counts"] == 1


async def test_feeds_are_demanded_of_active_readers_only_and_of_none_when_redis_cannot_say():
    from loadtest.ledger import Upload

    ledger = Ledger(follow_since={(5, 1): 1.0, (6, 1): 1.0, (7, 1): 9.0}, uploads={100: Upload(100, 1, (), 5.0)},
                    follows={(5, 1): True, (6, 1): True, (7, 1): True})
    # the mirror names 5 (the run's own follow), 8 (a follow from before the run: the seeded graph) and 9, whose
    # `following` edge is gone (a mirror row the truth does not confirm is nobody's feed)
    cass = FakeCass({
        r"FROM celebrities": lambda user: [],
        r"FROM follower_buckets": lambda user: [{"bucket": 0, "n": 3}],
        r"FROM followers WHERE": lambda user, bucket, after, limit: [{"follower_id": f} for f in (5, 8, 9)
                                                                     if f > after],
        r"FROM following WHERE user_id = \? AND followee_id = \?": lambda follower, followee: (
            [{"follower_bucket": 0, "followed_at": None, "edge_count": 1}] if follower in (5, 6, 7, 8) else []),
    })

    async def only_5_and_8(readers):
        return {r for r in readers if r in (5, 8)}

    async def redis_down(readers):
        return None

    audit = await make_audit(cass, ledger)
    audit.active_readers = only_5_and_8
    # 7 followed after the upload; 6 is not active; 9's mirror row is not an edge
    assert [name for name, _ in await audit.feed_checks()] == ["feed 5 post 100", "feed 8 post 100"]
    assert audit.checked["feed entries of inactive readers, skipped"] == 1
    audit = await make_audit(cass, ledger)
    audit.active_readers = redis_down
    assert await audit.feed_checks() == []
    assert audit.checked["feed entries, reader activity unknown (Redis), skipped"] == 3


async def test_a_serial_read_defeated_by_contention_is_tried_again(monkeypatch):
    monkeypatch.setattr(audit_module.random, "uniform", lambda low, high: 0.0)  # no pause between attempts
    failures = iter([ReadTimeout("contended"), None])

    def following(follower, followee):
        failure = next(failures)
        if failure is not None:
            raise failure
        return [{"followee_id": followee}]

    cass = FakeCass({r"FROM following WHERE": following})
    audit = await make_audit(cass)
    assert await audit.follow_state(1, 2, True) == []
    assert len(cass.serial) == 2 and all("FROM following" in cql for cql in cass.serial)
