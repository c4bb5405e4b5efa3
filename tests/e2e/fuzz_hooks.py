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
  standard answers a key reused for another request 422. Hypothesis reuses drawn values across different
  requests, so each valid drawn key is made unique per request (an invalid one is sent as drawn).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import urllib.error
import urllib.request
import uuid

import schemathesis
from hypothesis import strategies as st
from PIL import Image

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
    return case.operation.schema.get_base_url().rstrip("/")


@schemathesis.auth()
class FuzzUser:
    """The run's user: registered and logged in on first use; a logout is sent with a token of its own."""

    username = ""

    def get(self, case, context):
        if not FuzzUser.username:
            username = f"fz{uuid.uuid4().hex[:12]}"
            _post(f"{base_url_of(case)}/v1/accounts", {"username": username, "password": PASSWORD})
            FuzzUser.username = username
        return log_in(base_url_of(case), FuzzUser.username)

    def set(self, case, data, context):
        if case.method.upper() == "DELETE" and case.path == "/v1/sessions/current":
            data = log_in(base_url_of(case), FuzzUser.username)
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def map_headers(context, headers):
    key = (headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        headers["Idempotency-Key"] = f"{next(_KEY_NUMBERS)}-{key}"[:255].rstrip()
    return headers
