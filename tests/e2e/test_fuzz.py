"""Schemathesis against the test API, as a logged-in user: every operation of /openapi.json, stateless
(examples, coverage and fuzzing phases, valid and invalid data) and stateful (sequences chained through the
document's links), with a fixed seed and a bounded number of examples, so a run is the same run each time
and takes about a minute and a half on two cores, API start included. Marked `fuzz` (`pytest -m fuzz` runs
only this file); it runs in the default suite too.

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

import os

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.config import OperationConfig
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.engine.errors import is_inconsistent_replay

from app.main import all_routes
from app.openapi import build_document
from tests.e2e import fuzz_hooks  # registers the hooks, the auth provider and the image media types

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

SEED = 15
STATELESS_EXAMPLES = 20  # per operation and phase, over 41 operations
STATEFUL_SUITES = 4
STATEFUL_EXAMPLES = 8  # scenarios of up to STATEFUL_STEPS calls, per suite
STATEFUL_STEPS = 8
EXCLUDED_PATHS = ("/v1/notifications/stream",)
# the API is state hypothesis cannot roll back: shrinking replays calls against changed data and ends in
# FlakyStrategyDefinition, hiding the failure; a failure is reported as found (the seed reproduces the run)
NO_SHRINKING = (Phase.explicit, Phase.generate)
NOT_REACHABLE = {  # operations a drawn request cannot succeed on, whatever the API does
    "POST /v1/sessions",  # drawn credentials name no account: 401 (the hooks log in for real)
    "POST /v1/accounts",  # derandomized, each run draws the same usernames: taken (409) since the first run
}


# Schema-valid requests the API contract refuses with 422 for what their ids name, which no JSON Schema can
# say: following or unfollowing oneself (the path's user_id is the caller's own; ../shared/API.md: "Following
# yourself: 422"). For these operations 422 is added to what positive_data_acceptance expects; every other
# status it would flag still fails, and every other check runs unchanged.
REFUSED_FOR_WHAT_IDS_NAME = ("PUT /v1/users/{user_id}/follow", "DELETE /v1/users/{user_id}/follow")


def load_schema():
    """The document the API serves (app/openapi.py builds it from the same route tables in-process; the
    e2e tests check the served one is it), loaded at import: the test API's address is known later.
    (schemathesis.pytest.from_fixture, which would load it from the API, does not run on pytest 9.)"""
    loaded = schemathesis.openapi.from_dict(build_document(all_routes()))
    loaded.config.update(request_timeout=30)
    expected = [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "422"]
    loaded.config.operations.operations.append(OperationConfig.from_dict({
        "include-name": list(REFUSED_FOR_WHAT_IDS_NAME),
        "checks": {"positive_data_acceptance": {"expected-statuses": expected}},
    }))
    loaded.config.seed = SEED
    loaded.config.generation.update(max_examples=STATELESS_EXAMPLES, deterministic=True)
    return loaded


schema = load_schema().exclude(path_regex="|".join(f"^{path}$" for path in EXCLUDED_PATHS))


@pytest.fixture(scope="module", autouse=True)
def against(api_url):
    """The session's test API, for the hooks too (they register the run's user there)."""
    os.environ["PHOTOS_FUZZ_API_URL"] = api_url
    yield
    del os.environ["PHOTOS_FUZZ_API_URL"]


@schema.parametrize()
@settings(max_examples=STATELESS_EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=NO_SHRINKING, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_its_document_says(case, api_url):
    case.call_and_validate(base_url=api_url)


def test_sequences_of_calls_answer_as_the_document_says(api_url):
    """STATEFUL_SUITES suites of scenarios, each with its own fixed seed. The API is state hypothesis cannot
    reset: when a replayed prefix of calls meets other data it stops the suite with FlakyStrategyDefinition,
    which schemathesis's own engine does not count as a failure either, and the next suite goes on. A check
    that fails raises a FailureGroup; one that fails and then passes on replay, FlakyFailure: both fail here."""
    class AgainstTheTestApi(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": api_url}

    for suite in range(STATEFUL_SUITES):
        machine = hypothesis.seed(SEED + suite)(AgainstTheTestApi)
        try:
            machine.run(settings=settings(
                max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, deadline=None, database=None,
                phases=NO_SHRINKING, suppress_health_check=list(HealthCheck)))
        except FlakyStrategyDefinition:
            continue
        except AssertionError as exc:
            if not is_inconsistent_replay(exc):
                raise


def test_the_run_got_past_authentication_to_the_services():
    """A run whose token was refused (every answer 401) would pass every check above and test nothing: each
    operation that needs no existing resource (no id in its path) must have succeeded at least once."""
    documented = {f"{method.upper()} {path}" for path, methods in build_document(all_routes())["paths"].items()
                  for method in methods if "{" not in path and f"{method.upper()} {path}" not in NOT_REACHABLE}
    failed = {operation: sorted(fuzz_hooks.ANSWERED.get(operation, ()))
              for operation in sorted(documented - {f"GET {path}" for path in EXCLUDED_PATHS})
              if not any(status < 300 for status in fuzz_hooks.ANSWERED.get(operation, ()))}
    assert not failed, failed
