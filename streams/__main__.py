"""`photos-streams`: run a Faust worker with every agent of the project."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import faust
from aiokafka.admin import AIOKafkaAdminClient

from app.client_security import kafka_options
from app.settings import Settings
from streams import metrics
from streams.app import create_app

log = logging.getLogger("photos-streams")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


async def kafka_answers(settings: Settings) -> bool:
    """The brokers answer a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000,
                                **kafka_options(settings))
    try:
        await admin.start()
        return bool((await admin.describe_cluster())["brokers"])
    except Exception:
        return False
    finally:
        await admin.close()


async def wait_for_kafka(settings: Settings) -> None:
    """Faust exits at once when it cannot reach the brokers as it starts; wait for them instead, so a
    worker started during a Kafka outage starts its agents when Kafka is back (once it runs, Faust rides
    outages out by itself)."""
    delay, waited = FIRST_DELAY_S, 0.0
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # one line per wait below, not one error per connection attempt
    try:
        while not await kafka_answers(settings):
            if waited == 0.0 or delay >= MAX_DELAY_S:
                log.warning("Kafka (%s) does not answer; waiting for it (%.0f s so far)",
                            settings.kafka_bootstrap, waited)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, MAX_DELAY_S)
    finally:
        client_log.setLevel(level)
    if waited:
        log.info("Kafka answers after %.0f s; starting the worker", waited)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photos-streams", description="Run a Faust worker with every agent.")
    parser.add_argument("--debug", action="store_true", help="debug logging")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port "
                        "(default: settings.streams_metrics_port; 0: none)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    loglevel = "debug" if args.debug else "info"
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    settings = Settings.from_env()
    metrics_port = settings.streams_metrics_port if args.metrics_port is None else args.metrics_port
    asyncio.run(wait_for_kafka(settings))
    app = create_app(settings)
    if metrics_port > 0 and metrics.serve(metrics_port, settings.ops_host):  # an ops endpoint, like the API's
        metrics.instrument(app)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
