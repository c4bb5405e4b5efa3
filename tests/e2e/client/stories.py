"""Stories, the tray and story views."""

from __future__ import annotations

import aiohttp

from tests.e2e.client.common import list_all
from tests.e2e.client.posts import PHOTO


def story_form(media: bytes = PHOTO, content_type: str = "image/jpeg") -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("media", media, filename="story.jpg", content_type=content_type)
    return data


async def post_story(http, api_url, author, media: bytes = PHOTO) -> dict:
    async with http.post(f"{api_url}/v1/stories", data=story_form(media), headers=author.auth) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def view(http, api_url, viewer, story_id: str) -> int:
    async with http.put(f"{api_url}/v1/stories/{story_id}/view", headers=viewer.auth) as response:
        return response.status


async def user_stories(http, api_url, viewer, user_id: str, limit: int = 20) -> list[dict]:
    return await list_all(http, api_url, viewer, f"/v1/users/{user_id}/stories", limit)


async def tray(http, api_url, reader, limit: int = 20) -> list[dict]:
    return await list_all(http, api_url, reader, "/v1/stories/tray", limit)


async def tray_authors(http, api_url, reader) -> list[str]:
    return [entry["author"]["id"] for entry in await tray(http, api_url, reader)]


async def viewers(http, api_url, author, story_id: str, limit: int = 100) -> list[str]:
    return [user["id"] for user in await list_all(http, api_url, author, f"/v1/stories/{story_id}/viewers", limit)]


async def view_count(http, api_url, author, story_id: str) -> int | None:
    stories = await user_stories(http, api_url, author, author.id)
    return next((s["view_count"] for s in stories if s["id"] == story_id), None)
