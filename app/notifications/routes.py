"""HTTP routes of notifications: the list, WebSocket tickets, and the live stream."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from app.auth import bearer_token, token_hash
from app.context import SESSIONS, current_user, limit_user_and_address, service_key, settings_of
from app.errors import BadRequest, Unauthorized
from app.notifications.hub import READY, SESSION_REVOKED, SESSION_REVOKED_REASON, Inbox
from app.notifications.service import NotificationService
from app.web import Route, json_response, page_request, page_response

MAX_CLIENT_MESSAGE_BYTES = 4096  # clients have nothing to say on the stream; pings and close frames fit
NOTIFICATIONS = service_key(NotificationService)


def notifications_of(request: web.Request) -> NotificationService:
    return request.app[NOTIFICATIONS]


async def list_notifications(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await notifications_of(request).page(me, page.limit, page.cursor)
    return page_response(items, cursor)


async def create_ticket(request: web.Request) -> web.Response:
    me = await current_user(request)
    settings = settings_of(request)
    await limit_user_and_address(request, "notification-ticket", me, settings.notification_ticket_rate_per_user,
                                 settings.notification_ticket_rate_per_address)
    # the ticket carries the token's hash: the socket it opens is closed when this session is revoked
    return json_response(await notifications_of(request).tickets.issue(me, token_hash(bearer_token(request))),
                         status=201)


def require_credentials(request: web.Request) -> None:
    """401 when the request carries neither a `?ticket=` nor an Authorization header."""
    if "ticket" not in request.query and bearer_token(request) is None:
        raise Unauthorized(
            "connect with ?ticket= from POST /v1/notifications/ticket, or send an Authorization: Bearer header",
            code="ticket_required",
        )


async def stream_user(request: web.Request) -> tuple[int, bytes | None]:
    """Who opens a stream, and the hash of the token behind it: the `?ticket=` (browsers) or an
    Authorization: Bearer header (other clients). 401 when that session is no longer live."""
    require_credentials(request)
    ticket = request.query.get("ticket")
    if ticket is None:
        return await current_user(request), token_hash(bearer_token(request))
    user_id, hashed = await notifications_of(request).tickets.redeem_session(ticket)
    if hashed is not None and not await session_is_live(request, hashed, user_id):
        raise Unauthorized("the session this ticket was issued to has been revoked", code="invalid_token")
    return user_id, hashed


async def session_is_live(request: web.Request, hashed: bytes, user_id: int) -> bool:
    return await request.app[SESSIONS].session_user(hashed) == user_id


async def notification_stream(request: web.Request) -> web.WebSocketResponse:
    """The WebSocket: `ready` once subscribed, then `notification` and `resync` messages (docs/notifications.md)."""
    settings = settings_of(request)
    ws = web.WebSocketResponse(heartbeat=settings.notification_ws_heartbeat_s, max_msg_size=MAX_CLIENT_MESSAGE_BYTES)
    require_credentials(request)
    if not ws.can_prepare(request).ok:  # checked before redeeming: a plain GET must not use up a ticket
        raise BadRequest("this endpoint is a WebSocket: send an Upgrade request", code="websocket_required")
    user_id, hashed = await stream_user(request)  # 401 before the upgrade
    # the inbox first: a user or a process holding all the sockets it may is refused (429) before the upgrade
    async with notifications_of(request).hub.inbox(user_id, hashed) as inbox:
        await ws.prepare(request)
        # a revocation heard before the socket was registered did not reach it: look again, now that any
        # later one will
        if hashed is not None and not await session_is_live(request, hashed, user_id):
            inbox.end(SESSION_REVOKED, SESSION_REVOKED_REASON)
        forwarder = asyncio.create_task(forward(inbox, ws))
        try:
            async for _ in ws:  # what the client sends is ignored; the loop ends when the socket closes
                pass
        finally:
            if not inbox.ended.is_set():  # otherwise the forwarder is closing the socket with the inbox's code
                forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
    return ws


async def forward(inbox: Inbox, ws: web.WebSocketResponse) -> None:
    """Send `ready`, then what arrives in the inbox, until the inbox ends (slow client, shutdown) and the
    socket is closed with its code, or the client is gone."""
    pump = asyncio.create_task(_pump(inbox, ws))
    ended = asyncio.create_task(inbox.ended.wait())
    try:
        await asyncio.wait({pump, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pump.cancel()
        ended.cancel()
        # collected, so a send that failed because the client vanished is not reported as unhandled
        await asyncio.gather(pump, ended, return_exceptions=True)
    if inbox.ended.is_set():
        # drain=False: a client that does not read would hold the close here as long as it liked
        await ws.close(code=inbox.end_code, message=inbox.end_reason.encode(), drain=False)


async def _pump(inbox: Inbox, ws: web.WebSocketResponse) -> None:
    await ws.send_str(READY)
    while True:
        await ws.send_str(await inbox.next())


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every open stream, so shutting down does not wait for clients to leave."""
    notifications = app.get(NOTIFICATIONS)
    if notifications is not None:
        notifications.hub.close_all()


STREAM_SUMMARY = (
    "WebSocket of live notifications. Authenticate with ?ticket= (from POST /v1/notifications/ticket; one use, "
    "expires within a minute) or an Authorization: Bearer header; 401 before the upgrade otherwise. The server "
    'sends JSON text messages: {"type": "ready"} once subscribed, {"type": "notification", "notification": '
    'Notification} for each new or updated notification, {"type": "resync"} when live updates were interrupted '
    "(fetch GET /v1/notifications). Pings every notification_ws_heartbeat_s (20 s). A client that leaves too "
    "many messages unread is closed with code 4008 and catches up with GET /v1/notifications. When the session "
    "the socket was opened with is revoked (logout), the socket is closed with code 4401. A user holding "
    "notification_ws_max_per_user (10) sockets on all servers, or a server holding notification_ws_max_per_process, "
    "answers 429 with Retry-After before the upgrade."
)

ROUTES = [
    Route("GET", "/v1/notifications", list_notifications,
          "The authenticated user's notifications, last updated first (aggregated: one per post and day for likes)",
          responses={200: "Notification"}, paged=True, tag="notifications"),
    Route("POST", "/v1/notifications/ticket", create_ticket,
          "A one-time ticket for opening the notification stream (a browser cannot send a bearer header)",
          responses={201: "NotificationTicket"}, tag="notifications"),
    Route("GET", "/v1/notifications/stream", notification_stream, STREAM_SUMMARY,
          responses={101: "Switching Protocols: the WebSocket is open"}, own_auth=True, tag="notifications",
          errors={400: "websocket_required: not a WebSocket Upgrade request (checked once credentials are there)",
                  401: "ticket_required (neither a ticket nor a token), invalid_ticket, invalid_token",
                  429: "Too many open streams for this user or this server (see Retry-After)"}),
]
