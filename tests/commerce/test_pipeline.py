"""The commerce data product end to end: generated drops → bronze → silver → gold in one
single-run backfill, compared with the generator's ground truth and an independent polars
computation of gold; idempotence; a corrupted drop; lineage; a CLI range backfill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.commerce.generator import generate
from data_products.cli.runs import SliceRun, materialize_slice
from data_products.lib.instance import ensure_dagster_home
from data_products.lib.lineage import read_events
from tests.commerce import expected_gold as expected
from tests.commerce.test_gold import assert_same_rows
from tests.snapshots import assert_same_snapshot, capture_home

pytestmark = pytest.mark.slow

START, END = "2026-01-01", "2026-01-03"
SILVER = ("fx_rates", "customers", "products", "order_lines", "orders")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Materialised:
    home: Path
    run: SliceRun
    instance: dg.DagsterInstance

    def table(self, name: str) -> pl.DataFrame:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.sql(f"SELECT * FROM {name}").pl()

    def truth(self, dataset: str) -> pl.DataFrame:
        return pl.read_parquet(self.home / "truth" / "commerce" / f"{dataset}.parquet")


def _use_home(home: Path) -> None:
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DATA_PRODUCTS_LINEAGE_TRANSPORT"] = "file"
    ensure_dagster_home()


def _materialise(instance: dg.DagsterInstance, start: str, end: str) -> SliceRun:
    from data_products.definitions import defs

    return materialize_slice(
        defs, dg.AssetSelection.groups("commerce"), start=start, end=end, instance=instance
    )


@pytest.fixture(scope="module")
def env_guard() -> Iterator[None]:
    saved = {
        k: os.environ.get(k)
        for k in (
            "DATA_PRODUCTS_HOME",
            "DAGSTER_HOME",
            "DATA_PRODUCTS_LINEAGE_TRANSPORT",
            "DATA_PRODUCTS_CHUNK_ROWS",
        )
    }
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, env_guard: None) -> Iterator[Materialised]:
    home = tmp_path_factory.mktemp("pipeline")
    _use_home(home)
    # A small chunk budget, so the range runs as several chunks per asset: the ground-truth
    # comparisons below then cover chunked processing and the merged checks.
    os.environ["DATA_PRODUCTS_CHUNK_ROWS"] = "350"
    generate(home / "landing", home / "truth", start=date(2026, 1, 1), days=3, rows_per_day=400)
    with dg.instance_for_test() as instance:
        run = _materialise(instance, START, END)
        yield Materialised(home=home, run=run, instance=instance)


def test_the_range_runs_as_one_successful_run(built: Materialised) -> None:
    assert built.run.success, built.run.failed_steps
    chunked = [c for c in built.run.checks if c.metadata.get("chunks") not in (None, "1")]
    assert chunked, "the small chunk budget should split the range into chunks"
    assert built.run.skipped_assets == []
    assert built.run.gate_failures == []
    runs = built.instance.get_run_records()
    assert len(runs) == 1  # the 3-day range, all layers, is a single run


@pytest.mark.parametrize("dataset", SILVER)
def test_silver_publishes_exactly_the_ground_truth(built: Materialised, dataset: str) -> None:
    truth = built.truth(dataset)
    published = built.table(f"commerce_silver.{dataset}").select(truth.columns)
    assert_same_rows(published, truth)


def test_quarantine_holds_every_rejected_row_with_its_rule(built: Materialised) -> None:
    wanted = (
        built.truth("quarantine").select("dataset", "_source_file", "_source_line", "rule_id")
        if "_source_file" in built.truth("quarantine").columns
        else built.truth("quarantine").select(
            "dataset",
            pl.col("source_file").alias("_source_file"),
            pl.col("source_line").alias("_source_line"),
            "rule_id",
        )
    )
    got = pl.concat(
        built.table(f"commerce_silver.{d}_quarantine").select(
            pl.lit(d).alias("dataset"), "_source_file", "_source_line", "rule_id", "reason"
        )
        for d in SILVER
    )
    assert_same_rows(got.drop("reason"), wanted)
    # every reason names the rule, the file and the line
    for row in got.head(50).iter_rows(named=True):
        assert row["rule_id"] in row["reason"]
        assert row["_source_file"] in row["reason"] and str(row["_source_line"]) in row["reason"]


@pytest.mark.parametrize(
    ("dataset", "bronze"),
    [
        ("fx_rates", "fx_rates"),
        ("customers", "customers"),
        ("products", "products"),
        ("order_lines", "orders"),
    ],
)
def test_rows_in_equal_published_plus_quarantined(
    built: Materialised, dataset: str, bronze: str
) -> None:
    rows_in = built.table(f"commerce_bronze.{bronze}").height
    published = built.table(f"commerce_silver.{dataset}").height
    quarantined = built.table(f"commerce_silver.{dataset}_quarantine").height
    assert quarantined > 0, "the drops are messy: something must be quarantined"
    assert rows_in == published + quarantined
    reconcile = [
        c
        for c in built.run.checks
        if c.asset == f"commerce/silver/{dataset}" and c.check == "rows_reconcile"
    ]
    assert reconcile and reconcile[0].passed


def test_gold_equals_an_independent_computation_from_ground_truth(built: Materialised) -> None:
    orders = built.truth("orders")
    lines = built.truth("order_lines")
    first, last = date.fromisoformat(START), date.fromisoformat(END)
    assert_same_rows(
        built.table("commerce_gold.daily_revenue").select(
            expected.daily_revenue(orders, first, last).columns
        ),
        expected.daily_revenue(orders, first, last),
    )
    for mart, compute in [
        ("customer_sessions", lambda: expected.customer_sessions(orders)),
        ("monthly_retention", lambda: expected.monthly_retention(orders)),
        ("rfm_segments", lambda: expected.rfm_segments(orders)),
    ]:
        wanted = compute()
        assert_same_rows(built.table(f"commerce_gold.{mart}").select(wanted.columns), wanted)
    wanted_top = expected.top_products_daily(orders, lines, first, last)
    assert_same_rows(
        built.table("commerce_gold.top_products_daily").select(wanted_top.columns), wanted_top
    )
    wanted_facts = expected.order_lines_facts(
        orders, lines, built.truth("customers"), built.truth("products"), first, last
    )
    fct = built.table("commerce_gold.fct_orders")
    assert fct.height == wanted_facts.height > 0


def test_rematerialising_a_partition_gives_identical_tables(built: Materialised) -> None:
    # Every commerce table and view of the warehouse (bronze and silver are Parquet files behind
    # views), the Iceberg copies of orders and order lines, and any Delta table.
    before = capture_home(built.home, schema_prefix="commerce_")
    assert {"duckdb:commerce_silver.orders", "iceberg:commerce_silver.orders"} <= before.keys()
    again = _materialise(built.instance, "2026-01-02", "2026-01-02")
    assert again.success
    assert_same_snapshot(before, capture_home(built.home, schema_prefix="commerce_"))


def test_lineage_has_start_and_complete_for_every_asset_with_io_and_schema(
    built: Materialised,
) -> None:
    events = [
        e
        for e in read_events(built.home / "lineage")
        if e["run"]["facets"].get("parent", {}).get("run", {}).get("runId") == built.run.run_id
    ]
    by_type: dict[str, list[dict]] = {}
    for event in events:
        by_type.setdefault(event["eventType"], []).append(event)
    outputs = {o["name"] for e in by_type["COMPLETE"] for o in e["outputs"]}
    for asset in built.run.materialized:
        domain, layer, name = asset.split("/")
        assert f"warehouse.{domain}_{layer}.{name}" in outputs, asset
    assert len(by_type["START"]) == len(by_type["COMPLETE"])
    assert "FAIL" not in by_type
    silver_orders = next(
        e
        for e in by_type["COMPLETE"]
        if any(o["name"] == "warehouse.commerce_silver.orders" for o in e["outputs"])
    )
    assert {i["name"] for i in silver_orders["inputs"]} >= {
        "warehouse.commerce_bronze.orders",
        "warehouse.commerce_silver.fx_rates",
    }
    out = next(
        o for o in silver_orders["outputs"] if o["name"] == "warehouse.commerce_silver.orders"
    )
    fields = {f["name"] for f in out["facets"]["schema"]["fields"]}
    assert {"order_id", "order_total_usd"} <= fields
    assert out["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert "columnLineage" in out["facets"]
    # the Iceberg copy the contract publishes is an output too, under the file namespace
    iceberg = [
        o
        for o in silver_orders["outputs"]
        if o["namespace"] == "file" and o["name"].rstrip("/").endswith("/orders")
    ]
    assert len(iceberg) == 1
    assert (
        iceberg[0]["outputFacets"]["outputStatistics"]["rowCount"]
        == (out["outputFacets"]["outputStatistics"]["rowCount"])
    )
    gold = [o for e in by_type["COMPLETE"] for o in e["outputs"] if ".commerce_gold." in o["name"]]
    assert any("columnLineage" in o["facets"] for o in gold), "dbt column lineage missing"


def test_a_corrupted_drop_is_quarantined_blocks_gold_and_names_file_line_rule(
    tmp_path: Path, env_guard: None
) -> None:
    home = tmp_path / "corrupt"
    _use_home(home)
    generate(home / "landing", home / "truth", start=date(2026, 1, 1), days=1, rows_per_day=300)
    drop = home / "landing" / "commerce" / "2026-01-01" / "orders.csv"
    frame = pl.read_csv(drop, infer_schema=False)
    # A broken export: a third of the quantities arrive as words.
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(pl.lit("lots"))
        .otherwise(pl.col("quantity"))
        .alias("quantity")
    )
    frame.write_csv(drop)
    with dg.instance_for_test() as instance:
        run = _materialise(instance, START, START)
    failed = [c for c in run.gate_failures if c.asset == "commerce/silver/order_lines"]
    assert failed, "the blocking quantity check must fail"
    check = failed[0]
    assert "order_lines.quantity.type" in check.description
    assert "commerce/2026-01-01/orders.csv" in check.description
    assert "line" in check.description
    assert {"commerce/gold/fct_orders", "commerce/gold/daily_revenue"} <= set(run.skipped_assets)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        (rows_in,) = con.execute("SELECT count(*) FROM commerce_bronze.orders").fetchone()
        (published,) = con.execute("SELECT count(*) FROM commerce_silver.order_lines").fetchone()
        quarantined = con.execute(
            "SELECT count(*) FILTER (WHERE rule_id = 'order_lines.quantity.type'), count(*) "
            "FROM commerce_silver.order_lines_quarantine"
        ).fetchone()
    assert quarantined[0] >= frame.height // 3 - 5
    assert rows_in == published + quarantined[1]


def test_a_missing_drop_fails_with_a_clear_error_and_a_fail_lineage_event(
    tmp_path: Path, env_guard: None
) -> None:
    home = tmp_path / "missing"
    _use_home(home)
    with dg.instance_for_test() as instance:
        run = _materialise(instance, "2026-02-01", "2026-02-01")
    assert not run.success
    assert "commerce__bronze__orders" in run.failed_steps
    fails = [e for e in read_events(home / "lineage") if e["eventType"] == "FAIL"]
    assert fails
    messages = json.dumps([f["run"]["facets"]["errorMessage"]["message"] for f in fails])
    assert "no orders*.csv drop for partition(s) 2026-02-01" in messages


def test_cli_range_backfill_in_a_subprocess(tmp_path: Path) -> None:
    home = tmp_path / "cli"
    generate(home / "landing", home / "truth", start=date(2026, 1, 1), days=2, rows_per_day=200)
    env = {
        **os.environ,
        "DATA_PRODUCTS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
    }
    (home / "dagster_home").mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bin_dir / "dagster"),
            "asset",
            "materialize",
            "-m",
            "data_products.definitions",
            "--select",
            "group:commerce",
            "--partition-range",
            "2026-01-01...2026-01-02",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        days = con.execute(
            "SELECT count(DISTINCT date_day) FROM commerce_gold.daily_revenue"
        ).fetchone()
        assert days == (2,)
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        records = instance.get_run_records()
        assert len(records) == 1 and records[0].dagster_run.is_success
