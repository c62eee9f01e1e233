"""Online scoring over HTTP: the online features of a flight and the delay model's prediction.

``make serve-ml`` (``uvicorn assets.ml.serving_api:app``) starts it on the data home's Feast
online store and the model named by ``features/models/current.json``:

- ``GET /flights/{flight_id}``: a scheduled flight known to the online store
  (``20130131-UA1000-EWR``);
- ``POST /predict``: a flight given by its attributes (carrier, origin, destination, tail,
  local hour, weekday, distance), for flights the store has never seen;
- ``GET /health``: the model version in service.

Features come from the online store only (the SQLite file), never from the warehouse, so serving
takes no DuckDB lock. An entity the store has no value for (an unseen aircraft or route, a
weather gap) gets the model's cold-start defaults (its training medians), and the response says
which groups were defaulted. The model is reloaded when ``current.json`` changes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from threadpoolctl import ThreadpoolController

from assets.ml import artifacts
from assets.ml.feature_definitions import VIEWS, VIEWS_BY_NAME
from data_products.lib.feast_store import feature_store
from data_products.lib.settings import Settings, get_settings

if TYPE_CHECKING:  # feast is imported by the store factory; importing it costs 3.4 s
    from feast import FeatureStore

FLIGHT_ID = r"^\d{8}-[A-Z0-9]{2}\d{1,4}-[A-Z]{3}$"
ENTITY_VIEWS = [view for view in VIEWS if view.name != "flight_schedule"]
"""The views read per request, with the join key each one takes from the flight."""
THRESHOLD = 0.5


class FlightRequest(BaseModel):
    """A flight described by its attributes (the ones the schedule view would hold)."""

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", examples=["UA"])
    origin: str = Field(pattern=r"^[A-Z]{3}$", examples=["EWR"])
    dest: str = Field(pattern=r"^[A-Z]{3}$", examples=["ORD"])
    tailnum: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,8}$", examples=["N14228"])
    sched_dep_hour: int = Field(ge=0, le=23, description="Local hour of scheduled departure.")
    day_of_week: int = Field(ge=1, le=7, description="ISO weekday (1 = Monday).")
    distance_mi: float = Field(gt=0, le=10_000)


class Prediction(BaseModel):
    flight_id: str | None
    model_version: str
    delay_probability: float = Field(description="P(departure delay >= 15 minutes).")
    predicted_delayed: bool
    features: dict[str, float | None] = Field(
        description="Model inputs as read online; null where a default was used."
    )
    cold_start: list[str] = Field(
        description="Feature groups with no online value (unseen aircraft, route, ...): the "
        "model used its training medians for them."
    )
    defaulted_features: list[str]


class _Model:
    """The bundle in service, reloaded when ``current.json`` changes (checked per request by
    its modification time: a stat, not a read)."""

    def __init__(self, settings: Settings) -> None:
        self._pointer_file = artifacts.models_dir(settings) / "current.json"
        self._settings = settings
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._bundle: artifacts.ModelBundle | None = None
        self._version = ""

    def get(self) -> tuple[str, artifacts.ModelBundle]:
        try:
            stamp = self._pointer_file.stat().st_mtime
        except FileNotFoundError:
            raise HTTPException(
                503,
                f"no trained model under {self._pointer_file.parent}: "
                "materialise ml/gold/delay_model",
            ) from None
        with self._lock:
            if stamp != self._stamp or self._bundle is None:
                pointer = artifacts.current_model(self._settings)
                assert pointer is not None
                self._bundle, self._version, self._stamp = (
                    artifacts.load_bundle(pointer),
                    pointer.version,
                    stamp,
                )
            return self._version, self._bundle


@cache
def _openmp() -> ThreadpoolController:
    """The process's thread pools, found once (a lookup per request would cost milliseconds),
    and only after a model is loaded: before, sklearn's OpenMP runtime is not loaded yet and
    would be missed."""
    return ThreadpoolController()


def _flight_attributes(store: FeatureStore, flight_id: str) -> dict[str, Any] | None:
    view = VIEWS_BY_NAME["flight_schedule"]
    found = store.get_online_features(
        features=[f"{view.name}:{name}" for name in view.features],
        entity_rows=[{"flight_id": flight_id}],
    ).to_dict()
    if found["flight_known_at_s"][0] is None:
        return None
    return {name: found[name][0] for name in view.features}


def score(
    store: FeatureStore,
    model: artifacts.ModelBundle,
    version: str,
    *,
    flight_id: str | None,
    carrier: str,
    origin: str,
    dest: str,
    tailnum: str | None,
    schedule: dict[str, float],
) -> Prediction:
    """Read the flight's entity features online (one call for every view), fill cold starts
    with the model's defaults, predict."""
    keys = {
        "origin": origin,
        "carrier": carrier,
        "route": f"{origin}-{dest}",
        # An empty key is never stored: a flight without a tail reads as an unseen aircraft.
        "tailnum": tailnum or "",
    }
    refs = [f"{v.name}:{name}" for v in ENTITY_VIEWS for name in [*v.model_features, v.known_at]]
    online = store.get_online_features(features=refs, entity_rows=[keys]).to_dict()
    values: dict[str, float | None] = dict(schedule)
    cold_start = []
    for view in ENTITY_VIEWS:
        if online[view.known_at][0] is None:
            cold_start.append(view.name)
        for name in view.model_features:
            raw = online[name][0]
            values[name] = None if raw is None else float(raw)
    defaulted = [name for name in model.features if values.get(name) is None]
    row = np.array(
        [[model.defaults[n] if values.get(n) is None else values[n] for n in model.features]],
        dtype=float,
    )
    # One row: sklearn's histogram-GBM predicts tree by tree with an OpenMP team per tree, and
    # starting the team costs more than the tree (64 ms of CPU per request on 2 busy cores,
    # 0.3 ms with one thread).
    with _openmp().limit(limits=1, user_api="openmp"):
        probability = float(model.estimator.predict_proba(row)[0, 1])
    return Prediction(
        flight_id=flight_id,
        model_version=version,
        delay_probability=probability,
        predicted_delayed=probability >= THRESHOLD,
        features={name: values.get(name) for name in model.features},
        cold_start=cold_start,
        defaulted_features=defaulted,
    )


def _warm_up(store: FeatureStore, model: _Model) -> None:
    """Do once, before the first request, what the first request would: load the model, read
    Feast's registry into its cache, open the SQLite connection, find the OpenMP pools."""
    # No model yet: /health and predictions answer 503 until there is one.
    with suppress(HTTPException):
        model.get()
    refs = [f"{v.name}:{v.known_at}" for v in ENTITY_VIEWS]
    store.get_online_features(features=refs, entity_rows=[{v.join_key: "" for v in ENTITY_VIEWS}])
    _openmp()


def create_app(
    settings: Settings | None = None,
    store: FeatureStore | None = None,
    *,
    freeze_gc: bool = False,
) -> FastAPI:
    """The app on ``settings``' data home (the current environment's by default).

    ``freeze_gc`` (what ``make serve-ml`` runs with): after the warm-up, move every object that
    exists into the collector's permanent generation (``gc.freeze``). The server's heap is about
    290,000 objects (FastAPI, Feast, scikit-learn, numpy); a full collection walks all of them,
    143 ms measured here, and every request arriving meanwhile waits. Requests leave no
    garbage behind (no collection at all in 3,000 requests, bench.ml), so a full collection
    in service is rare, but each one would be a 150 ms stall; frozen, it walks only what was
    allocated since (0.002 ms). Off by default: a test process must not freeze its own heap.
    """
    settings = settings or get_settings()
    store = store or feature_store(settings)
    model = _Model(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _warm_up(store, model)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield

    app = FastAPI(
        title="Departure delay scoring",
        description="Online features (Feast, SQLite) and the delay model of the ml domain.",
        lifespan=lifespan,
    )

    # The handlers are coroutines that never await: each request runs to completion on the event
    # loop (about 3 ms: two SQLite reads and one prediction). Plain ``def`` handlers would run in
    # a thread pool, where 2 cores spend more on thread hand-offs and the GIL than on the work,
    # and where the per-request OpenMP limit below would race between threads.
    @app.get("/health")
    async def health() -> dict[str, str]:
        version, _ = model.get()
        return {
            "status": "ok",
            "model_version": version,
            "online_store": str(Path(store.config.online_store.path)),
        }

    @app.get("/flights/{flight_id}")
    async def predict_known_flight(
        flight_id: Annotated[str, PathParam(pattern=FLIGHT_ID)],
    ) -> Prediction:
        attributes = _flight_attributes(store, flight_id)
        if attributes is None:
            raise HTTPException(404, f"flight {flight_id} is not in the online store")
        version, bundle = model.get()
        schedule = {
            name: float(attributes[name])
            for name in VIEWS_BY_NAME["flight_schedule"].model_features
            if attributes[name] is not None
        }
        return score(
            store,
            bundle,
            version,
            flight_id=flight_id,
            carrier=attributes["flight_carrier"],
            origin=attributes["flight_origin"],
            dest=attributes["flight_dest"],
            tailnum=attributes["flight_tailnum"],
            schedule=schedule,
        )

    @app.post("/predict")
    async def predict_flight(flight: FlightRequest) -> Prediction:
        version, bundle = model.get()
        return score(
            store,
            bundle,
            version,
            flight_id=None,
            carrier=flight.carrier,
            origin=flight.origin,
            dest=flight.dest,
            tailnum=flight.tailnum,
            schedule={
                "sched_dep_hour": float(flight.sched_dep_hour),
                "day_of_week": float(flight.day_of_week),
                "distance_mi": flight.distance_mi,
            },
        )

    return app


def __getattr__(name: str) -> Any:
    """``uvicorn assets.ml.serving_api:app``: built on first access, not at import, so importing
    the module (tests, Dagster discovery) reads no settings and opens no store."""
    if name == "app":
        return create_app(freeze_gc=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
