"""Per-route costs (docs/metrics.md) on the real services: what a like and a feed read send to Cassandra,
Redis and Kafka, counted for their own routes by the API's two processes, the API's CPU, and the stream
worker's metrics port (events per agent, the agents' own store requests, consumer lag)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.client.feed import read_feed, until_in_feed
from tests.e2e.client.likes import like
from tests.e2e.client.posts import post
from tests.e2e.client.users import follow, register
from tests.e2e.processes import metrics_url
from tests.support.polling import eventually

pytestmark = pytest.mark.usefixtures("streams_worker")

LIKE = "PUT /v1/posts/{post_id}/like"
FEED = "GET /v1/feed"

Samples = dict[tuple[str, frozenset], float]


async def scrape(http, url: str) -> Samples:
    async with http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, series), value in samples.items() if sample == name and wanted <= series)


def change(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_a_like_and_a_feed_read_are_charged_for_what_they_sent(http, api_url, settings):
    author, fan = await asyncio.gather(register(http, api_url), register(http, api_url))
    await follow(http, api_url, fan, author)  # the fan's feed then holds the post: its read has work to do
    post_id = await post(http, api_url, author)
    await until_in_feed(http, api_url, fan, post_id)
    likes_topic = f"{settings.kafka_topic_prefix}likes"
    metrics = metrics_url(api_url)

    before = await scrape(http, metrics)
    await like(http, api_url, fan, post_id)
    after_like = await scrape(http, metrics)
    await read_feed(http, api_url, fan)
    after_feed = await scrape(http, metrics)

    # the like: its edge in `likes`, one event on the likes topic, its count in Redis
    assert change(before, after_like, "photos_http_requests_total", route="/v1/posts/{post_id}/like") == 1
    assert change(before, after_like, "photos_cassandra_requests_total", route=LIKE, table="likes") >= 1
    assert change(before, after_like, "photos_kafka_messages_total", route=LIKE, topic=likes_topic) == 1
    assert change(before, after_like, "photos_kafka_messages_total", route=LIKE) == 1
    commands = change(before, after_like, "photos_redis_commands_total", route=LIKE)
    round_trips = change(before, after_like, "photos_redis_round_trips_total", route=LIKE)
    assert commands >= round_trips >= 1
    # the latency histogram names the route the same way
    assert change(before, after_like, "photos_http_request_seconds_count", route=LIKE) == 1

    # the feed read: work of its own, and not a message sent
    assert change(after_like, after_feed, "photos_http_request_seconds_count", route=FEED) == 1
    assert change(after_like, after_feed, "photos_cassandra_requests_total", route=FEED) >= 1
    assert change(before, after_feed, "photos_kafka_messages_total", route=FEED) == 0
    assert total(after_feed, "photos_kafka_messages_total", route=FEED) == 0
    # nothing the feed read did was charged to the like (or to no route at all)
    for name in ("photos_cassandra_requests_total", "photos_redis_commands_total", "photos_kafka_messages_total"):
        assert change(after_like, after_feed, name, route=LIKE) == 0, name


async def test_the_api_cpu_counter_grows_with_the_work_it_does(http, api_url):
    metrics = metrics_url(api_url)
    first = total(await scrape(http, metrics), "photos_process_cpu_seconds_total", kind="api")
    assert first > 0
    account = await register(http, api_url)  # a few requests' CPU
    for _ in range(20):
        async with http.get(f"{api_url}/v1/me", headers=account.auth) as response:
            assert response.status == 200
    await eventually(lambda: scrape(http, metrics),
                     lambda samples: total(samples, "photos_process_cpu_seconds_total", kind="api") > first)


async def test_the_stream_worker_serves_its_events_its_store_requests_and_its_lag(http, api_url, streams_worker):
    url = streams_worker.metrics_url
    before = await scrape(http, url)
    author, fan = await asyncio.gather(register(http, api_url), register(http, api_url))
    post_id = await post(http, api_url, author)
    await like(http, api_url, fan, post_id)

    def settled(samples: Samples) -> bool:
        return (change(before, samples, "photos_stream_events_total", agent="like_counts") >= 1
                and change(before, samples, "photos_stream_batch_seconds_count", agent="like_counts") >= 1
                and change(before, samples, "photos_cassandra_requests_total", route="agent:like_counts") >= 1)

    after = await eventually(lambda: scrape(http, url), settled, timeout=30)
    assert change(before, after, "photos_cassandra_requests_total",
                  route="agent:like_counts", table="post_likers") >= 1
    assert total(after, "photos_process_cpu_seconds_total", kind="streams") > 0
    # the worker's partitions, refreshed every few seconds
    lag = await eventually(lambda: scrape(http, url),
                           lambda samples: any(name == "photos_stream_consumer_lag" for name, _ in samples),
                           timeout=30)
    series = [dict(labels) for name, labels in lag if name == "photos_stream_consumer_lag"]
    assert all(labels.keys() == {"topic", "partition"} for labels in series)
    assert any(labels["topic"].endswith("likes") for labels in series)
