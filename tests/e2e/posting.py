"""Publishing posts over HTTP, for the e2e tests."""

import aiohttp

from loadtest.images import striped_jpeg
from tests.e2e.conftest import list_all

PHOTO = striped_jpeg()


def form(image: bytes = PHOTO, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("image", image, filename="photo.jpg", content_type="image/jpeg")
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def publish(http, api_url, account, headers=None, **fields) -> dict:
    async with http.post(
        f"{api_url}/v1/posts", data=form(**fields), headers={**account.auth, **(headers or {})}
    ) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def user_posts(http, api_url, viewer, user_id, limit=20) -> list[dict]:
    return await list_all(http, api_url, viewer, f"/v1/users/{user_id}/posts", limit)
