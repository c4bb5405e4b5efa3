"""Runs the outbox reconciler (app/outbox.py) on one worker of the group every outbox_sweep_interval_s: the
events of follows, unfollows and comments whose requests wrote their rows but never published them.

Each record published counts in photos_reconciled_total{kind="follows"|"comments"}. Safe to run on several
workers at once (a record read twice is published twice, which the agents apply as once); on the leader
only, so the group reads each partition of `outbox` once."""

from __future__ import annotations

import faust

from app.outbox import Reconciler
from app.settings import Settings
from app.wiring import Wiring
from streams.metrics import RECONCILED
from streams.retry import timer


def register(app: faust.App, settings: Settings, wiring: Wiring) -> None:
    reconcilers: list[Reconciler] = []  # built on the first tick, once the connections exist

    def count(topic: str) -> None:
        RECONCILED.labels(topic).inc()

    # a failed run (Kafka or Cassandra away) is tried again at the next tick, from the bucket it stopped in
    @timer(app, interval=settings.outbox_sweep_interval_s, on_leader=True, name="outbox_reconciler")
    async def outbox_reconciler() -> None:
        if not reconcilers:
            storage = await wiring.storage()
            reconcilers.append(Reconciler(storage.outbox, await wiring.events(), settings.outbox_grace_s, count))
        await reconcilers[0].run()
