"""The stream workers' own metrics, served on `streams_metrics_port` (docs/metrics.md).

- events each agent took (a faust sensor: every event entering an agent's stream),
- how long each batch took (streams/batches.py, the one loop every agent runs),
- the events each agent dead-lettered (streams/dead_letters.py),
- the writes the reconcilers repaired (streams/outbox.py, streams/media_sweep.py),
- each assigned partition's consumer lag, refreshed every LAG_REFRESH_S,
- and, from app/metrics.py, the Cassandra requests, Redis commands and Kafka messages of each agent's
  batches (route "agent:<name>") and this process's CPU (kind "streams").

The HTTP server is prometheus_client's, on a thread of its own: a scrape never waits for the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import faust
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from app.metrics import CpuMeter
from streams.retry import timer

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0

EVENTS = Counter("photos_stream_events_total", "Events each agent took from its topic", ["agent"])
BATCH_SECONDS = Histogram(
    "photos_stream_batch_seconds",
    "Time to process one batch of an agent, retries of a failed batch included",
    ["agent"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEAD_LETTERS = Counter(
    "photos_stream_dead_letters_total",
    "Events an agent could not decode or apply and sent to the dead-letter topic of their topic",
    ["agent", "topic"],
)
RECONCILED = Counter(
    "photos_reconciled_total",
    "Writes whose event their request never published, repaired by a stream worker's reconciler: `follows` and"
    " `comments` outbox records published (streams/outbox.py), `uploads` finished by the media sweeper",
    ["kind"],
)
CONSUMER_LAG = Gauge(
    "photos_stream_consumer_lag",
    "Messages in a partition this worker is assigned that it has not committed yet (highwater - committed)",
    ["topic", "partition"],
)


class AgentEvents(faust.Sensor):
    """Counts the events entering each agent's stream (an agent's stream is named after the agent)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[str, Any] = {}

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        agent = stream.prefix
        if not agent:  # a stream no agent owns
            return None
        child = self._children.get(agent)
        if child is None:
            child = self._children[agent] = EVENTS.labels(agent)
        child.inc()
        return None


_batch_children: dict[str, Any] = {}


def batch_timer(agent: str) -> Any:
    """The histogram child of `agent`'s batch times."""
    child = _batch_children.get(agent)
    if child is None:
        child = _batch_children[agent] = BATCH_SECONDS.labels(agent)
    return child


class LagRefresher:
    """Sets photos_stream_consumer_lag for the partitions assigned now and removes those given away."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._shown: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        consumer = self.app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # the consumer has not started yet (ConsumerNotStarted): nothing to show
            assigned = set()
        shown: set[tuple[str, str]] = set()
        if assigned:
            highwaters = await consumer.highwaters(*assigned)  # one ListOffsets request
            committed = consumer._committed_offset  # faust's last commit per partition: the next offset to read
            for tp in assigned:
                highwater = highwaters.get(tp)
                done = committed.get(tp)  # .get: a defaultdict that must not grow here
                if done is None:  # nothing committed by this worker yet: where it reads from
                    done = await consumer.position(tp)
                if highwater is None or done is None:
                    continue
                labels = (tp.topic, str(tp.partition))
                CONSUMER_LAG.labels(*labels).set(max(0, highwater - done))
                shown.add(labels)
        for labels in self._shown - shown:
            CONSUMER_LAG.remove(*labels)
        self._shown = shown


def instrument(app: faust.App) -> None:
    """Count each agent's events and refresh the consumer lag (the batch times and the store counters are
    always counted)."""
    app.sensors.add(AgentEvents())
    lag = LagRefresher(app)
    timer(app, interval=LAG_REFRESH_S, name="consumer_lag")(lag.refresh)


class _FlushCpuFirst(Collector):
    """The process's metrics, with its CPU added just before they are read."""

    def __init__(self, cpu: CpuMeter) -> None:
        self.cpu = cpu

    def collect(self) -> Iterator[Any]:
        self.cpu.flush()
        yield from REGISTRY.collect()


def serve(port: int, host: str) -> bool:
    """Serve the Prometheus text on `host:port` from a thread; False (and a warning) when the port is taken,
    so a second stack on the machine runs without metrics rather than not at all."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FlushCpuFirst(CpuMeter("streams")))
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics: cannot listen on %s:%d (%s); running without the metrics port", host, port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True
