"""Schemathesis against the test API, as a logged-in user: every operation of /openapi.json, stateless
(examples, coverage and fuzzing phases, valid and invalid data) and stateful (sequences chained through the
document's links), with a fixed seed and a bounded number of examples, so a run is the same run each time
and takes about two minutes on two cores. Marked `fuzz` (`pytest -m fuzz` runs only this file); it runs in
the default suite too.

It fails on any failure of schemathesis's default checks: a server error, a status the document does not
list for the operation, a body that does not match the documented schema or content type, a schema-valid
request refused (400, 413, 415 or 422: positive_data_acceptance) or a schema-invalid one accepted
(negative_data_rejection), a missing required header not refused, an undeclared method not answered 405, a
route that ignores auth, a resource still there after its DELETE (use_after_free), and so on.

What the document cannot say in JSON Schema (a real photo, an API-issued cursor, an unused Idempotency-Key,
a logout that would revoke the run's own token) is supplied by the hooks in tests/e2e/fuzz_hooks.py.
Excluded, with the reason:
- GET /v1/notifications/stream: a WebSocket. A schema-valid request is an Upgrade handshake whose 101 leaves
  a socket open on the HTTP client's pooled connection, which the next request would then read frames from;
  the route's 101, 400 websocket_required, 401 and 429 are covered by tests/e2e/test_notifications.py and
  test_sessions.py, under the response check of tests/e2e/client/contract.py.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import tests.e2e.fuzz_hooks  # noqa: F401  (registers the hooks and the image media types)

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

SEED = 15
STATELESS_EXAMPLES = 10  # per operation and phase, over 41 operations
STATEFUL_EXAMPLES = 12  # scenarios of up to STATEFUL_STEPS calls
STATEFUL_STEPS = 8
EXCLUDED_PATHS = ("/v1/notifications/stream",)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def fuzz_token(api_url):
    """The bearer token of a fresh account; the hooks log in as it again for each logout they send."""
    username, password = f"fz{uuid.uuid4().hex[:12]}", "fuzzing-password"
    _post(f"{api_url}/v1/accounts", {"username": username, "password": password})
    saved = {name: os.environ.get(name) for name in ("PHOTOS_FUZZ_USERNAME", "PHOTOS_FUZZ_PASSWORD")}
    os.environ.update(PHOTOS_FUZZ_USERNAME=username, PHOTOS_FUZZ_PASSWORD=password)
    yield _post(f"{api_url}/v1/sessions", {"username": username, "password": password})["token"]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def api_schema(api_url, fuzz_token):
    loaded = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    loaded.config.update(headers={"Authorization": f"Bearer {fuzz_token}"}, request_timeout=30)
    loaded.config.seed = SEED
    loaded.config.generation.update(max_examples=STATELESS_EXAMPLES, deterministic=True)
    for path in EXCLUDED_PATHS:
        loaded = loaded.exclude(path=path)
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=STATELESS_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_its_document_says(case):
    case.call_and_validate()


def test_sequences_of_calls_answer_as_the_document_says(api_schema):
    api_schema.as_state_machine().run(settings=settings(
        max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, derandomize=True, deadline=None,
        database=None, suppress_health_check=list(HealthCheck)))
