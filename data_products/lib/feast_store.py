"""Feast on the data home: one configuration for Dagster and the ``feast`` CLI, and two mechanisms
the file offline store needs to be trusted (a per-view point-in-time join, online/offline parity).

Configuration: the registry, the SQLite online store and the file offline store live under
``<DATA_PRODUCTS_HOME>/features``, never in the repository. Feast 0.67 runs
``os.path.expandvars`` over ``feature_store.yaml`` before parsing it, so the repository's YAML
names ``${DATA_PRODUCTS_HOME}``; Python callers build the same configuration from the settings
(:func:`repo_config`), and a test checks the two agree.

The file (dask) offline store is used because the DuckDB one breaks with sqlglot 30, which
dagster-dbt pulls in (docs/pinned-stack.md).
Its historical join has two traps that :func:`point_in_time_features` works around:

- it de-duplicates on (the join keys seen so far, entity timestamp), so two entity rows that
  share them (two flights from JFK scheduled at 07:00) collapse into one;
- it drops an entity row whose key has feature rows but none inside the TTL window, instead of
  returning nulls;
- an entity key with no feature rows at all leaves a null timestamp that dask cannot sort
  ("Divisions calculation failed"), failing the whole join.

So each view is joined on its own, for the distinct (key, timestamp) pairs whose key occurs in
the view's source only, and the result is joined back to every entity row (a pair Feast did not
answer reads as nulls). The point-in-time logic itself (latest row at or before the timestamp,
within the TTL) stays Feast's.

A fourth trap is cost: the file store reads the view's whole source and merges every entity row
with every feature row of its key before applying the TTL, so a month of entity rows against a
year of hourly weather is 12 times the work of the same month against a month, and a year's
training set, chunk by chunk, grows with the square of the year. :func:`point_in_time_features`
therefore takes the view's rows that can possibly answer (``feature_rows``: the entity rows' time
span widened by the TTL, :func:`rows_in_reach`), hands Feast's offline store a copy of the
registered view whose source is just those rows, and leaves the join to Feast: rows outside
``[earliest timestamp - TTL, latest timestamp]`` can never be picked by it, so the answer is the
same and the work is bounded by the chunk.
"""

from __future__ import annotations

import copy
import math
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import polars as pl

from data_products.lib.keys import DatasetName, validate_column, validate_partition_key
from data_products.lib.settings import REPO_ROOT, Settings, get_settings

if TYPE_CHECKING:  # feast is imported where it is used: importing it costs 3.4 s
    from feast import FeatureStore, FeatureView, RepoConfig

FEATURE_REPO = REPO_ROOT / "feature_repo"
"""The repository the ``feast`` CLI runs on: ``feast -c feature_repo apply``."""
FEAST_PROJECT = "aviation_delays"
HOME_VARIABLE = "${DATA_PRODUCTS_HOME}"


def feature_root(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).features


def registry_path(settings: Settings | None = None) -> Path:
    return feature_root(settings) / "registry.db"


def online_store_path(settings: Settings | None = None) -> Path:
    return feature_root(settings) / "online_store.db"


def repo_config_dict(home: str) -> dict[str, Any]:
    """The ``feature_store.yaml`` content for a data home given as a path or as
    ``${DATA_PRODUCTS_HOME}`` (what the file in the repository says)."""
    return {
        "project": FEAST_PROJECT,
        "provider": "local",
        "registry": f"{home}/features/registry.db",
        "online_store": {"type": "sqlite", "path": f"{home}/features/online_store.db"},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }


def repo_config(settings: Settings | None = None) -> RepoConfig:
    settings = settings or get_settings()
    settings.features.mkdir(parents=True, exist_ok=True)
    from feast import RepoConfig

    return RepoConfig(repo_path=FEATURE_REPO, **repo_config_dict(str(settings.home)))


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """A Feast store on the current data home (built per call: the home may change)."""
    from feast import FeatureStore

    return FeatureStore(config=repo_config(settings))


@contextmanager
def quiet_dask_joins() -> Iterator[None]:
    """Silence the pandas deprecation notices Feast's dask joins raise on every call (object
    columns downcast by ``fillna``/``bfill`` inside dask's sort). They are about pandas 3
    behaviour in Feast's code, not ours, and the project pins pandas < 3 (feast needs it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*Downcasting object dtype", category=FutureWarning
        )
        warnings.filterwarnings("ignore", message=".*fillna.*", category=FutureWarning)
        yield


# --------------------------------------------------------------------------------------------
# Offline exports


class FeatureExports:
    """A feature view's offline rows as one Parquet file per day: ``<root>/<view>/<day>.parquet``.

    Not the lake's ``PartitionedFiles`` layout (``partition_date=<day>/part.parquet``): dask,
    which Feast's file store reads with, infers a hive partition column from those folder names
    and then refuses the same column inside the files. Flat files have no folder names to infer
    from. Each day's file is replaced by an atomic rename (a reader sees the old day or the new
    one), a day without rows keeps an empty file with the schema, and the warehouse gets a view
    ``<schema>.<name>`` over the files for SQL users.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, dataset: DatasetName) -> Path:
        return self.root / dataset.schema / dataset.name

    def day_file(self, dataset: DatasetName, day: date) -> Path:
        return self.directory(dataset) / f"{validate_partition_key(day.isoformat())}.parquet"

    def replace_days(
        self, dataset: DatasetName, frame: pl.DataFrame, *, day_column: str, days: Sequence[date]
    ) -> int:
        """Replace the files of ``days`` with the rows of ``frame`` carrying them; a row outside
        ``days`` is an error raised before anything is written. Returns the rows replaced."""
        validate_column(day_column, what=f"day column of {dataset}")
        outside = frame.filter(~pl.col(day_column).is_in(list(days)))
        if outside.height:
            raise ValueError(
                f"{dataset}: {outside.height} rows fall outside the days being replaced, e.g. "
                f"{day_column} = {outside[day_column][0]}"
            )
        directory = self.directory(dataset)
        directory.mkdir(parents=True, exist_ok=True)
        replaced = 0
        by_day = {
            key[0]: part for key, part in frame.partition_by(day_column, as_dict=True).items()
        }
        for day in sorted(set(days)):
            path = self.day_file(dataset, day)
            if path.exists():
                replaced += pl.scan_parquet(path).select(pl.len()).collect().item()
            temporary = directory / f".{path.name}.{uuid.uuid4().hex}.tmp"
            try:
                by_day.get(day, frame.clear()).write_parquet(temporary, statistics=True)
                temporary.replace(path)
            finally:
                temporary.unlink(missing_ok=True)
        return replaced

    def read_days(self, dataset: DatasetName, days: Sequence[date]) -> pl.DataFrame:
        files = [self.day_file(dataset, d) for d in sorted(set(days))]
        present = [f for f in files if f.exists()]
        if not present:
            raise FileNotFoundError(
                f"{dataset}: no export files for {min(days)}..{max(days)} under "
                f"{self.directory(dataset)}: materialise it first"
            )
        return pl.concat([pl.read_parquet(f) for f in present], how="vertical_relaxed")

    def read_window(
        self,
        dataset: DatasetName,
        start: datetime,
        end: datetime,
        *,
        timestamp_column: str = "event_timestamp",
    ) -> pl.DataFrame:
        """Rows whose ``timestamp_column`` lies in ``[start, end]`` (tz-aware), reading only the
        day files that can hold them. A day file holds one local day, which starts up to a day
        away from the UTC date, so one day either side is read and the rows filtered exactly;
        days never exported are skipped (the window may reach before the first day)."""
        validate_column(timestamp_column, what=f"timestamp column of {dataset}")
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"{dataset}: window {start}..{end} must be time-zone aware")
        first, last = start.date() - timedelta(days=1), end.date() + timedelta(days=1)
        files = [
            path
            for offset in range((last - first).days + 1)
            if (path := self.day_file(dataset, first + timedelta(days=offset))).exists()
        ]
        if not files:
            raise FileNotFoundError(
                f"{dataset}: no export files for {first}..{last} under "
                f"{self.directory(dataset)}: materialise it first"
            )
        return (
            pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
            .filter(pl.col(timestamp_column).is_between(start, end))
            .sort(timestamp_column)
        )

    def create_view(self, con: Any, dataset: DatasetName) -> None:
        """``<schema>.<name>`` in the warehouse over every day file (identifiers validated)."""
        pattern = str(self.directory(dataset) / "*.parquet").replace("'", "''")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset.schema}"')
        con.execute(
            f'CREATE OR REPLACE VIEW "{dataset.schema}"."{dataset.name}" AS '
            f"SELECT * FROM read_parquet('{pattern}', union_by_name = true)"
        )


def feature_exports(settings: Settings | None = None) -> FeatureExports:
    return FeatureExports(feature_root(settings) / "offline")


# --------------------------------------------------------------------------------------------
# Point-in-time join


def rows_in_reach(timestamps: pl.Series, ttl: timedelta) -> tuple[datetime, datetime] | None:
    """The span of feature rows a point-in-time join at ``timestamps`` can pick: from the
    earliest timestamp minus the view's TTL to the latest (Feast takes rows at or before each
    timestamp and no older than the TTL). None when there are no timestamps."""
    if ttl <= timedelta(0):
        # Feast reads a zero TTL as "no limit": every earlier row is in reach.
        raise ValueError(f"TTL {ttl}: a view without a positive TTL reaches all of its history")
    known = timestamps.drop_nulls()
    if known.is_empty():
        return None
    earliest, latest = known.min(), known.max()
    assert isinstance(earliest, datetime) and isinstance(latest, datetime)
    return earliest - ttl, latest


def point_in_time_features(
    store: FeatureStore,
    entities: pl.DataFrame,
    *,
    view: str,
    join_key: str,
    features: Mapping[str, pl.DataType],
    timestamp_column: str,
    feature_rows: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``entities`` with ``features`` (name → polars type) of ``view`` as of each row's
    ``timestamp_column``.

    One row out per row in, in the same order; nulls where the key is null or Feast found no
    row within the view's TTL at or before the timestamp.

    ``feature_rows``: the view's source rows Feast may read instead of its whole registered
    source; they must include every row in :func:`rows_in_reach` of the entity timestamps
    (fewer rows change the answer, more only cost time). None reads the registered source.
    """
    validate_column(join_key, what="join key")
    validate_column(timestamp_column, what="timestamp column")
    known_keys = (
        _source_keys(store, view, join_key)
        if feature_rows is None
        else feature_rows[join_key].unique().to_list()
    )
    pairs = (
        entities.select(join_key, timestamp_column)
        .filter(pl.col(join_key).is_in(known_keys))
        .unique()
        .sort(timestamp_column)
    )
    if pairs.is_empty():
        found = pl.DataFrame(
            schema={join_key: pl.String, timestamp_column: pl.Datetime("us", "UTC"), **features}
        )
    else:
        entity_df = pairs.rename({timestamp_column: "event_timestamp"}).to_pandas()
        entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
        refs = [f"{view}:{name}" for name in features]
        with quiet_dask_joins():
            if feature_rows is None:
                result = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
            else:
                result = _join_on_rows(store, view, refs, entity_df, feature_rows)
        found = pl.from_pandas(result[[join_key, "event_timestamp", *features]]).rename(
            {"event_timestamp": timestamp_column}
        )
    found = found.with_columns(
        pl.col(timestamp_column).dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        *(
            pl.col(name).cast(dtype, strict=False)
            for name, dtype in features.items()
            if name in found
        ),
    )
    keyed = entities.with_columns(
        pl.col(timestamp_column).dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    )
    joined = keyed.join(found, on=[join_key, timestamp_column], how="left", nulls_equal=False)
    if joined.height != entities.height:
        raise RuntimeError(
            f"point-in-time join of {view}: {entities.height} entity rows in, {joined.height} "
            "out (duplicate feature rows for one key and timestamp?)"
        )
    return joined


def _join_on_rows(
    store: FeatureStore,
    view: str,
    refs: list[str],
    entity_df: pd.DataFrame,
    feature_rows: pl.DataFrame,
) -> pd.DataFrame:
    """Feast's file offline store joining ``entity_df`` against ``feature_rows`` only.

    The registered view is copied with a file source on a scratch Parquet file of the rows
    (under the feature root, removed afterwards) and given to the offline store the project is
    configured with, the same call ``FeatureStore.get_historical_features`` makes once it has
    looked the view up in the registry. The registry itself is never changed, so concurrent
    readers and the online store keep the real source.
    """
    from feast import FileSource

    from data_products.lib.compat.feast import offline_store as configured_offline_store

    registered: FeatureView = store.get_feature_view(view)
    source = registered.batch_source
    if not isinstance(source, FileSource):  # the bounded copy below only knows file sources
        raise TypeError(f"feature view {view!r} has no file source: {source!r}")
    scratch_root = Path(store.config.registry.path).parent / "scratch"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_root, prefix=f"{view}-") as scratch:
        rows_file = Path(scratch) / "rows.parquet"
        feature_rows.write_parquet(rows_file)
        bounded = copy.copy(registered)
        bounded.batch_source = FileSource(
            name=source.name,
            path=str(rows_file),
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
            field_mapping=source.field_mapping,
        )
        offline_store = configured_offline_store(store.config)
        return offline_store.get_historical_features(
            config=store.config,
            feature_views=[bounded],
            feature_refs=refs,
            entity_df=entity_df,
            registry=store.registry,
            project=store.project,
            full_feature_names=False,
        ).to_df()


def _source_keys(store: FeatureStore, view: str, join_key: str) -> list[str]:
    """The distinct keys in a view's file source (Parquet footers and one column: cheap)."""
    from feast import FileSource

    batch_source = store.get_feature_view(view).batch_source
    if not isinstance(batch_source, FileSource):  # only file sources have Parquet to read
        raise TypeError(f"feature view {view!r} has no file source: {batch_source!r}")
    source = Path(batch_source.path)
    files = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
    if not files:
        return []
    return pl.scan_parquet(files).select(pl.col(join_key).unique()).collect()[join_key].to_list()


# --------------------------------------------------------------------------------------------
# Online / offline parity


@dataclass(frozen=True)
class ParityReport:
    """How many sampled entities' online values differ from the offline values as of the same
    time, per view, with a few examples."""

    compared: int
    mismatched: int
    per_view: dict[str, tuple[int, int]]
    examples: list[dict[str, Any]]

    @property
    def mismatch_rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0


def _same(online: Any, offline: Any) -> bool:
    missing_online = online is None or (isinstance(online, float) and math.isnan(online))
    missing_offline = offline is None or (isinstance(offline, float) and math.isnan(offline))
    if missing_online or missing_offline:
        return missing_online and missing_offline
    if isinstance(online, float) or isinstance(offline, float):
        return math.isclose(float(online), float(offline), rel_tol=1e-9, abs_tol=1e-9)
    return str(online) == str(offline)


def online_offline_parity(
    store: FeatureStore,
    samples: Iterable[tuple[str, str, Mapping[str, datetime], Sequence[str]]],
    *,
    max_examples: int = 5,
    feature_rows: Mapping[str, pl.DataFrame] | None = None,
) -> ParityReport:
    """Compare each sampled entity's online values with the offline point-in-time values as of
    the event timestamp of its newest row in the window just materialised.

    ``samples`` yields ``(view, join_key, {key: newest event timestamp}, features)``. Why that
    time and not the window's end: the online store keeps an entity's latest values without
    applying the view's TTL, while the offline join answers null past it, so a value older than
    the TTL at the window's end would read as a false mismatch. As of its own newest timestamp
    the offline join must return exactly the row ``materialize`` wrote online.

    ``feature_rows`` (view → rows): as in :func:`point_in_time_features`, the rows Feast may read
    for a view instead of its whole source; they must hold every sampled key's rows in reach of
    its timestamp. Without them a year's source costs minutes for 100 keys (measured: 88 s for
    the flight schedule), on every run, however few days it materialised.
    """
    compared = mismatched = 0
    per_view: dict[str, tuple[int, int]] = {}
    examples: list[dict[str, Any]] = []
    for view, join_key, newest, features in samples:
        keys = sorted(newest)
        if not keys:
            continue
        online = store.get_online_features(
            features=[f"{view}:{name}" for name in features],
            entity_rows=[{join_key: key} for key in keys],
        ).to_dict()
        entity_df = pd.DataFrame(
            {
                join_key: keys,
                "event_timestamp": pd.to_datetime([newest[k] for k in keys], utc=True),
            }
        )
        refs = [f"{view}:{name}" for name in features]
        rows = (feature_rows or {}).get(view)
        with quiet_dask_joins():
            offline = (
                store.get_historical_features(entity_df=entity_df, features=refs).to_df()
                if rows is None
                else _join_on_rows(store, view, refs, entity_df, rows)
            ).set_index(join_key)
        view_mismatches = 0
        for i, key in enumerate(online[join_key]):
            differing = [
                name
                for name in features
                if key not in offline.index
                or not _same(online[name][i], _scalar(offline.at[key, name]))
            ]
            if differing:
                view_mismatches += 1
                if len(examples) < max_examples:
                    examples.append(
                        {
                            "view": view,
                            join_key: key,
                            "as_of": newest[key].isoformat(),
                            "features": differing,
                            "online": {n: online[n][i] for n in differing},
                            "offline": {
                                n: _scalar(offline.at[key, n]) if key in offline.index else None
                                for n in differing
                            },
                        }
                    )
        per_view[view] = (len(keys), view_mismatches)
        compared += len(keys)
        mismatched += view_mismatches
    return ParityReport(compared, mismatched, per_view, examples)


def _scalar(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    return value.item() if hasattr(value, "item") else value
