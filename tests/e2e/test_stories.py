"""Stories over HTTP with the real worker: posting, views, exact view counts, the tray and its order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.stories import post_story, story_form, tray, tray_authors, user_stories, view, view_count, viewers
from tests.e2e.client.users import follow, register, unfollow
from tests.e2e.stored import is_celebrity
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
WEBM_HEADER = b"\x1a\x45\xdf\xa3" + b"\x00" * 64


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


async def test_a_story_is_posted_through_the_media_pipeline_and_expires_in_24_hours(http, api_url):
    author = await register(http, api_url)
    story = await post_story(http, api_url, author)
    assert story["author"] == {"id": author.id, "username": author.username}
    assert set(story["media"]) == {"original", "large", "medium", "thumbnail"}
    assert (when(story["expires_at"]) - when(story["created_at"])).total_seconds() == 24 * 3600
    async with http.get(story["media"]["thumbnail"]["url"]) as response:
        assert response.status == 200
        assert response.content_type == "image/jpeg"
    listed = await user_stories(http, api_url, author, author.id)
    assert [s["id"] for s in listed] == [story["id"]]
    assert listed[0]["view_count"] == 0  # the author sees the count


@pytest.mark.parametrize("media", [MP4_HEADER, WEBM_HEADER], ids=["mp4", "webm"])
async def test_video_is_refused_with_415_and_nothing_is_created(http, api_url, media):
    author = await register(http, api_url)
    async with http.post(f"{api_url}/v1/stories", data=story_form(media, "video/mp4"), headers=author.auth) as r:
        assert r.status == 415
        assert (await r.json())["error"]["code"] == "video_not_supported"
    assert await user_stories(http, api_url, author, author.id) == []


async def test_bad_uploads_get_4xx_and_create_nothing(http, api_url):
    author = await register(http, api_url)
    cases = [
        (story_form(b"not an image at all"), 415),
        (story_form(b""), 422),
    ]
    for form, status in cases:
        async with http.post(f"{api_url}/v1/stories", data=form, headers=author.auth) as response:
            assert response.status == status, await response.text()
    async with http.post(f"{api_url}/v1/stories", json={"media": "x"}, headers=author.auth) as response:
        assert response.status == 415
    async with http.post(f"{api_url}/v1/stories", data=b"--x\r\nbroken", headers={
        **author.auth, "Content-Type": "multipart/form-data; boundary=x"}) as response:
        assert response.status in (400, 422)
    assert await user_stories(http, api_url, author, author.id) == []


async def test_a_retried_post_with_the_same_idempotency_key_creates_one_story(http, api_url):
    author = await register(http, api_url)
    headers = {**author.auth, "Idempotency-Key": "story-1"}
    replies = []
    for _ in range(2):
        async with http.post(f"{api_url}/v1/stories", data=story_form(), headers=headers) as response:
            assert response.status == 201
            replies.append(await response.json())
    assert replies[0]["id"] == replies[1]["id"]
    assert len(await user_stories(http, api_url, author, author.id)) == 1


async def test_views_are_idempotent_the_count_exact_and_the_viewers_the_authors_only(http, api_url):
    author = await register(http, api_url)
    fans = await asyncio.gather(*(register(http, api_url) for _ in range(9)))
    story = await post_story(http, api_url, author)
    # every fan views three times at once (retries, replays), and the author watches their own
    statuses = await asyncio.gather(*(view(http, api_url, fan, story["id"]) for fan in fans for _ in range(3)),
                                    view(http, api_url, author, story["id"]))
    assert set(statuses) == {204}
    await eventually(lambda: view_count(http, api_url, author, story["id"]), lambda n: n == len(fans))
    assert sorted(await viewers(http, api_url, author, story["id"], limit=4)) == sorted(f.id for f in fans)

    async with http.get(f"{api_url}/v1/stories/{story['id']}/viewers", headers=fans[0].auth) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "not_story_author"
    seen = await user_stories(http, api_url, fans[0], author.id)
    assert "view_count" not in seen[0]  # the count is the author's to see
    assert seen[0]["seen_by_me"] is True
    stranger = await register(http, api_url)
    assert (await user_stories(http, api_url, stranger, author.id))[0]["seen_by_me"] is False


async def test_unknown_stories_and_users_are_404(http, api_url):
    user = await register(http, api_url)
    for method, path in [("PUT", "/v1/stories/123/view"), ("GET", "/v1/stories/123/viewers"),
                         ("PUT", "/v1/stories/abc/view"), ("GET", "/v1/users/123/stories")]:
        async with http.request(method, f"{api_url}{path}", headers=user.auth) as response:
            assert response.status == 404, path
    async with http.get(f"{api_url}/v1/stories/tray", params={"limit": "0"}, headers=user.auth) as response:
        assert response.status == 400
    async with http.get(f"{api_url}/v1/stories/tray", params={"cursor": "garbage"}, headers=user.auth) as response:
        assert response.status == 400


async def test_the_tray_puts_unseen_first_then_affinity_then_the_newest(http, api_url):
    reader = await register(http, api_url)
    old, liked, seen, new = await asyncio.gather(*(register(http, api_url) for _ in range(4)))
    for author in (old, liked, seen, new):
        await follow(http, api_url, reader, author)
    liked_post = await post(http, api_url, liked)  # the reader interacts with `liked`: affinity
    await like(http, api_url, reader, liked_post)
    stories = {}
    for author in (old, liked, seen, new):  # in this order: `new` has the newest story
        stories[author.id] = await post_story(http, api_url, author)
    await eventually(lambda: tray_authors(http, api_url, reader), lambda ids: len(ids) == 4)
    assert await view(http, api_url, reader, stories[seen.id]["id"]) == 204

    expected = [liked.id, new.id, old.id, seen.id]
    entries = await eventually(lambda: tray(http, api_url, reader, limit=3),
                               lambda t: [e["author"]["id"] for e in t] == expected)
    assert [e["unseen"] for e in entries] == [True, True, True, False]
    assert entries[0]["author"]["username"] == liked.username
    assert entries[3]["story_count"] == 1 and entries[3]["unseen_count"] == 0


async def test_follow_and_unfollow_change_the_tray(http, api_url):
    reader, author = await register(http, api_url), await register(http, api_url)
    story = await post_story(http, api_url, author)
    assert await tray_authors(http, api_url, reader) == []
    await follow(http, api_url, reader, author)  # the live story is copied into the new follower's tray
    entries = await eventually(lambda: tray(http, api_url, reader), lambda t: len(t) == 1)
    assert entries[0]["latest_story_id"] == story["id"]
    second = await post_story(http, api_url, author)  # pushed
    await eventually(lambda: tray(http, api_url, reader), lambda t: t[0]["latest_story_id"] == second["id"])
    assert (await tray(http, api_url, reader))[0]["unseen_count"] == 2
    await unfollow(http, api_url, reader, author)
    assert await tray_authors(http, api_url, reader) == []  # at once: the tray checks follows when read


async def test_the_tray_shows_when_the_latest_story_was_posted(http, api_url):
    reader, author = await register(http, api_url), await register(http, api_url)
    await follow(http, api_url, reader, author)
    story = await post_story(http, api_url, author)
    entries = await eventually(lambda: tray(http, api_url, reader), lambda t: len(t) == 1)
    assert entries[0]["latest_story_id"] == story["id"]
    assert abs((when(entries[0]["latest_at"]) - datetime.now(UTC)).total_seconds()) < 60, entries[0]["latest_at"]


async def test_a_celebritys_stories_are_pulled_into_the_tray(http, api_url, cass):
    celebrity = await register(http, api_url)
    readers = await asyncio.gather(*(register(http, api_url) for _ in range(4)))  # FEED_CELEBRITY_FOLLOWERS
    for reader in readers:
        await follow(http, api_url, reader, celebrity)
    await eventually(lambda: is_celebrity(cass, celebrity), bool)
    story = await post_story(http, api_url, celebrity)
    entries = await tray(http, api_url, readers[0])  # at once: read from the author's stories
    assert [e["latest_story_id"] for e in entries] == [story["id"]]
    assert await view(http, api_url, readers[0], story["id"]) == 204
    assert (await tray(http, api_url, readers[0]))[0]["unseen"] is False
    pushed = await cass.one("SELECT story_ids FROM story_tray WHERE reader_id = %s AND author_id = %s",
                            (int(readers[0].id), int(celebrity.id)))
    assert pushed is None or not pushed.story_ids  # nothing was pushed


async def test_an_authors_stories_play_oldest_first_and_page(http, api_url):
    author = await register(http, api_url)
    posted = [await post_story(http, api_url, author) for _ in range(3)]
    assert [s["id"] for s in await user_stories(http, api_url, author, author.id, limit=2)] == [
        s["id"] for s in posted
    ]
