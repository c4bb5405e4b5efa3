"""Accounts, sessions, profiles and follows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

PASSWORD = "correct horse battery"


@dataclass
class Account:
    id: str
    username: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_username(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def register(http: aiohttp.ClientSession, api_url: str, username: str | None = None) -> Account:
    """A new account (a unique name unless `username` is given), logged in."""
    username = username or unique_username()
    password = PASSWORD
    async with http.post(f"{api_url}/v1/accounts", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()
    async with http.post(f"{api_url}/v1/sessions", json={"username": username, "password": password}) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    return Account(id=body["user"]["id"], username=username, password=password, token=body["token"])


async def get_user(http, api_url, viewer: Account, user_id: str) -> dict:
    async with http.get(f"{api_url}/v1/users/{user_id}", headers=viewer.auth) as response:
        assert response.status == 200
        return await response.json()


async def username_exists(http, api_url, viewer: Account, username: str) -> bool:
    async with http.get(f"{api_url}/v1/users/by-username/{username}", headers=viewer.auth) as response:
        return response.status == 200


async def follow_counts(http, api_url, viewer: Account, user_id: str) -> tuple[int, int]:
    """(follower_count, following_count) of the user's profile."""
    user = await get_user(http, api_url, viewer, user_id)
    return user["follower_count"], user["following_count"]


async def follow_status(http, api_url, who: Account, whom_id: str, method: str = "PUT") -> int:
    """`who` follows (PUT) or unfollows (DELETE) the user `whom_id`; the status, whatever it is."""
    async with http.request(method, f"{api_url}/v1/users/{whom_id}/follow", headers=who.auth) as response:
        return response.status


async def follow(http, api_url, reader: Account, author: Account) -> None:
    assert await follow_status(http, api_url, reader, author.id) == 204


async def unfollow(http, api_url, reader: Account, author: Account) -> None:
    assert await follow_status(http, api_url, reader, author.id, "DELETE") == 204
