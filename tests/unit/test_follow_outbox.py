"""A follow's and an unfollow's outbox records without I/O (app/outbox.py): written before the edge, a
recheck of the same event (id and time) the request publishes, cleared once that event is out, and left
for the reconciler when Kafka refuses it."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from app.errors import Unavailable
from app.outbox import Outbox
from app.storage.outbox import Intent
from app.users.service import UserService

FOLLOWER, FOLLOWEE = 10, 20


class FakeOutboxTable:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.records: dict[uuid.UUID, dict] = {}

    async def record(self, topic: str, key: int, payload: bytes) -> Intent:
        assert (topic, key) == ("follows", FOLLOWEE)
        self.log.append("record")
        intent = Intent(1, 0, uuid.uuid4(), 0.0)
        self.records[intent.intent_id] = json.loads(payload)
        return intent

    async def forget(self, bucket: int, shard: int, intent_id: uuid.UUID) -> None:
        self.log.append("forget")
        del self.records[intent_id]


class FakeUsers:
    async def get(self, user_id: int):
        return SimpleNamespace(username=f"user{user_id}", follower_bucket=3)


class FakeFollows:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.edges: dict[tuple[int, int], SimpleNamespace] = {}

    async def claim_edge(self, follower_id, followee_id, at, bucket, max_following):
        self.log.append("claim_edge")
        self.edges[follower_id, followee_id] = SimpleNamespace(follower_bucket=bucket, edge_count=1)
        return bucket

    async def write_mirror(self, followee_id, bucket, follower_id, at) -> None:
        self.log.append("write_mirror")

    async def edge(self, follower_id, followee_id):
        return self.edges.get((follower_id, followee_id))

    async def delete_mirror(self, followee_id, bucket, follower_id) -> None:
        self.log.append("delete_mirror")

    async def delete_edge(self, follower_id, followee_id, edge) -> bool:
        self.log.append("delete_edge")
        return self.edges.pop((follower_id, followee_id), None) is not None


class FakeEvents:
    connected = True

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sent: list = []
        self.refuse = False

    async def publish(self, suffix: str, key: int, event) -> None:
        if self.refuse:
            raise Unavailable("the event log (Kafka) did not accept the event")
        self.log.append(f"publish recheck={event.recheck}")
        self.sent.append(event)


class FakeFeedCache:
    async def forget_author(self, follower_id: int, followee_id: int) -> None:
        pass


def service() -> UserService:
    log: list[str] = []
    return UserService(
        users=FakeUsers(), follows=FakeFollows(log), sessions=None, passwords=None, events=FakeEvents(log),
        feed_cache=FakeFeedCache(), profiles=None, ids=None, cursors=None, max_following=100,
        outbox=Outbox(FakeOutboxTable(log), grace_s=60),
    )


async def test_a_follow_records_a_recheck_of_its_own_event_before_the_edge_and_clears_it_once_published():
    users = service()
    await users.follow(FOLLOWER, FOLLOWEE)
    assert users.events.log == ["record", "claim_edge", "write_mirror", "publish recheck=False", "forget"]
    assert users.outbox.table.records == {}


async def test_a_follow_whose_event_is_refused_leaves_its_recheck_for_the_reconciler():
    users = service()
    users.events.refuse = True
    with pytest.raises(Unavailable):
        await users.follow(FOLLOWER, FOLLOWEE)
    (record,) = users.outbox.table.records.values()
    assert record["recheck"] is True and record["following"] is True
    assert (record["actor_id"], record["followee_id"], record["bucket"]) == (FOLLOWER, FOLLOWEE, 3)
    users.events.refuse = False
    await users.follow(FOLLOWER, FOLLOWEE)  # the client's retry: its own record is cleared, the first stays
    assert len(users.outbox.table.records) == 1
    sent = users.events.sent[-1]
    assert (record["event_id"], record["at_ms"]) != (sent.event_id, sent.at_ms)  # each request its own event


async def test_the_record_is_the_event_published_so_both_land_in_one_notification_window():
    users = service()
    users.events.refuse = True
    with pytest.raises(Unavailable):
        await users.unfollow(FOLLOWER, FOLLOWEE)  # no edge: nothing to record
    assert users.outbox.table.records == {}
    users.events.refuse = False
    await users.follow(FOLLOWER, FOLLOWEE)
    users.events.log.clear()
    outbox_table = users.outbox.table
    recorded: list[dict] = []
    original_forget = outbox_table.forget

    async def keep_then_forget(bucket, shard, intent_id):
        recorded.append(dict(outbox_table.records[intent_id]))
        await original_forget(bucket, shard, intent_id)

    outbox_table.forget = keep_then_forget
    await users.unfollow(FOLLOWER, FOLLOWEE)
    assert users.events.log == ["record", "delete_mirror", "delete_edge", "publish recheck=False", "forget"]
    sent, (record,) = users.events.sent[-1], recorded
    assert (record["event_id"], record["at_ms"], record["following"]) == (sent.event_id, sent.at_ms, False)
