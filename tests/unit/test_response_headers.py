"""The headers every answer gets from app/middleware.py `security_headers`, on a minimal app in this process
(no Cassandra, Kafka or Redis): nosniff, no-store on JSON, and no Server header naming the software."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.middleware import errors_as_json, security_headers
from app.web import json_response


async def token(request: web.Request) -> web.Response:
    return json_response({"token": "secret"}, status=201)


async def picture(request: web.Request) -> web.Response:
    return web.Response(body=b"\xff\xd8\xff", content_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=60"})


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[errors_as_json])
    app.on_response_prepare.append(security_headers)
    app.router.add_post("/token", token)
    app.router.add_get("/picture", picture)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "status"), [("POST", "/token", 201), ("GET", "/nowhere", 404),
                                                         ("GET", "/token", 405)])
async def test_a_json_answer_is_never_stored_nor_sniffed(client, method, path, status):
    async with client.request(method, path) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_other_answers_keep_their_caching_and_are_not_sniffed(client):
    async with client.get("/picture") as response:
        assert response.headers["Cache-Control"] == "public, max-age=60"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/picture", "/nowhere"])
async def test_no_answer_names_the_server_software(client, path):
    async with client.get(path) as response:
        assert "Server" not in response.headers, response.headers["Server"]
