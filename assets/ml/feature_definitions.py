"""The Feast feature repository's objects, declared once as data and built for a data home.

Why a builder and not module-level Feast objects: the file sources name paths under the data
home, which is only known at call time (tests and benchmarks each use their own). Dagster calls
:func:`build_repo_objects` with the settings' home; ``feature_repo/repo.py`` calls it with
``DATA_PRODUCTS_HOME`` so the ``feast`` CLI and ``feast ui`` see the same repository.

Every view is one export dataset ``ml/serving/<view>`` (Parquet, one file per aviation day
under ``<home>/features/offline/ml_serving/<view>/``). A view's ``*_known_at_s`` feature is the
epoch second of the latest information it used; the training set's leakage check compares it
with the flight's prediction time, so a view whose event timestamps lie is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from data_products.lib.domains import domain
from data_products.lib.keys import DatasetName

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView, FileSource

PROJECT = "aviation_delays"
EVENT_TIMESTAMP = "event_timestamp"
PARTITION_COLUMN = "partition_date"
FEATURE_SERVICE = "delay_model_v1"
# Feature types are polars types here; Feast's are looked up when the repository objects are
# built. Importing feast costs 3.4 s, which every process that loads the code location (CLI,
# UI, each run) would pay for a module that only names types.
Float64 = pl.Float64()
Int64 = pl.Int64()
String = pl.String()


@dataclass(frozen=True)
class ViewSpec:
    """One feature view: its entity's join key, features (name → polars type), TTL, meaning."""

    name: str
    join_key: str
    features: dict[str, pl.DataType]
    ttl: timedelta
    description: str

    @property
    def dataset(self) -> DatasetName:
        return DatasetName("ml", "serving", self.name)

    @property
    def polars_types(self) -> dict[str, pl.DataType]:
        """The features' polars types (how exports store them and joins return them)."""
        return dict(self.features)

    @property
    def known_at(self) -> str:
        """The feature holding the epoch second of the newest information behind a row."""
        return next(name for name in self.features if name.endswith("_known_at_s"))

    @property
    def model_features(self) -> list[str]:
        """Features a model may use: not identifiers, not instants (``*_epoch_s``: a model
        fed absolute times learns the calendar, and they drift by construction), not
        information times."""
        return [
            name
            for name, dtype in self.features.items()
            if dtype != String and not name.endswith(("_known_at_s", "_epoch_s"))
        ]


ENTITIES: dict[str, str] = {
    "flight_id": "flight: one scheduled departure, '<YYYYMMDD>-<carrier><number>-<origin>'.",
    "origin": "origin: a New York departure airport (FAA code).",
    "carrier": "carrier: an airline (two-letter code).",
    "route": "route: an origin-destination pair, '<origin>-<dest>'.",
    "tailnum": "aircraft: a tail number.",
}

VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        "flight_schedule",
        "flight_id",
        {
            "flight_carrier": String,
            "flight_origin": String,
            "flight_dest": String,
            "flight_tailnum": String,
            "sched_dep_epoch_s": Int64,
            "sched_dep_hour": Int64,
            "day_of_week": Int64,
            "distance_mi": Float64,
            "flight_known_at_s": Int64,
        },
        timedelta(days=2),
        "The schedule of a departure (carrier, route, tail, local hour, weekday, distance), "
        "known from the start of its local day.",
    ),
    ViewSpec(
        "origin_delay",
        "origin",
        {
            "origin_avg_dep_delay_7d": Float64,
            "origin_departures_7d": Int64,
            "origin_known_at_s": Int64,
        },
        timedelta(days=2),
        "Average departure delay at the origin over the 7 local days before the day, from "
        "departures that had left by its start.",
    ),
    ViewSpec(
        "carrier_delay",
        "carrier",
        {
            "carrier_delay_rate_30d": Float64,
            "carrier_departures_30d": Int64,
            "carrier_known_at_s": Int64,
        },
        timedelta(days=2),
        "Share of the carrier's departures that left 15 minutes late or more over the 30 local "
        "days before the day.",
    ),
    ViewSpec(
        "route_delay",
        "route",
        {
            "route_avg_arr_delay_30d": Float64,
            "route_arrivals_30d": Int64,
            "route_known_at_s": Int64,
        },
        timedelta(days=2),
        "Average arrival delay on the route over the 30 local days before the day, from flights "
        "that had landed by its start.",
    ),
    ViewSpec(
        "origin_weather",
        "origin",
        {
            "visib_mi": Float64,
            "wind_speed_mph": Float64,
            "precip_in": Float64,
            "weather_severity": Float64,
            "weather_known_at_s": Int64,
        },
        timedelta(hours=3),
        "Hourly weather observed at the origin and a 0-3 severity score (low visibility, wind, "
        "precipitation); the latest observation at or before the prediction time.",
    ),
    ViewSpec(
        "aircraft_delay",
        "tailnum",
        {
            "aircraft_age_years": Float64,
            "aircraft_last_dep_delay_min": Float64,
            "aircraft_mean_dep_delay_24h": Float64,
            "aircraft_departures_24h": Int64,
            "aircraft_known_at_s": Int64,
        },
        timedelta(days=7),
        "The aircraft's age and its recent delays: the delay of its latest departure from New "
        "York and the mean over its departures in the 24 hours up to it.",
    ),
)
VIEWS_BY_NAME: dict[str, ViewSpec] = {view.name: view for view in VIEWS}

MODEL_FEATURES: list[str] = [name for view in VIEWS for name in view.model_features]
"""The model's inputs, in a fixed order (the artifact records it too)."""


def export_dir(home: Path, view: ViewSpec) -> Path:
    """Where a view's export files live (``data_products.lib.feast_store.FeatureExports``)."""
    return home / "features" / "offline" / view.dataset.schema / view.name


def build_repo_objects(home: Path) -> list[Entity | FileSource | FeatureView | FeatureService]:
    """Entities, file sources, feature views and the model's feature service for ``home``."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64 as FeastFloat64
    from feast.types import Int64 as FeastInt64
    from feast.types import String as FeastString

    feast_types = {Float64: FeastFloat64, Int64: FeastInt64, String: FeastString}
    entities = {
        key: Entity(name=key, join_keys=[key], value_type=ValueType.STRING, description=text)
        for key, text in ENTITIES.items()
    }
    objects: list[Entity | FileSource | FeatureView | FeatureService] = list(entities.values())
    views: list[FeatureView] = []
    for spec in VIEWS:
        source = FileSource(
            name=f"{spec.name}_export",
            path=str(export_dir(home, spec)),
            timestamp_field=EVENT_TIMESTAMP,
            description=f"The ml/serving/{spec.name} export (one Parquet file per day).",
        )
        view = FeatureView(
            name=spec.name,
            entities=[entities[spec.join_key]],
            ttl=spec.ttl,
            schema=[
                Field(name=name, dtype=feast_types[dtype]) for name, dtype in spec.features.items()
            ],
            source=source,
            online=True,
            description=spec.description,
            owner=domain("ml").owner,  # declared once, in data_products/domains/ml.yaml
        )
        objects += [source, view]
        views.append(view)
    objects.append(
        FeatureService(
            name=FEATURE_SERVICE,
            features=[*views],
            description="Every feature the departure-delay model reads (version 1).",
        )
    )
    return objects
