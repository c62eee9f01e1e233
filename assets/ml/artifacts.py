"""Model artifacts under the data home: ``<home>/features/models/delay_model-<hash>.joblib``.

An artifact is named by the SHA-256 of its bytes, so the same model trained twice is one file
and a name can never point at different content. ``current.json`` names the artifact in
service; it is replaced by an atomic rename, so the HTTP endpoint and the drift checks read
either the old model or the new one, never half of one. Readers never need the warehouse (the
serving process must not take DuckDB's lock).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import joblib

from data_products.lib.settings import Settings, get_settings

ARTIFACT_PREFIX = "delay_model-"
_VERSION = re.compile(r"^[0-9a-f]{16}$")


def models_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).features / "models"


@dataclass
class ModelBundle:
    """Everything scoring needs, pickled together: the estimator, its feature order and the
    cold-start defaults (training medians) that fill features an entity has no value for."""

    estimator: Any
    features: list[str]
    defaults: dict[str, float]
    train_start: str
    train_end: str
    holdout_start: str
    holdout_end: str
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPointer:
    """``current.json``: which artifact is in service and what it was trained on."""

    version: str
    path: str
    train_start: str
    train_end: str
    holdout_start: str
    holdout_end: str
    metrics: dict[str, float]

    def train_days(self) -> list[date]:
        first, last = date.fromisoformat(self.train_start), date.fromisoformat(self.train_end)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def save_bundle(bundle: ModelBundle, settings: Settings | None = None) -> ModelPointer:
    """Write the artifact under its content hash (once) and make it current."""
    buffer = io.BytesIO()
    joblib.dump(bundle, buffer)
    content = buffer.getvalue()
    version = hashlib.sha256(content).hexdigest()[:16]
    directory = models_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ARTIFACT_PREFIX}{version}.joblib"
    if not path.exists():
        _write_atomically(path, content)
    pointer = ModelPointer(
        version=version,
        path=str(path),
        train_start=bundle.train_start,
        train_end=bundle.train_end,
        holdout_start=bundle.holdout_start,
        holdout_end=bundle.holdout_end,
        metrics=bundle.metrics,
    )
    _write_atomically(directory / "current.json", json.dumps(asdict(pointer), indent=2).encode())
    return pointer


def current_model(settings: Settings | None = None) -> ModelPointer | None:
    path = models_dir(settings) / "current.json"
    if not path.exists():
        return None
    pointer = ModelPointer(**json.loads(path.read_text()))
    if not _VERSION.fullmatch(pointer.version):
        raise ValueError(f"{path}: invalid model version {pointer.version!r}")
    return pointer


def load_bundle(pointer: ModelPointer) -> ModelBundle:
    """The artifact the pointer names, verified against its content hash."""
    content = Path(pointer.path).read_bytes()
    if hashlib.sha256(content).hexdigest()[:16] != pointer.version:
        raise ValueError(f"{pointer.path}: content does not match version {pointer.version}")
    bundle = joblib.load(io.BytesIO(content))
    if not isinstance(bundle, ModelBundle):
        raise TypeError(f"{pointer.path}: not a ModelBundle")
    return bundle


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    temporary.replace(path)
