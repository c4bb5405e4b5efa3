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
- Logging out: DELETE /v1/sessions/current revokes the token it is sent with, and the run's every other
  request carries the one token of its account; so each logout is sent with a token of its own, logged
  in for it with the account's credentials (PHOTOS_FUZZ_USERNAME, PHOTOS_FUZZ_PASSWORD).
- Idempotency-Key: the key is the client's promise that a retry is the same request, and the draft
  standard answers a key reused for another request 422. Hypothesis reuses drawn values across different
  requests, so each valid drawn key is made unique per request (an invalid one is sent as drawn).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request

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


def log_in(base_url: str) -> str:
    """A new bearer token of the run's account (POST /v1/sessions); a revoked-looking one when refused."""
    credentials = {"username": os.environ["PHOTOS_FUZZ_USERNAME"], "password": os.environ["PHOTOS_FUZZ_PASSWORD"]}
    request = urllib.request.Request(f"{base_url}/v1/sessions", data=json.dumps(credentials).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]
    except urllib.error.HTTPError:  # 429: this logout is then sent with a token no session has (401)
        return "not-a-live-token"


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() == "DELETE" and case.path == "/v1/sessions/current":
        base_url = case.operation.schema.get_base_url()
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Bearer {log_in(base_url)}"}
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and _VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = f"{next(_KEY_NUMBERS)}-{key}"[:255].rstrip()
