"""A trained ranking model: its artifact in the media store, and scoring feature rows with it.

The artifact is one JSON document at `models/ranker/<name>-<version>.json`:

    {"format": 1, "name": "lightgbm", "version": 20261207221530, "feature_version": 1,
     "features": ["age_hours", ...], "model": "<LightGBM's model_to_string()>"}

The registry row (app/storage/ranker_models.py) names the key and the artifact's SHA-256, checked
on load. Scoring is single-threaded (num_threads=1): it runs on the API's event loop, in-process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MODEL_NAME = "lightgbm"  # the model family the training job records and the API serves (ranker_models.name)
ARTIFACT_FORMAT = 1
ARTIFACT_PREFIX = "models/ranker"
ARTIFACT_CONTENT_TYPE = "application/json"


class ModelError(Exception):
    """An artifact that cannot be served: missing, corrupt, or made for other features."""


def artifact_key(name: str, version: int) -> str:
    return f"{ARTIFACT_PREFIX}/{name}-{version}.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_artifact(name: str, version: int, feature_version: int, features: tuple[str, ...], model_text: str) -> bytes:
    return json.dumps({
        "format": ARTIFACT_FORMAT, "name": name, "version": version, "feature_version": feature_version,
        "features": list(features), "model": model_text,
    }).encode()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score: `score(rows)` gives one float per feature row, higher is better."""

    name: str
    version: int
    feature_version: int
    features: tuple[str, ...]
    booster: Any  # lightgbm.Booster

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"

    def score(self, rows) -> list[float]:
        """`rows`: feature rows as lists, or a float64 array (features.matrix: no conversion then)."""
        import numpy as np

        if len(rows) == 0:
            return []
        return self.score_matrix(np.asarray(rows, dtype=np.float64)).tolist()

    def score_matrix(self, rows):
        """The scores of a float64 feature matrix (features.matrix) as a numpy array: what the feed ranks with."""
        import numpy as np

        if len(rows) == 0:
            return np.empty(0)
        return self.booster.predict(rows, num_threads=1, raw_score=True)


def decode_artifact(data: bytes, expected_sha256: str | None = None) -> LoadedModel:
    """The model of an artifact (CPU work: parsing the trees; call it off the event loop)."""
    import lightgbm

    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ModelError("the artifact's SHA-256 does not match the registry")
    try:
        doc = json.loads(data)
        if doc.get("format") != ARTIFACT_FORMAT:
            raise ModelError(f"unknown artifact format {doc.get('format')!r}")
        booster = lightgbm.Booster(model_str=doc["model"])  # score() asks for one thread per call
        features = tuple(doc["features"])
        if booster.num_feature() != len(features):
            raise ModelError(f"the model reads {booster.num_feature()} features, the artifact names {len(features)}")
        return LoadedModel(doc["name"], int(doc["version"]), int(doc["feature_version"]), features, booster)
    except ModelError:
        raise
    except Exception as exc:  # a corrupt document or model text
        raise ModelError(f"unreadable artifact: {exc}") from exc
