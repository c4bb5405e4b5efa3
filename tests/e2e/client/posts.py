"""Publishing and reading posts."""

from __future__ import annotations

import aiohttp

from loadtest.images import striped_jpeg
from tests.e2e.client.common import list_all
from tests.e2e.client.users import Account

PHOTO = striped_jpeg()  # 1600x1200: every variant is a real downscale
SMALL_PHOTO = striped_jpeg(96, 72)  # for tests that publish many posts and look at none of their media


def form(image: bytes = PHOTO, **fields: str) -> aiohttp.FormData:
    """The multipart body of POST /v1/posts: `image` as a JPEG, plus `fields` (caption, ...)."""
    data = aiohttp.FormData()
    data.add_field("image", image, filename="photo.jpg", content_type="image/jpeg")
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def publish(http, api_url, account: Account, headers=None, **fields) -> dict:
    """POST /v1/posts (201); the post. `fields`: `image` and the form fields."""
    async with http.post(
        f"{api_url}/v1/posts", data=form(**fields), headers={**account.auth, **(headers or {})}
    ) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def post(http, api_url, author: Account, caption: str = "") -> str:
    """A small post by `author`; its id."""
    return (await publish(http, api_url, author, image=SMALL_PHOTO, caption=caption))["id"]


async def get_post(http, api_url, viewer: Account, post_id: str) -> dict:
    async with http.get(f"{api_url}/v1/posts/{post_id}", headers=viewer.auth) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def user_posts(http, api_url, viewer: Account, user_id: str, limit: int = 20) -> list[dict]:
    return await list_all(http, api_url, viewer, f"/v1/users/{user_id}/posts", limit)
