"""Comments over HTTP with the real worker: nesting, paging, deletion rights and semantics, bad input,
Idempotency-Key, exact counts under concurrency and duplicates, and Kafka down."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from app.events import CommentChanged, EventPublisher, new_event_fields
from app.settings import Settings
from infra.procs import free_port
from tests.e2e.client.comments import (
    comment,
    comment_count,
    delete_comment,
    replies,
    reply_counts,
    top_level,
    try_comment,
)
from tests.e2e.client.common import expect_error
from tests.e2e.client.posts import SMALL_PHOTO, get_post, post, publish
from tests.e2e.client.users import register
from tests.e2e.processes import start_api
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")


async def test_a_comment_is_answered_listed_and_counted_with_its_mentions(http, api_url):
    author, fan = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, author)
    text = f"love it @{author.username} and @Nobody_1. @{author.username}"
    created = await comment(http, api_url, fan, post_id, f"  {text}\n")
    assert created["post_id"] == post_id and created["parent_id"] is None
    assert created["author"] == {"id": fan.id, "username": fan.username}
    assert created["text"] == text  # surrounding white space trimmed
    assert created["mentions"] == [author.username, "nobody_1"]
    assert created["reply_count"] == 0 and created["deleted"] is False
    assert created["created_at"].endswith("Z")
    assert await top_level(http, api_url, author, post_id) == [created]
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 1)


async def test_replies_nest_one_level_and_a_reply_to_a_reply_joins_its_thread(http, api_url):
    author, fan, other = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    post_id = await post(http, api_url, author)
    top = await comment(http, api_url, fan, post_id, "first")
    reply = await comment(http, api_url, other, post_id, "a reply", parent_id=top["id"])
    nested = await comment(http, api_url, fan, post_id, f"@{other.username} back", parent_id=reply["id"])
    assert reply["parent_id"] == top["id"]
    assert nested["parent_id"] == top["id"]  # attached to the thread, not under the reply
    assert [c["id"] for c in await top_level(http, api_url, author, post_id)] == [top["id"]]
    assert [c["id"] for c in await replies(http, api_url, author, top["id"])] == [nested["id"], reply["id"]]
    assert await replies(http, api_url, author, reply["id"]) == []  # a reply has no replies of its own
    # comment_count counts every live comment, replies included
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 3)
    await eventually(lambda: reply_counts(http, api_url, author, post_id), lambda c: c == {top["id"]: 2})


async def test_top_level_comments_page_newest_first_and_cursors_neither_repeat_nor_skip(http, api_url):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    made = [(await comment(http, api_url, author, post_id, f"comment {i}"))["id"] for i in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        pages += 1
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}/v1/posts/{post_id}/comments", params=params, headers=author.auth) as r:
            assert r.status == 200
            page = await r.json()
        assert len(page["items"]) <= 3
        seen += [c["id"] for c in page["items"]]
        await comment(http, api_url, author, post_id, "arrives between pages")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]  # newest first, each once, none of the later arrivals
    assert pages == 3
    assert len(await top_level(http, api_url, author, post_id)) == 7 + pages


async def test_replies_page_newest_first_and_cursors_neither_repeat_nor_skip(http, api_url):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    top = await comment(http, api_url, author, post_id)
    made = [(await comment(http, api_url, author, post_id, f"r{i}", parent_id=top["id"]))["id"] for i in range(5)]
    async with http.get(f"{api_url}/v1/comments/{top['id']}/replies", params={"limit": "2"}, headers=author.auth) as r:
        first = await r.json()
    await comment(http, api_url, author, post_id, "late", parent_id=top["id"])
    async with http.get(
        f"{api_url}/v1/comments/{top['id']}/replies", params={"limit": "10", "cursor": first["next_cursor"]},
        headers=author.auth,
    ) as r:
        rest = await r.json()
    assert [c["id"] for c in first["items"] + rest["items"]] == made[::-1]
    assert rest["next_cursor"] is None


async def test_only_the_comment_author_or_the_post_author_may_delete(http, api_url):
    author, fan, stranger = await asyncio.gather(*(register(http, api_url) for _ in range(3)))
    post_id = await post(http, api_url, author)
    mine, theirs = await comment(http, api_url, fan, post_id, "one"), await comment(http, api_url, fan, post_id, "two")
    async with http.delete(f"{api_url}/v1/comments/{mine['id']}", headers=stranger.auth) as response:
        await expect_error(response, 403, "not_comment_author")
    assert {c["id"] for c in await top_level(http, api_url, stranger, post_id)} == {mine["id"], theirs["id"]}
    assert await delete_comment(http, api_url, fan, mine["id"]) == 204  # its author
    assert await delete_comment(http, api_url, author, theirs["id"]) == 204  # the post's author
    assert await delete_comment(http, api_url, fan, mine["id"]) == 204  # a retry: already deleted
    assert await delete_comment(http, api_url, stranger, mine["id"]) == 403  # still not theirs
    assert await top_level(http, api_url, stranger, post_id) == []
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 0)
    async with http.delete(f"{api_url}/v1/comments/{int(mine['id']) + 1}", headers=fan.auth) as response:
        await expect_error(response, 404, "comment_not_found")
    async with http.delete(f"{api_url}/v1/comments/not-an-id", headers=fan.auth) as response:
        await expect_error(response, 404, "comment_not_found")


async def test_a_deleted_comment_with_replies_stays_as_deleted_until_its_last_reply_goes(http, api_url):
    author, fan = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, author)
    lonely = await comment(http, api_url, fan, post_id, "no replies")
    thread = await comment(http, api_url, fan, post_id, "with replies @someone")
    answers = [await comment(http, api_url, author, post_id, f"a{i}", parent_id=thread["id"]) for i in range(2)]
    await eventually(lambda: reply_counts(http, api_url, fan, post_id), lambda c: c[thread["id"]] == 2)

    assert await delete_comment(http, api_url, fan, thread["id"]) == 204
    assert await delete_comment(http, api_url, fan, lonely["id"]) == 204
    listed = await top_level(http, api_url, fan, post_id)
    assert [c["id"] for c in listed] == [thread["id"]]  # the one without replies is gone at once
    async with http.get(f"{api_url}/v1/comments/{lonely['id']}/replies", headers=fan.auth) as response:
        await expect_error(response, 404, "comment_not_found")  # and so are its replies (schemathesis's use_after_free)
    assert listed[0] == thread | {"deleted": True, "author": None, "text": "", "mentions": [], "reply_count": 2}
    assert [c["id"] for c in await replies(http, api_url, fan, thread["id"])] == [a["id"] for a in answers[::-1]]
    status, body = await try_comment(http, api_url, fan, post_id, "too late", parent_id=thread["id"])
    assert (status, body["error"]["code"]) == (409, "parent_deleted")
    # replying to a live reply under the deleted comment still joins the thread
    late = await comment(http, api_url, fan, post_id, "still here", parent_id=answers[0]["id"])
    assert late["parent_id"] == thread["id"]
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 3)

    for reply in [*answers, late]:
        assert await delete_comment(http, api_url, author, reply["id"]) == 204  # the post's author
    assert await replies(http, api_url, fan, thread["id"]) == []
    await eventually(lambda: top_level(http, api_url, fan, post_id), lambda items: items == [])
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "empty_comment"),
        ({"text": " \n\t "}, 422, "empty_comment"),
        ({"text": "LONGER THAN THE LIMIT"}, 422, "comment_too_long"),
        ({"text": "bell\x07"}, 422, "control_characters"),
        ({"text": "right\u202eleft"}, 422, "control_characters"),
        ({"text": "isolate\u2066d\u2069"}, 422, "control_characters"),
        ({"text": "zero\u200bwidth"}, 422, "control_characters"),
        ({"text": 42}, 422, "wrong_type"),
        ({}, 422, "missing_field"),
        ({"text": "hi", "author_id": "1"}, 422, "unknown_field"),
        ({"text": "hi", "parent_id": 12}, 422, "wrong_type"),
        ({"text": "hi", "parent_id": "not-an-id"}, 422, "validation_failed"),
        ({"text": "hi", "parent_id": "123456789"}, 409, "parent_not_found"),
        ({"text": "hi", "parent_id": "0"}, 409, "parent_not_found"),
    ],
)
async def test_bad_comments_are_refused_and_change_nothing(http, api_url, settings, body, status, code):
    if body.get("text") == "LONGER THAN THE LIMIT":
        body = {"text": "x" * (settings.max_comment_length + 1)}
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    async with http.post(f"{api_url}/v1/posts/{post_id}/comments", json=body, headers=author.auth) as response:
        await expect_error(response, status, code)
    await assert_only_this_comment_lands(http, api_url, author, post_id)


async def assert_only_this_comment_lands(http, api_url, author, post_id) -> None:
    """A good comment is then the post's only one, listed and counted."""
    good = await comment(http, api_url, author, post_id, "the only one")
    assert await top_level(http, api_url, author, post_id) == [good]
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 1)


async def test_a_comment_of_exactly_the_longest_length_is_taken(http, api_url, settings):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    created = await comment(http, api_url, author, post_id, "é" * settings.max_comment_length)
    assert len(created["text"]) == settings.max_comment_length


async def test_a_parent_on_another_post_is_refused(http, api_url):
    author = await register(http, api_url)
    post_id, other_post = await post(http, api_url, author), await post(http, api_url, author)
    elsewhere = await comment(http, api_url, author, other_post, "over there")
    status, body = await try_comment(http, api_url, author, post_id, "hi", parent_id=elsewhere["id"])
    assert (status, body["error"]["code"]) == (409, "parent_on_other_post")
    await assert_only_this_comment_lands(http, api_url, author, post_id)
    assert await replies(http, api_url, author, elsewhere["id"]) == []


async def test_commenting_on_a_missing_or_deleted_post_is_404(http, api_url):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    kept = await comment(http, api_url, author, post_id)
    async with http.delete(f"{api_url}/v1/posts/{post_id}", headers=author.auth) as response:
        assert response.status == 204
    for missing in (post_id, str(int(post_id) + 1), "x1"):
        status, body = await try_comment(http, api_url, author, missing)
        assert (status, body["error"]["code"]) == (404, "post_not_found")
        async with http.get(f"{api_url}/v1/posts/{missing}/comments", headers=author.auth) as response:
            await expect_error(response, 404, "post_not_found")
    # the comments of a deleted post went with it
    async with http.get(f"{api_url}/v1/comments/{kept['id']}/replies", headers=author.auth) as response:
        await expect_error(response, 404, "comment_not_found")
    assert await delete_comment(http, api_url, author, kept["id"]) == 404


async def test_bodies_that_are_not_json_objects_are_refused(http, api_url):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    url = f"{api_url}/v1/posts/{post_id}/comments"
    async with http.post(url, data="text=hi", headers=author.auth) as response:
        await expect_error(response, 415)
    async with http.post(url, data='{"text": ', headers=author.auth | {"Content-Type": "application/json"}) as r:
        await expect_error(r, 400, "invalid_json")
    async with http.post(url, json=["hi"], headers=author.auth) as response:
        await expect_error(response, 422)
    async with http.post(url, json={"text": "hi"}) as response:
        await expect_error(response, 401)
    await assert_only_this_comment_lands(http, api_url, author, post_id)


async def test_lists_refuse_bad_limits_and_foreign_cursors(http, api_url):
    author = await register(http, api_url)
    post_id, other_post = await post(http, api_url, author), await post(http, api_url, author)
    for _ in range(3):
        await comment(http, api_url, author, other_post)
    async with http.get(f"{api_url}/v1/posts/{other_post}/comments", params={"limit": "1"}, headers=author.auth) as r:
        foreign = (await r.json())["next_cursor"]
    assert foreign
    for params in ({"limit": "0"}, {"limit": "101"}, {"cursor": "garbage"}, {"cursor": foreign}):
        async with http.get(f"{api_url}/v1/posts/{post_id}/comments", params=params, headers=author.auth) as r:
            await expect_error(r, 400)
    async with http.get(f"{api_url}/v1/comments/123456789/replies", headers=author.auth) as response:
        await expect_error(response, 404, "comment_not_found")


async def test_an_idempotency_key_creates_one_comment_however_often_it_is_sent(http, api_url):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    key = uuid.uuid4().hex
    first = await comment(http, api_url, author, post_id, "once", key=key)
    again = await comment(http, api_url, author, post_id, "once", key=key)  # a client retry
    assert again == first
    results = await asyncio.gather(*(try_comment(http, api_url, author, post_id, "twice", key=f"{key}-2")
                                     for _ in range(6)))  # retries racing each other
    created = {body["id"] for status, body in results if status == 201}
    assert len(created) == 1 and all(status in (201, 409) for status, _ in results)
    listed = await top_level(http, api_url, author, post_id)
    assert sorted(c["id"] for c in listed) == sorted([first["id"], *created])
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 2)


async def test_an_idempotency_key_sent_again_with_another_comment_is_refused(http, api_url):
    author = await register(http, api_url)
    post_id, other_post_id = await post(http, api_url, author), await post(http, api_url, author)
    key = uuid.uuid4().hex
    first = await comment(http, api_url, author, post_id, "the first text", key=key)
    for text, on in (("another text", post_id), ("the first text", other_post_id)):
        status, body = await try_comment(http, api_url, author, on, text, key=key)
        assert status == 422, body  # not the first comment, answered as if it were this one
        assert body["error"]["code"] == "idempotency_key_reused"
    assert await comment(http, api_url, author, post_id, "the first text", key=key) == first
    assert [c["id"] for c in await top_level(http, api_url, author, post_id)] == [first["id"]]
    assert await top_level(http, api_url, author, other_post_id) == []


async def test_an_idempotency_key_of_a_post_does_not_answer_a_comment(http, api_url):
    author = await register(http, api_url)
    key = uuid.uuid4().hex
    created = await publish(http, api_url, author, image=SMALL_PHOTO, headers={"Idempotency-Key": key})
    reply = await comment(http, api_url, author, created["id"], "same key, other kind", key=key)
    assert reply["post_id"] == created["id"] and reply["text"] == "same key, other kind"
    again = await publish(http, api_url, author, image=SMALL_PHOTO, headers={"Idempotency-Key": key})
    assert again["id"] == created["id"]  # the post's own retry still answers the first post


async def republish(settings: Settings, events: list[CommentChanged]) -> None:
    """Deliver events a second time, as Kafka does after a crash (new event ids, same facts)."""
    publisher = EventPublisher(settings)
    await publisher.start()

    async def connected() -> bool:
        return publisher.connected

    try:
        await eventually(connected, bool, timeout=30)
        for event in events:
            await publisher.publish("comments", event.post_id, event)
    finally:
        await publisher.stop()


async def test_counts_are_exact_after_concurrent_creates_deletes_retries_and_duplicate_events(
    http, api_url, settings
):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(6)))
    post_id = await post(http, api_url, author)
    rng = random.Random(3)
    made: dict[str, dict] = {}  # comment id -> comment
    gone: set[str] = set()

    async def play(fan, rounds: int) -> None:
        for _ in range(rounds):
            roll = rng.random()
            mine = [c for c in made.values() if c["author"]["id"] == fan.id and c["id"] not in gone]
            if roll < 0.25 and mine:
                victim = rng.choice(mine)
                gone.add(victim["id"])
                statuses = await asyncio.gather(*(delete_comment(http, api_url, fan, victim["id"]) for _ in range(2)))
                assert statuses == [204, 204]  # a delete racing its own retry
            else:
                tops = [c for c in made.values() if c["parent_id"] is None and c["id"] not in gone]
                parent = rng.choice(tops)["id"] if tops and roll < 0.55 else None
                key = uuid.uuid4().hex
                first, retry = await asyncio.gather(
                    try_comment(http, api_url, fan, post_id, "hey", parent, key),
                    try_comment(http, api_url, fan, post_id, "hey", parent, key),
                )
                created = [body for status, body in (first, retry) if status == 201]
                refused = {body["error"]["code"] for status, body in (first, retry) if status != 201}
                if not created and parent and "parent_deleted" in refused:
                    continue  # its author deleted the parent meanwhile
                assert created and all(body["id"] == created[0]["id"] for body in created), (first, retry)
                made[created[0]["id"]] = created[0]

    await asyncio.gather(*(play(fan, 25) for fan in fans))
    live = {cid: c for cid, c in made.items() if cid not in gone}
    duplicates = [
        CommentChanged(**new_event_fields(1), post_id=int(post_id), post_author_id=int(author.id), comment_id=int(cid),
                       parent_id=None if c["parent_id"] is None else int(c["parent_id"]), parent_author_id=None,
                       mentions=[], created=cid not in gone)
        for cid, c in list(made.items())[:40]
    ]
    await republish(settings, duplicates)
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == len(live), timeout=60)
    expected_replies = {
        cid: sum(1 for r in live.values() if r["parent_id"] == cid)
        for cid, c in made.items() if c["parent_id"] is None
    }
    listed_expected = {cid: n for cid, n in expected_replies.items() if cid not in gone or n > 0}
    await eventually(lambda: reply_counts(http, api_url, author, post_id), lambda c: c == listed_expected, timeout=60)
    listed_replies = {r["id"] for cid in listed_expected for r in await replies(http, api_url, author, cid)}
    assert listed_replies == {cid for cid, c in live.items() if c["parent_id"] is not None}
    assert len(gone) > 5 and len(live) > 40


@pytest.fixture(scope="module")
def api_without_kafka(migrated):
    process, url = start_api("api-comments-no-kafka", {"PHOTOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"})
    yield url
    process.stop()


async def test_with_kafka_down_comments_and_deletes_are_503_and_change_nothing(http, api_url, api_without_kafka):
    author = await register(http, api_url)
    post_id = await post(http, api_url, author)
    kept = await comment(http, api_url, author, post_id, "before the outage")
    async with http.post(
        f"{api_without_kafka}/v1/posts/{post_id}/comments", json={"text": "lost?"}, headers=author.auth
    ) as response:
        await expect_error(response, 503, "service_unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    async with http.delete(f"{api_without_kafka}/v1/comments/{kept['id']}", headers=author.auth) as response:
        await expect_error(response, 503, "service_unavailable")
    async with http.get(f"{api_without_kafka}/v1/posts/{post_id}/comments", headers=author.auth) as response:
        assert (await response.json())["items"] == [kept]  # reads work
    await eventually(lambda: comment_count(http, api_url, author, post_id), lambda n: n == 1)
    assert (await get_post(http, api_url, author, post_id))["comment_count"] == 1


@pytest.fixture(scope="module")
def api_with_a_low_comment_limit(migrated):
    process, url = start_api("api-comments-limited", {"PHOTOS_COMMENT_RATE_PER_USER": "3"})
    yield url
    process.stop()


async def test_comments_past_the_rate_limit_are_429(http, api_with_a_low_comment_limit):
    url = api_with_a_low_comment_limit
    for _ in range(2):  # a second user if the rate window turned over between the first one's requests
        author = await register(http, url)
        post_id = await post(http, url, author)
        statuses = [(await try_comment(http, url, author, post_id, f"c{i}"))[0] for i in range(3)]
        assert statuses == [201, 201, 201]
        async with http.post(f"{url}/v1/posts/{post_id}/comments", json={"text": "more"}, headers=author.auth) as r:
            if r.status == 201:
                continue
            await expect_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
        assert len(await top_level(http, url, author, post_id)) == 3
        return
    raise AssertionError("the fourth comment within the window was taken")
