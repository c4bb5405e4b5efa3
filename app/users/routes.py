"""HTTP routes of accounts, sessions, users and follows."""

from __future__ import annotations

from aiohttp import web

from app.auth import bearer_token
from app.context import LIMITER, client_address, current_user, limit_user_and_address, service_key, settings_of
from app.text import USERNAME, USERNAME_AS_TYPED, normalize_username
from app.users.service import UserService
from app.web import (
    Field,
    JsonBody,
    Route,
    json_response,
    page_request,
    page_response,
    path_of,
    read_body,
    user_id_in_path,
)

USERNAME_FIELD = Field(
    str,
    required=True,
    min_length=3,
    max_length=30,
    pattern=USERNAME_AS_TYPED,
    pattern_hint="may contain only letters, digits, '.' and '_'",
)
# never shown: bidi controls and zero-width characters are the password's own business (control characters are not)
PASSWORD_FIELD = Field(str, required=True, min_length=8, max_length=256, shown=False)
DISPLAY_NAME_FIELD = Field(str, max_length=64)
BIO_FIELD = Field(str, max_length=500)

NEW_ACCOUNT = JsonBody("NewAccount", {"username": USERNAME_FIELD, "password": PASSWORD_FIELD,
                                       "display_name": DISPLAY_NAME_FIELD})
NEW_SESSION = JsonBody("NewSession", {  # compared, never stored or shown: a name no account holds is 401
    "username": Field(str, required=True, max_length=64, shown=False),
    "password": Field(str, required=True, max_length=256, shown=False),
})
PROFILE_PATCH = JsonBody("ProfilePatch", {"display_name": DISPLAY_NAME_FIELD, "bio": BIO_FIELD})
USERNAME_IN_PATH = Field(str, pattern=USERNAME_AS_TYPED, convert=str.lower, not_found="no such user",
                         code="user_not_found")

USERS = service_key(UserService)


async def create_account(request: web.Request) -> web.Response:
    settings = settings_of(request)
    body = await read_body(request)
    await request.app[LIMITER].hit(
        "registration", client_address(request), settings.register_rate_per_address
    )
    user = await request.app[USERS].register(body["username"], body["password"], body.get("display_name"))
    return json_response(user, status=201)


async def create_session(request: web.Request) -> web.Response:
    settings = settings_of(request)
    body = await read_body(request)
    limiter = request.app[LIMITER]
    await limiter.hit("login-address", client_address(request), settings.login_rate_per_address)
    name = normalize_username(body["username"])
    if USERNAME.fullmatch(name):  # a name no account can hold has no password to guess: only its address counts
        await limiter.hit("login-username", name, settings.login_rate_per_username)
    return json_response(await request.app[USERS].login(body["username"], body["password"]), status=201)


async def delete_session(request: web.Request) -> web.Response:
    await current_user(request)
    await request.app[USERS].logout(bearer_token(request))
    return web.Response(status=204)


async def get_me(request: web.Request) -> web.Response:
    me = await current_user(request)
    return json_response(await request.app[USERS].get_user(me, viewer_id=me))


async def patch_me(request: web.Request) -> web.Response:
    me = await current_user(request)
    settings = settings_of(request)
    await limit_user_and_address(request, "profile", me, settings.profile_rate_per_user,
                                 settings.profile_rate_per_address)
    body = await read_body(request)
    user = await request.app[USERS].update_profile(me, body.get("display_name"), body.get("bio"))
    return json_response(user)


async def get_user(request: web.Request) -> web.Response:
    me = await current_user(request)
    return json_response(await request.app[USERS].get_user(user_id_in_path(request), viewer_id=me))


async def get_user_by_username(request: web.Request) -> web.Response:
    me = await current_user(request)
    username = path_of(request)["username"]
    return json_response(await request.app[USERS].get_user_by_username(username, viewer_id=me))


async def limit_follows(request: web.Request, me: int) -> None:
    """Follows and unfollows share one window (a follow/unfollow loop notifies, fans out and backfills)."""
    settings = settings_of(request)
    await limit_user_and_address(request, "follow", me, settings.follow_rate_per_user, settings.follow_rate_per_address)


async def follow(request: web.Request) -> web.Response:
    me = await current_user(request)
    await limit_follows(request, me)
    await request.app[USERS].follow(me, user_id_in_path(request))
    return web.Response(status=204)


async def unfollow(request: web.Request) -> web.Response:
    me = await current_user(request)
    await limit_follows(request, me)
    await request.app[USERS].unfollow(me, user_id_in_path(request))
    return web.Response(status=204)


async def list_followers(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[USERS].followers(user_id_in_path(request), me, page.limit, page.cursor)
    return page_response(items, cursor)


async def list_following(request: web.Request) -> web.Response:
    me = await current_user(request)
    page = page_request(request)
    items, cursor = await request.app[USERS].following(user_id_in_path(request), me, page.limit, page.cursor)
    return page_response(items, cursor)


ROUTES = [
    Route(
        "POST",
        "/v1/accounts",
        create_account,
        "Register an account",
        public=True,
        body=NEW_ACCOUNT,
        responses={201: "User"},
        errors={409: "username_taken", 429: "Too many registrations from this address (see Retry-After)"},
        tag="accounts",
    ),
    Route(
        "POST",
        "/v1/sessions",
        create_session,
        "Log in: exchange username and password for a bearer token",
        public=True,
        body=NEW_SESSION,
        responses={201: "Session"},
        errors={401: "invalid_credentials: wrong username or password",
                429: "Too many attempts from this address or for this username (see Retry-After)"},
        tag="accounts",
    ),
    Route(
        "DELETE",
        "/v1/sessions/current",
        delete_session,
        "Log out: revoke the token of this request",
        responses={204: "revoked"},
        tag="accounts",
    ),
    Route("GET", "/v1/me", get_me, "The authenticated user", responses={200: "User"}, tag="users"),
    Route(
        "PATCH",
        "/v1/me",
        patch_me,
        "Change display name and/or bio",
        body=PROFILE_PATCH,
        responses={200: "User"},
        tag="users",
    ),
    Route("GET", "/v1/users/{user_id}", get_user, "A user by id", responses={200: "User"}, tag="users"),
    Route(
        "GET",
        "/v1/users/by-username/{username}",
        get_user_by_username,
        "A user by username",
        responses={200: "User"},
        path_parameters={"username": USERNAME_IN_PATH},
        tag="users",
    ),
    Route(
        "PUT",
        "/v1/users/{user_id}/follow",
        follow,
        "Follow a user (idempotent)",
        responses={204: "following"},
        errors={409: "following_limit: you follow the most accounts allowed", 422: "cannot_follow_self"},
        tag="follows",
    ),
    Route(
        "DELETE",
        "/v1/users/{user_id}/follow",
        unfollow,
        "Unfollow a user (idempotent)",
        responses={204: "not following"},
        errors={422: "cannot_follow_self"},
        tag="follows",
    ),
    Route(
        "GET",
        "/v1/users/{user_id}/followers",
        list_followers,
        "Who follows the user (by bucket, then id)",
        responses={200: "User"},
        paged=True,
        tag="follows",
    ),
    Route(
        "GET",
        "/v1/users/{user_id}/following",
        list_following,
        "Whom the user follows (by account id)",
        responses={200: "User"},
        paged=True,
        tag="follows",
    ),
]
