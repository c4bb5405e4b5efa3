import asyncio

import aiohttp
import psutil
import pytest

from app.main import all_routes
from app.openapi import build_document
from infra.procs import free_port, wait_http_ok
from tests.e2e.client.posts import form, post, user_posts
from tests.e2e.client.stories import post_story, story_form, user_stories, view
from tests.e2e.client.users import register
from tests.e2e.processes import GENEROUS_LIMITS, metrics_url, ops_url, start_api, start_process
from tests.e2e.test_metrics import change, scrape
from tests.support.polling import eventually
from tests.support.tcp_proxy import TcpProxy

REQUESTS_OVER_FRESH_CONNECTIONS = 20


async def test_the_public_port_answers_health_and_readiness_without_detail(http, api_url):
    async with http.get(f"{api_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{api_url}/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}  # which dependency is what: the ops listener's to tell


async def test_the_public_port_serves_no_metrics_and_the_ops_listener_does(http, api_url):
    async with http.get(f"{api_url}/metrics") as response:
        assert response.status == 404
    async with http.get(metrics_url(api_url)) as response:
        assert response.status == 200
        assert "photos_http_requests_total" in await response.text()
    # and the ops listener serves no API (asked without the response check: /openapi.json describes the
    # public port, where GET /v1/me is never a 404)
    async with aiohttp.ClientSession() as plain, plain.get(f"{ops_url(api_url)}/v1/me") as response:
        assert response.status == 404


async def test_the_ops_readiness_reports_every_dependency(http, api_url):
    async with http.get(f"{ops_url(api_url)}/healthz") as response:
        assert response.status == 200

    async def readiness() -> tuple[int, dict]:
        async with http.get(f"{ops_url(api_url)}/readyz") as response:
            return response.status, await response.json()

    # a process that has just started may still be connecting its Kafka producer (readiness says so: 503)
    everything_ok = (200, {"status": "ok", "checks": {"cassandra": "ok", "redis": "ok", "kafka": "ok"}})
    await eventually(readiness, lambda answer: answer == everything_ok, timeout=30)


async def test_the_ops_metrics_count_the_requests_of_every_worker_process(http, api_url, account):
    """The session's API runs two processes on one port; its ops listener is theirs too. Requests on fresh
    connections reach both processes, and every scrape, whichever process answers it, counts all of them."""
    before = await scrape(http, metrics_url(api_url))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        for _ in range(REQUESTS_OVER_FRESH_CONNECTIONS):
            async with fresh.get(f"{api_url}/v1/me", headers=account.auth) as response:
                assert response.status == 200
        for _ in range(6):
            after = await scrape(fresh, metrics_url(api_url))
            assert change(before, after, "photos_http_requests_total", route="/v1/me", status="200") == (
                REQUESTS_OVER_FRESH_CONNECTIONS)
    assert "photos_http_request_seconds_bucket" in {name for name, _ in after}


async def test_openapi_document_is_served_and_matches_the_routes(http, api_url):
    async with http.get(f"{api_url}/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document == build_document(all_routes())
    assert document["openapi"].startswith("3.")


@pytest.fixture(scope="module")
def api_without_redis_and_kafka(migrated):
    dead = str(free_port())
    process, url = start_api(
        "api-degraded",
        {"PHOTOS_REDIS_URL": f"redis://127.0.0.1:{dead}/0", "PHOTOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead}"},
    )
    yield url
    process.stop()


async def test_with_redis_and_kafka_down_reads_and_logins_work_and_follows_are_refused(
    http, api_url, api_without_redis_and_kafka
):
    url = api_without_redis_and_kafka
    async with http.get(f"{ops_url(url)}/readyz") as response:
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "degraded"
        assert body["checks"] == {"cassandra": "ok", "redis": "degraded", "kafka": "degraded"}
        assert "feed cache is bypassed" in body["effects"]["redis"]
        assert "503" in body["effects"]["kafka"]
    alice = await register(http, url)  # registration and login need only Cassandra (limits fall back)
    bob = await register(http, api_url)
    async with http.get(f"{url}/v1/users/{bob.id}", headers=alice.auth) as response:
        assert response.status == 200
    async with http.put(f"{url}/v1/users/{bob.id}/follow", headers=alice.auth) as response:
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["error"]["code"] == "service_unavailable"


async def test_readyz_is_503_while_cassandra_is_unreachable_and_recovers(http, migrated):
    proxy = TcpProxy(migrated.cassandra_port)
    proxy.start()
    process, url = start_api("api-cassandra-proxy", {"PHOTOS_CASSANDRA_PORT": str(proxy.port)})
    try:
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200
        proxy.cut()

        async def ready_status():
            async with http.get(f"{url}/readyz") as response:
                return response.status, response.headers.get("Retry-After")

        _, retry_after = await eventually(ready_status, lambda r: r[0] == 503, timeout=15)
        assert retry_after is not None
        async with http.post(f"{url}/v1/sessions", json={"username": "someone", "password": "x" * 8}) as response:
            assert response.status == 503
        proxy.start()
        await eventually(ready_status, lambda r: r[0] == 200, timeout=60, interval=0.5)
    finally:
        process.stop()
        proxy.close()


async def test_an_api_started_while_cassandra_is_unreachable_waits_for_it_and_then_serves(http, migrated):
    proxy = TcpProxy(migrated.cassandra_port)  # not started: nothing listens on its port yet
    port, ops_port = free_port(), free_port()
    env = {**GENEROUS_LIMITS, "PHOTOS_CASSANDRA_PORT": str(proxy.port), "PHOTOS_API_PORT": str(port),
           "PHOTOS_OPS_PORT": str(ops_port)}
    process = start_process("api-cassandra-late", ["-m", "app.main", "--workers", "2"], env)
    ops = f"http://127.0.0.1:{ops_port}"
    try:
        await eventually(lambda: asyncio.to_thread(process.log_tail), lambda log: "Cassandra unreachable" in log,
                         timeout=30)
        assert process.alive()
        # waiting: alive on the ops listener, not ready, and the public port not open (no load balancer sends
        # it a request it cannot serve)
        await eventually(lambda: _status(http, f"{ops}/healthz"), lambda status: status == 200, timeout=30)
        async with http.get(f"{ops}/readyz") as response:
            assert response.status == 503 and int(response.headers["Retry-After"]) >= 1
            body = await response.json()
        assert body["starting"] is True and body["checks"]["cassandra"] == "down"
        with pytest.raises(aiohttp.ClientConnectionError):
            await _status(http, f"http://127.0.0.1:{port}/healthz")
        proxy.start()
        await asyncio.to_thread(wait_http_ok, f"http://127.0.0.1:{port}/readyz", process)
        await eventually(lambda: _status(http, f"{ops}/readyz"), lambda status: status == 200, timeout=30)
    finally:
        process.stop()
        proxy.close()


async def _status(http, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def test_with_kafka_down_an_upload_is_refused_and_creates_nothing(http, api_url, api_without_redis_and_kafka):
    url = api_without_redis_and_kafka
    author = await register(http, url)
    async with http.post(f"{url}/v1/posts", data=form(), headers=author.auth) as response:
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
    assert await user_posts(http, api_url, author, author.id) == []


async def test_with_kafka_down_a_like_is_refused_and_changes_nothing(http, api_url, api_without_redis_and_kafka):
    url = api_without_redis_and_kafka
    author, fan = await register(http, api_url), await register(http, api_url)
    post_id = await post(http, api_url, author)
    for method in (http.put, http.delete):
        async with method(f"{url}/v1/posts/{post_id}/like", headers=fan.auth) as response:
            assert response.status == 503
            assert int(response.headers["Retry-After"]) >= 1
    async with http.get(f"{api_url}/v1/posts/{post_id}", headers=fan.auth) as response:
        assert (await response.json())["liked_by_me"] is False  # no edge was written
    async with http.get(f"{url}/v1/posts/{post_id}/likes", headers=fan.auth) as response:
        assert response.status == 200 and (await response.json())["items"] == []  # reads still work


async def test_with_kafka_down_stories_and_views_are_refused_and_change_nothing(
        http, api_url, api_without_redis_and_kafka, streams_worker):
    url = api_without_redis_and_kafka
    author, fan = await register(http, api_url), await register(http, api_url)
    async with http.post(f"{url}/v1/stories", data=story_form(), headers=author.auth) as response:
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
    assert await user_stories(http, api_url, author, author.id) == []
    story = await post_story(http, api_url, author)
    assert await view(http, url, fan, story["id"]) == 503
    assert (await user_stories(http, url, fan, author.id))[0]["seen_by_me"] is False  # reads still work
    async with http.get(f"{api_url}/v1/stories/{story['id']}/viewers", headers=author.auth) as response:
        assert (await response.json())["items"] == []


async def test_an_api_worker_that_dies_is_started_again_while_the_others_serve(http, migrated):
    process, url = start_api("api-respawn", {}, workers=2)
    try:
        parent = psutil.Process(process.proc.pid)
        port = int(url.rsplit(":", 1)[1])
        # both listening (the first to listen answered the start-up check; the other may still be preparing)
        workers = await eventually(lambda: _listening(parent, port), lambda found: len(found) == 2, timeout=60)
        victim = workers[0]
        victim.kill()
        await asyncio.to_thread(victim.wait, 10)  # gone, its listening socket with it (the parent reaps it)
        async with http.get(f"{url}/healthz") as response:  # the other worker still serves the port
            assert response.status == 200
        replaced = await eventually(
            lambda: _children(parent), lambda found: len(found) == 2 and victim not in found, timeout=30
        )
        assert workers[1] in replaced
        await eventually(lambda: _healthz(http, url), lambda status: status == 200, timeout=30)
    finally:
        process.stop()


async def _listening(parent, port: int) -> list:
    """The parent's worker processes that have their socket listening on `port`."""
    return [child for child in await _children(parent)
            if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in child.net_connections("tcp"))]


async def _children(parent) -> list:
    return [child for child in parent.children() if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]


async def _healthz(http, url: str) -> int:
    async with http.get(f"{url}/healthz") as response:
        return response.status
