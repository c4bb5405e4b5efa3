"""`ranker_models` and `ranker_active`: the registry of trained ranking models and which one serves.

The training job (app/ranking/training.py) records every model it trains, promoted or not, and
promotes one by pointing `ranker_active` at it; every API process polls `active` (app/ranking/serving.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.storage.cassandra import CassandraSession

LIST_LIMIT = 50  # versions `recent` reads at most


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: int
    created_at: datetime
    artifact_key: str
    artifact_sha256: str
    feature_version: int
    features: tuple[str, ...]
    train_from_ms: int
    holdout_from_ms: int
    holdout_to_ms: int
    metrics: dict[str, float]
    promoted: bool
    verdict: str

    @property
    def label(self) -> str:
        """How responses name it (X-Feed-Ranker)."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: int
    promoted_at: datetime


class RankerModels:
    def __init__(self, cass: CassandraSession) -> None:
        self._cass = cass

    async def prepare(self) -> RankerModels:
        p = self._cass.prepare
        columns = ("name, version, created_at, artifact_key, artifact_sha256, feature_version, features,"
                   " train_from_ms, holdout_from_ms, holdout_to_ms, metrics, promoted, verdict")
        self._record = await p(f"INSERT INTO ranker_models ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._get = await p(f"SELECT {columns} FROM ranker_models WHERE name = ? AND version = ?")
        self._recent = await p(f"SELECT {columns} FROM ranker_models WHERE name = ? LIMIT ?")
        self._mark_promoted = await p("UPDATE ranker_models SET promoted = true WHERE name = ? AND version = ?")
        self._activate = await p("INSERT INTO ranker_active (name, version, promoted_at) VALUES (?, ?, ?)")
        self._active = await p("SELECT name, version, promoted_at FROM ranker_active WHERE name = ?")
        self._deactivate = await p("DELETE FROM ranker_active WHERE name = ?")
        return self

    async def record(self, model: ModelRecord) -> None:
        await self._cass.execute(self._record, (
            model.name, model.version, model.created_at, model.artifact_key, model.artifact_sha256,
            model.feature_version, list(model.features), model.train_from_ms, model.holdout_from_ms,
            model.holdout_to_ms, dict(model.metrics), model.promoted, model.verdict,
        ))

    async def get(self, name: str, version: int) -> ModelRecord | None:
        rows = await self._cass.rows(self._get, (name, version))
        return _model(rows[0]) if rows else None

    async def recent(self, name: str, limit: int = LIST_LIMIT) -> list[ModelRecord]:
        """The newest versions first."""
        return [_model(row) for row in await self._cass.rows(self._recent, (name, min(limit, LIST_LIMIT)))]

    async def promote(self, name: str, version: int) -> None:
        """Serve `version` from now on (each API process picks it up within settings.ranker_poll_s)."""
        await self._cass.execute(self._mark_promoted, (name, version))
        await self._cass.execute(self._activate, (name, version, datetime.now(UTC)))

    async def active(self, name: str) -> ActiveModel | None:
        rows = await self._cass.rows(self._active, (name,))
        if not rows:
            return None
        row = rows[0]
        return ActiveModel(row.name, row.version, row.promoted_at)

    async def deactivate(self, name: str) -> None:
        """Serve no model of this family: the feed goes back to the formula."""
        await self._cass.execute(self._deactivate, (name,))


def _model(row) -> ModelRecord:
    return ModelRecord(
        name=row.name, version=row.version, created_at=row.created_at, artifact_key=row.artifact_key,
        artifact_sha256=row.artifact_sha256, feature_version=row.feature_version, features=tuple(row.features or ()),
        train_from_ms=row.train_from_ms, holdout_from_ms=row.holdout_from_ms, holdout_to_ms=row.holdout_to_ms,
        metrics=dict(row.metrics or {}), promoted=bool(row.promoted), verdict=row.verdict or "",
    )
