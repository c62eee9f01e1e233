"""The aviation data product end to end on the real data: landed drops → bronze → silver → gold
in one single-run backfill over three days around the March DST change, compared with an
independent polars computation over the package's CSVs; a re-run gives identical content; a
corrupted drop fails the blocking checks with evidence and keeps gold from running."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.aviation import drops
from assets.aviation.partitions import DAILY
from data_products.cli.runs import SliceRun, materialize_slice
from data_products.lib.instance import ensure_dagster_home
from tests.aviation import expected
from tests.snapshots import Snapshot, assert_same_snapshot, capture_home

pytestmark = pytest.mark.slow

START, END = "2013-03-09", "2013-03-11"
FIRST, LAST = date.fromisoformat(START), date.fromisoformat(END)
KNOWN_WARNINGS = {"flights.dest.known_airport", "flights.tailnum.known_plane"}


@dataclass
class Materialised:
    home: Path
    run: SliceRun
    instance: dg.DagsterInstance

    def table(self, name: str) -> pl.DataFrame:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.sql(f"SELECT * FROM {name}").pl()

    def snapshot(self) -> Snapshot:
        """Every aviation table and view of the warehouse, Iceberg table and Delta table."""
        return capture_home(self.home, schema_prefix="aviation_")


def _use_home(home: Path) -> None:
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DATA_PRODUCTS_LINEAGE_TRANSPORT"] = "file"
    ensure_dagster_home()


def _materialise(instance: dg.DagsterInstance, start: str, end: str) -> SliceRun:
    from data_products.definitions import defs

    return materialize_slice(
        defs,
        dg.AssetSelection.groups("aviation"),
        start=start,
        end=end,
        instance=instance,
        log_level="WARNING",
    )


@pytest.fixture(scope="module")
def env_guard() -> Iterator[None]:
    names = ("DATA_PRODUCTS_HOME", "DAGSTER_HOME", "DATA_PRODUCTS_LINEAGE_TRANSPORT")
    saved = {k: os.environ.get(k) for k in names}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, env_guard: None) -> Iterator[Materialised]:
    home = tmp_path_factory.mktemp("aviation")
    _use_home(home)
    drops.land(home / "landing", START, END)
    # The platform's own instance (data_products.lib.instance), not a stock test instance: what
    # the run records is read back from the storage the UI reads.
    with dg.DagsterInstance.get() as instance:
        yield Materialised(home=home, run=_materialise(instance, START, END), instance=instance)


@pytest.fixture(scope="module")
def independent() -> pl.DataFrame:
    return expected.flights(FIRST, LAST)


def test_the_range_runs_as_one_run_and_every_error_check_passes(built: Materialised) -> None:
    assert built.run.success, built.run.failed_steps
    assert built.run.skipped_assets == []
    assert built.run.gate_failures == [], [c.description for c in built.run.gate_failures]
    # the reference snapshots in a run of their own first, then the whole range as one run
    runs = built.instance.get_run_records()
    assert [r.dagster_run.run_id for r in reversed(runs)] == built.run.run_ids
    assert [r.dagster_run.tags.get("dagster/asset_partition_range_start") for r in runs] == [
        START,
        None,
    ]
    failing = {c.metadata.get("rule_id") or c.check for c in built.run.checks if not c.passed}
    assert failing <= KNOWN_WARNINGS, failing
    gold_checks = [c for c in built.run.checks if c.asset.startswith("aviation/gold/")]
    assert len(gold_checks) >= 10 and all(c.passed for c in gold_checks)


def test_every_partition_is_recorded_with_its_own_rows_and_files(built: Materialised) -> None:
    from data_products.definitions import defs

    days = DAILY.get_partition_keys_in_range(dg.PartitionKeyRange(START, END))
    graph = defs.resolve_asset_graph()
    partitioned = [
        key
        for key in dg.AssetSelection.groups("aviation").resolve(graph)
        if graph.get(key).partitions_def is not None
    ]
    assert len(partitioned) == 11
    for key in partitioned:
        assert set(days) <= built.instance.get_materialized_partitions(key), key
    for dataset in ("flights", "weather"):
        key = dg.AssetKey(["aviation", "bronze", dataset])
        for day in days:
            path = f"aviation/{day}/{dataset}.csv"
            rows = pl.read_csv(built.home / "landing" / path, infer_schema=False).height
            event = built.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
            ).records[0]
            metadata = event.asset_materialization.metadata
            assert metadata["dagster/row_count"].value == rows > 0, (dataset, day)
            assert metadata["files"].value == {path: rows}, (dataset, day)
            assert metadata["partition_range"].value == f"{START}...{END} (3 partitions)"


def test_silver_days_carry_their_own_rows_and_the_last_day_the_schema(built: Materialised) -> None:
    """Each day's silver event counts that day's published (or quarantined) rows, the run's total
    is ``run_rows``, and the table's schema and column lineage go on the range's last day only,
    the asset's latest materialisation (a year's run used to store 365 copies of them)."""
    days = DAILY.get_partition_keys_in_range(dg.PartitionKeyRange(START, END))
    for dataset in ("flights", "weather", "weather_quarantine", "flights_quarantine"):
        key = dg.AssetKey(["aviation", "silver", dataset])
        table = built.table(f"aviation_silver.{dataset}")
        total = 0
        for day in days:
            metadata = (
                built.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
                )
                .records[0]
                .asset_materialization.metadata
            )
            rows = table.filter(pl.col("partition_date") == date.fromisoformat(day)).height
            assert metadata["dagster/row_count"].value == rows, (dataset, day)
            total += rows
            assert metadata["run_rows"].value == table.height, (dataset, day)
            assert ("dagster/column_schema" in metadata) == (day == END), (dataset, day)
        assert total == table.height
        latest = built.instance.fetch_materializations(key, limit=1).records[0]
        assert latest.asset_materialization.partition == END
    for mart in ("on_time_daily", "delay_propagation"):
        key = dg.AssetKey(["aviation", "gold", mart])
        for day in days:
            metadata = (
                built.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
                )
                .records[0]
                .asset_materialization.metadata
            )
            assert ("dagster/column_lineage" in metadata) == (day == END), (mart, day)


def test_silver_flights_hold_every_delivered_flight_cancelled_ones_included(
    built: Materialised, independent: pl.DataFrame
) -> None:
    flights = built.table("aviation_silver.flights")
    assert flights.height == independent.height
    assert built.table("aviation_silver.flights_quarantine").height == 0
    assert flights.get_column("is_cancelled").sum() == independent["dep_time"].null_count() > 0
    assert (flights["flight_date"] == flights["partition_date"]).all()
    # the known gaps of the data set are published and reported, not quarantined
    warned = {
        c.metadata.get("rule_id"): c for c in built.run.checks if c.check.endswith("known_plane")
    }
    plane = warned["flights.tailnum.known_plane"]
    assert int(plane.metadata["failing_rows"]) > 0 and plane.severity == "WARN"


def test_silver_utc_times_on_the_dst_day(built: Materialised) -> None:
    row = (
        built.table("aviation_silver.flights")
        .filter(
            (pl.col("flight_date") == date(2013, 3, 10))
            & (pl.col("carrier") == "UA")
            & (pl.col("flight") == 1236)
        )
        .row(0, named=True)
    )
    assert str(row["sched_dep_utc"]) == "2013-03-10 10:19:00"  # 06:19 EDT
    assert str(row["sched_arr_utc"]) == "2013-03-10 16:03:00"  # 09:03 MST (Phoenix)


def test_reference_and_weather_quarantine_reconcile(built: Materialised) -> None:
    for dataset, bronze in [("airports", "airports"), ("planes", "planes"), ("weather", "weather")]:
        rows_in = built.table(f"aviation_bronze.{bronze}").height
        published = built.table(f"aviation_silver.{dataset}").height
        quarantined = built.table(f"aviation_silver.{dataset}_quarantine").height
        assert rows_in == published + quarantined > 0


@pytest.mark.parametrize(
    ("mart", "compute"),
    [
        ("on_time_daily", expected.on_time_daily),
        ("cancellation_rates", expected.cancellation_rates),
        ("delay_distribution", expected.delay_distribution),
        ("delay_propagation", expected.delay_propagation),
    ],
)
def test_gold_equals_an_independent_computation(
    built: Materialised, independent: pl.DataFrame, mart: str, compute
) -> None:
    wanted = compute(independent)
    actual = built.table(f"aviation_gold.{mart}")
    assert actual.height == wanted.height > 0
    expected.assert_same_rows(actual, wanted)


def test_weather_impact_equals_an_independent_computation(
    built: Materialised, independent: pl.DataFrame
) -> None:
    wanted = expected.weather_impact(independent, expected.weather())
    expected.assert_same_rows(built.table("aviation_gold.weather_impact"), wanted)


def test_rerunning_the_range_gives_identical_content(built: Materialised) -> None:
    before = built.snapshot()
    assert any(name.startswith("duckdb:aviation_silver.") for name in before)  # Parquet views
    again = _materialise(built.instance, START, END)
    assert again.success
    assert_same_snapshot(before, built.snapshot())


def test_a_corrupted_drop_fails_blocking_checks_with_evidence(
    tmp_path: Path, env_guard: None
) -> None:
    home = tmp_path / "corrupt"
    _use_home(home)
    day = "2013-05-02"
    drops.land(home / "landing", day, day)
    drop = home / "landing/aviation" / day / "flights.csv"
    frame = pl.read_csv(drop, infer_schema=False)
    # A mislabelled drop: every row says it departed a day later than the drop's day.
    frame.with_columns(pl.lit("3").alias("day")).write_csv(drop)
    with dg.instance_for_test() as instance:
        run = _materialise(instance, day, day)
    failed = {c.check: c for c in run.checks if not c.passed}
    check = failed["flights__flight_date__in_partition"]
    assert check.blocking and check.severity == "ERROR"
    assert check.metadata["failing_rows"] == str(frame.height)
    assert f"aviation/{day}/flights.csv line 2" in check.description
    assert "failing_sample" in check.metadata
    assert any(k.startswith("aviation/gold/") for k in run.skipped_assets)
