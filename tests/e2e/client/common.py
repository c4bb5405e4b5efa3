"""What every domain's helpers use: following a paged list to its end, checking an error body."""

from __future__ import annotations


async def list_all(http, api_url, viewer, path: str, limit: int) -> list[dict]:
    """Every item of a paged list, following next_cursor to the end."""
    items, cursor = [], None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{api_url}{path}", params=params, headers=viewer.auth) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def expect_error(response, status: int, code: str | None = None) -> dict:
    """The response is a JSON error with `status` (and `code`, if given); returns its body."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body
