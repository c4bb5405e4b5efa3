"""The e2e tests' response check (tests/e2e/client/contract.py) refuses what the document does not allow."""

import orjson
import pytest

from tests.e2e.client.contract import ContractViolation, check_response

POST = {"id": "1", "author": {"id": "2", "username": "alice"}, "caption": "", "hashtags": [], "location": "",
        "filter": None, "media": {size: {"url": "/m", "width": 1, "height": 1}
                                  for size in ("original", "large", "medium", "thumbnail")},
        "like_count": 0, "comment_count": 0, "liked_by_me": False, "created_at": "2026-12-07T10:00:00.000Z"}


def error(code: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": "no"}})


def test_a_documented_status_with_a_body_of_its_schema_passes():
    check_response("GET", "/v1/posts/123", 200, "application/json", orjson.dumps(POST))
    check_response("GET", "/v1/posts/123", 404, "application/json", error("post_not_found"))
    check_response("GET", "/v1/feed", 200, "application/json", orjson.dumps({"items": [POST], "next_cursor": None}))
    check_response("DELETE", "/v1/posts/123", 204, "application/octet-stream", b"")


def test_an_undocumented_status_fails():
    with pytest.raises(ContractViolation, match="does not list"):
        check_response("GET", "/v1/posts/123", 418, "application/json", error("teapot"))
    with pytest.raises(ContractViolation, match="does not list"):
        check_response("GET", "/v1/posts/123", 500, "application/json", error("internal_error"))


def test_a_body_of_another_shape_fails():
    with pytest.raises(ContractViolation, match="like_count"):
        check_response("GET", "/v1/posts/123", 200, "application/json", orjson.dumps({**POST, "like_count": -1}))
    with pytest.raises(ContractViolation, match="filter"):
        check_response("GET", "/v1/posts/123", 200, "application/json", orjson.dumps({**POST, "filter": 3}))
    with pytest.raises(ContractViolation):
        check_response("GET", "/v1/posts/123", 404, "application/json", orjson.dumps({"detail": "nope"}))


def test_answers_no_operation_describes_are_not_checked():
    check_response("GET", "/v2/nothing", 404, "application/json", b"{}")
    check_response("PATCH", "/v1/feed", 405, "application/json", b"{}")
