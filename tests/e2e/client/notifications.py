"""Notifications: the list over HTTP and the push stream over WebSocket."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from tests.e2e.client.users import Account
from tests.support.polling import eventually

PUSH_TIMEOUT_S = 60.0


async def ticket_for(http, api_url: str, account: Account) -> str:
    async with http.post(f"{api_url}/v1/notifications/ticket", headers=account.auth) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    assert set(body) == {"ticket", "expires_at"}
    return body["ticket"]


async def open_stream(http, api_url: str, account: Account, **connect) -> aiohttp.ClientWebSocketResponse:
    """A socket that has received `ready` (so the server is subscribed), authenticated with a fresh ticket."""
    ticket = await ticket_for(http, api_url, account)
    ws = await http.ws_connect(f"{api_url}/v1/notifications/stream", params={"ticket": ticket}, **connect)
    assert await next_message(ws) == {"type": "ready"}
    return ws


async def next_message(ws, timeout: float = PUSH_TIMEOUT_S) -> dict:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return orjson.loads(message.data)


async def pushed_notification(ws, matches, timeout: float = PUSH_TIMEOUT_S) -> dict:
    """The first pushed notification for which `matches(notification)` holds."""
    async with asyncio.timeout(timeout):
        while True:
            message = await next_message(ws, timeout)
            if message["type"] == "notification" and matches(message["notification"]):
                return message["notification"]


async def notifications(http, api_url: str, account: Account, **params) -> list[dict]:
    async with http.get(f"{api_url}/v1/notifications", params=params, headers=account.auth) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["items"]


async def until_notified(http, api_url, account, matches, timeout: float = PUSH_TIMEOUT_S) -> list[dict]:
    """The account's notifications, once one of them matches."""
    return await eventually(
        lambda: notifications(http, api_url, account), lambda items: any(matches(i) for i in items), timeout=timeout
    )
