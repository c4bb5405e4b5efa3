"""Schemathesis hooks of the fuzz tests (tests/e2e/test_fuzz.py) and of a standalone run
(`SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks st run ...`, docs/testing.md). Each one supplies what the
document cannot say in JSON Schema, so that schema-valid requests are valid requests; none of them
hides a check.

- Image parts: the document names the media types an upload takes (its multipart `encoding`), and a
  photo is more than bytes of the right length. The parts are drawn from a few real JPEG, PNG and WebP
  images, so valid uploads get through to the service, not only to the decoder's 415 and 422.
- Cursors: a cursor is opaque and signed, valid only as a `next_cursor` the API issued (the document says
  so); a drawn one can only be 400 invalid_cursor. Drawn cursors are dropped (an empty one, "the first
  page", is kept); the stateful phase still pages with the cursors the API hands out.
- Auth: the run is one logged-in user, an account the provider below registers on first use, whose
  bearer token every request carries (the coverage phase still drops it to check for 401). Logging out
  (DELETE /v1/sessions/current) revokes the token it is sent with, so each logout gets a token of its
  own, logged in for it.
- Idempotency-Key: the key is the client's promise that a retry is the same request, and the draft
  standard answers a key reused for another request 422. Hypothesis and the coverage phase reuse values
  across different requests, so each valid key is made unique per request (an invalid one is sent as drawn).
- One false failure is dropped (filter_failure, below): use_after_free's reading of /like and /likes as one
  resource.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import urllib.error
import urllib.request
import uuid

import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.transport.prepare import get_exclude_headers

from app.openapi import IDEMPOTENCY_KEY_SCHEMA

_VALID_KEY = re.compile(IDEMPOTENCY_KEY_SCHEMA["pattern"])
_KEY_NUMBERS = itertools.count()


def _images(kind: str) -> list[bytes]:
    found = []
    for size, colour in (((64, 48), (200, 120, 40)), ((32, 32), (10, 90, 200)), ((80, 120), (240, 240, 240))):
        out = io.BytesIO()
        Image.new("RGB", size, colour).save(out, format=kind)
        found.append(out.getvalue())
    return found


for _media_type, _kind in (("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/webp", "WEBP")):
    schemathesis.openapi.media_type(_media_type, st.sampled_from(_images(_kind)))


@schemathesis.hook
def map_query(context, query):
    if query and query.get("cursor"):
        query = {name: value for name, value in query.items() if name != "cursor"}
    return query


PASSWORD = "fuzzing-password"


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def log_in(base_url: str, username: str) -> str:
    """A new bearer token of the run's account (POST /v1/sessions); one no session has when refused (429)."""
    try:
        return _post(f"{base_url}/v1/sessions", {"username": username, "password": PASSWORD})["token"]
    except urllib.error.HTTPError:
        return "not-a-live-token"


def base_url_of(case) -> str:
    """The API's base URL: the schema's (loaded from it), or PHOTOS_FUZZ_API_URL (tests/e2e/test_fuzz.py)."""
    return (os.environ.get("PHOTOS_FUZZ_API_URL") or case.operation.schema.get_base_url()).rstrip("/")


PENDING = "Bearer run-user"  # what the provider sets; before_call puts the run user's token in its place
_tokens: dict[str, str] = {}  # base URL -> the run user's token
_usernames: dict[str, str] = {}  # base URL -> the run user's name


def run_user_token(base_url: str) -> str:
    """The token of the run's user at that API, registering and logging it in on first use."""
    if base_url not in _tokens:
        username = f"fz{uuid.uuid4().hex[:12]}"
        _post(f"{base_url}/v1/accounts", {"username": username, "password": PASSWORD})
        _usernames[base_url] = username
        _tokens[base_url] = log_in(base_url, username)
    return _tokens[base_url]


@schemathesis.auth()
class FuzzUser:
    """The run's user. Cases are made before the API's address is known (the coverage phase builds them
    at collection), so the header is a placeholder until before_call sends the real token."""

    def get(self, case, context):
        return PENDING

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": data}


@schemathesis.hook
def before_call(context, case, kwargs):
    headers, left_out = case.headers or {}, get_exclude_headers(case)
    if headers.get("Authorization") == PENDING and "Authorization" not in left_out:
        base_url = base_url_of(case)
        token = run_user_token(base_url)
        if case.method.upper() == "DELETE" and case.path == "/v1/sessions/current":
            token = log_in(base_url, _usernames[base_url])  # a logout revokes the token it is sent with
        headers["Authorization"] = f"Bearer {token}"
    key = headers.get("Idempotency-Key")
    # not in a case that leaves a header out (a missing Authorization): an edit makes schemathesis send it again
    if isinstance(key, str) and _VALID_KEY.fullmatch(key) and not left_out:
        headers["Idempotency-Key"] = f"{next(_KEY_NUMBERS)}-{key}"[:255].rstrip()


ANSWERED: dict[str, set[int]] = {}  # "METHOD /path" -> the statuses its requests got in this process


@schemathesis.hook
def after_call(context, case, response):
    ANSWERED.setdefault(f"{case.method.upper()} {case.path}", set()).add(response.status_code)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but one false use_after_free: its heuristic takes `like` and `likes` for the same
    path segment (a plural), so DELETE /v1/posts/{post_id}/like (the user's like of the post) reads as deleting
    GET /v1/posts/{post_id}/likes (the post's likers, which stays, as the post does)."""
    if type(failure).__name__ != "UseAfterFree":
        return True
    return not (failure.free.startswith("DELETE ") and failure.free.endswith("/like")
                and failure.usage.startswith("GET ") and failure.usage.split("?")[0].endswith("/likes"))
