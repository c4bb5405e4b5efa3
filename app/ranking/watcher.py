"""Hot reload of the promoted ranking model (docs/ranking.md#serving).

Every API process that may rank with a model (settings.feed_ranker "model" or "split") runs one
`ModelWatcher`: it reads `ranker_active` at start and then every ranker_poll_s (jittered, so processes
do not poll in lockstep). When the active version changes it reads the version's registry row, fetches
its artifact from the media store, checks the SHA-256 and the features, parses it off the event loop
and installs it in `FeedRankers`; when no version is active it clears the model (the formula ranks).

A failure never stops the feed: the process keeps serving what it had and tries again at the next poll.
A version found unusable (SHA-256 mismatch, unreadable, made for other features) is remembered and not
fetched again; one that could not be fetched (Cassandra or the media store away) is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Protocol

from prometheus_client import Counter, Gauge

from app.ranking.features import FEATURE_VERSION, FEATURES
from app.ranking.model import MODEL_NAME, LoadedModel, ModelError, decode_artifact
from app.ranking.serving import FeedRankers
from app.storage.ranker_models import ActiveModel, ModelRecord

log = logging.getLogger(__name__)

JITTER = 0.2  # each wait is ranker_poll_s times a random factor in [1 - JITTER, 1 + JITTER]

MODEL_LOADS = Counter("photos_ranker_model_loads_total",
                      "Promoted ranking models this process tried to load, by outcome", ["outcome"])
SERVED_VERSION = Gauge("photos_ranker_model_version",
                       "Version of the ranking model this process serves to new snapshots (0: the formula)",
                       multiprocess_mode="liveall")

LOADED, UNAVAILABLE, REJECTED = "loaded", "unavailable", "rejected"


class Registry(Protocol):  # app/storage/ranker_models.py RankerModels
    async def active(self, name: str) -> ActiveModel | None: ...

    async def get(self, name: str, version: int) -> ModelRecord | None: ...


class ArtifactStore(Protocol):  # app/media/store.py MediaStore
    async def get(self, key: str) -> bytes | None: ...


class Unavailable(Exception):
    """The row or the artifact could not be read now: try again at the next poll."""


class ModelWatcher:
    def __init__(self, registry: Registry, store: ArtifactStore, rankers: FeedRankers, poll_s: float,
                 name: str = MODEL_NAME) -> None:
        self._registry = registry
        self._store = store
        self._rankers = rankers
        self._poll_s = poll_s
        self._name = name
        self._rejected: set[int] = set()  # versions found unusable: never fetched again by this process
        self._logged: set[tuple[int | None, str]] = set()  # (version, outcome) already logged
        self._task: asyncio.Task | None = None
        SERVED_VERSION.set(0)

    @property
    def serving(self) -> int | None:
        """The version new snapshots are ranked with; None: the formula."""
        active = self._rankers.active
        return active.version if active is not None and active.name == self._name else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ranker-model-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._poll_s * random.uniform(1 - JITTER, 1 + JITTER))

    async def poll(self) -> None:
        """One look at `ranker_active`, acting on a change; never raises (but for cancellation)."""
        try:
            active = await self._registry.active(self._name)
        except Exception as exc:  # Cassandra away: keep serving what we have
            self._failed(None, UNAVAILABLE, f"cannot read ranker_active: {exc!r}")
            return
        self._logged.discard((None, UNAVAILABLE))  # the next outage is logged again
        if active is None:
            if self.serving is not None:
                log.info("no %s model is active any more: the formula ranks new snapshots", self._name)
                self._rankers.clear()
            SERVED_VERSION.set(0)
            return
        version = active.version
        if version == self.serving or version in self._rejected:
            return
        try:
            model = await self._load(version)
        except Unavailable as exc:
            self._failed(version, UNAVAILABLE, str(exc))
            return
        except ModelError as exc:
            self._rejected.add(version)
            self._failed(version, REJECTED, str(exc))
            return
        self._rankers.install(model)
        SERVED_VERSION.set(version)
        MODEL_LOADS.labels(LOADED).inc()
        log.info("serving ranking model %s", model.label)

    async def _load(self, version: int) -> LoadedModel:
        try:
            record = await self._registry.get(self._name, version)
        except Exception as exc:
            raise Unavailable(f"cannot read its registry row: {exc!r}") from exc
        if record is None:
            raise Unavailable("ranker_active names it but ranker_models has no row for it")
        check_features(record.feature_version, record.features)  # before fetching anything
        try:
            data = await self._store.get(record.artifact_key)
        except Exception as exc:
            raise Unavailable(f"cannot fetch {record.artifact_key}: {exc!r}") from exc
        if data is None:
            raise Unavailable(f"the media store has no {record.artifact_key}")
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(None, decode_artifact, data, record.artifact_sha256)
        if (model.name, model.version) != (self._name, version):
            raise ModelError(f"the artifact holds {model.label}, not {self._name}-{version}")
        check_features(model.feature_version, model.features)
        return model

    def _failed(self, version: int | None, outcome: str, reason: str) -> None:
        MODEL_LOADS.labels(outcome).inc()
        if (version, outcome) not in self._logged:  # once per version and outcome, not every poll
            self._logged.add((version, outcome))
            served = self._rankers.active.label if self._rankers.active is not None else "the formula"
            what = f"{self._name}-{version}" if version is not None else "the active ranking model"
            log.warning("cannot serve %s (%s): %s; still serving %s", what, outcome, reason, served)


def check_features(feature_version: int, features: tuple[str, ...]) -> None:
    if feature_version != FEATURE_VERSION or tuple(features) != FEATURES:
        raise ModelError(f"made for feature version {feature_version} {list(features)}, this API computes"
                         f" version {FEATURE_VERSION} {list(FEATURES)}")
