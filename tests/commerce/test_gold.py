"""The commerce gold layer end to end: silver tables in a temporary warehouse, the dbt assets run
in-process over a partition range, every mart compared with an independent polars computation.

Silver is the generator's ground truth (what silver must publish for its seeded drops), written
straight into ``commerce_silver``, so these tests depend on the generator but not on the bronze
and silver assets. The range crosses a month boundary so retention has two cohorts.

dbt costs seconds per invocation: the module fixture runs the range twice (the second run proves
idempotence) and every comparison reads the tables captured after those runs; only the partition
re-run test invokes dbt again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster_dbt import DbtProject
from polars.testing import assert_frame_equal

from assets.commerce.generator import generate
from assets.commerce.partitions import DAILY
from data_products.lib.dbt import dbt_build_vars, dbt_resource, domain_dbt_assets
from data_products.lib.dbt_project import DBT_PROJECT_DIR
from resources.warehouse import WarehouseResource
from tests.commerce import expected_gold as expected

pytestmark = pytest.mark.slow

START = date(2026, 1, 27)
DAYS = 8  # more than the 7-day window, across a month end
END = START + timedelta(days=DAYS - 1)
RERUN_DAY = START + timedelta(days=2)
SILVER = ("customers", "products", "orders", "order_lines")
GOLD = (
    "dim_customer",
    "dim_product",
    "dim_date",
    "fct_orders",
    "daily_revenue",
    "top_products_daily",
    "customer_sessions",
    "monthly_retention",
    "rfm_segments",
)


@dataclass(frozen=True)
class GoldRuns:
    warehouse: Path
    silver: dict[str, pl.DataFrame]
    project: DbtProject
    assets_def: dg.AssetsDefinition
    first: dg.ExecuteInProcessResult
    tables: dict[str, pl.DataFrame]
    rerun_tables: dict[str, pl.DataFrame]


def read_tables(warehouse: Path, schema: str, names: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {name: con.sql(f"select * from {schema}.{name}").pl() for name in names}


def write_silver(warehouse: Path, silver: dict[str, pl.DataFrame]) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists commerce_silver")
        for name, frame in silver.items():
            con.register("silver_frame", frame.to_arrow())
            con.execute(
                f"create or replace table commerce_silver.{name} as select * from silver_frame"
            )
            con.unregister("silver_frame")


def run_gold(
    project: DbtProject,
    assets_def: dg.AssetsDefinition,
    warehouse: Path,
    first: date,
    last: date,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [assets_def],
        resources={
            "dbt": dbt_resource(project),
            "warehouse": WarehouseResource(path=str(warehouse)),
        },
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoldRuns]:
    home = tmp_path_factory.mktemp("gold_home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DATA_PRODUCTS_HOME", str(home))
        generate(home / "landing", home / "truth", START, DAYS, rows_per_day=120, seed=11)
        silver = {
            name: pl.read_parquet(home / "truth" / "commerce" / f"{name}.parquet")
            for name in SILVER
        }
        warehouse = home / "warehouse.duckdb"
        write_silver(warehouse, silver)
        # A fresh manifest of its own: a stale one would define assets the dbt run no longer
        # builds, and a shared target/ would race with other test processes parsing it.
        project = DbtProject(DBT_PROJECT_DIR, target_path=home / "dbt_target")
        project.preparer.prepare(project)
        assets_def = domain_dbt_assets("commerce", DAILY, project=project)

        first = run_gold(project, assets_def, warehouse, START, END)
        tables = read_tables(warehouse, "commerce_gold", GOLD)
        second = run_gold(project, assets_def, warehouse, START, END)
        assert second.success
        rerun_tables = read_tables(warehouse, "commerce_gold", GOLD)
        yield GoldRuns(warehouse, silver, project, assets_def, first, tables, rerun_tables)


def sort_all(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def assert_same_rows(actual: pl.DataFrame, wanted: pl.DataFrame) -> None:
    """Same columns, same rows in any order; numbers equal up to float summation noise."""
    actual = actual.select(wanted.columns)
    assert_frame_equal(
        sort_all(actual),
        sort_all(wanted.cast(dict(actual.schema))),
        rel_tol=1e-9,
        abs_tol=1e-9,
    )


def test_the_range_materializes_every_gold_asset_and_partition(runs: GoldRuns) -> None:
    assert runs.first.success
    materialized = {
        (event.asset_key.path[-1], event.partition)
        for event in runs.first.get_asset_materialization_events()
    }
    days = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
    assert materialized == {(name, day) for name in GOLD for day in days}
    assert {key.path[-1] for key in runs.assets_def.keys} == set(GOLD)


def test_materializations_carry_row_count_schema_and_column_lineage(runs: GoldRuns) -> None:
    by_asset = {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in runs.first.get_asset_materialization_events()
    }
    for name, metadata in by_asset.items():
        assert metadata["dagster/row_count"].value == runs.tables[name].height, name
        schema = metadata["dagster/column_schema"].value
        assert [column.name for column in schema.columns] == runs.tables[name].columns, name
        assert metadata["partitions"].value == f"{START}...{END} ({DAYS} partitions)"
    # Lineage reaches through the ephemeral staging models to the silver assets' columns.
    lineage = by_asset["fct_orders"]["dagster/column_lineage"].value.deps_by_column
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["line_amount_usd"]} == {
        ("commerce/silver/order_lines", "line_amount_usd")
    }
    assert {d.asset_key.to_user_string() for d in lineage["customer_sk"]} == {
        "commerce/gold/dim_customer"
    }


def test_dbt_tests_come_out_as_passing_asset_checks(runs: GoldRuns) -> None:
    evaluations = runs.first.get_asset_check_evaluations()
    declared = {spec.key for spec in runs.assets_def.check_specs}
    assert {evaluation.asset_check_key for evaluation in evaluations} == declared
    failing = [evaluation.check_name for evaluation in evaluations if not evaluation.passed]
    assert not failing
    checked_assets = {key.asset_key.path[-1] for key in declared}
    assert checked_assets == set(GOLD)


def test_dbt_unit_tests_pass(runs: GoldRuns) -> None:
    """The gold runs leave dbt's unit tests out (they test SQL on fixture rows, not the data), so
    the suite runs them: every unit test the project declares for commerce, and all pass."""
    manifest = json.loads(runs.project.manifest_path.read_text())
    declared = {
        uid
        for uid, node in manifest.get("unit_tests", {}).items()
        if node["original_file_path"].startswith("models/marts/commerce/")
    }
    assert declared, "the commerce marts declare unit tests"
    invocation = dbt_resource(runs.project).cli(
        [
            "test",
            "--select",
            "test_type:unit,path:models/marts/commerce",
            "--vars",
            json.dumps(dbt_build_vars(runs.warehouse)),
        ],
        raise_on_error=False,
    )
    invocation.wait()
    results = invocation.get_artifact("run_results.json")["results"]
    statuses = {result["unique_id"]: result["status"] for result in results}
    assert set(statuses) == declared
    assert set(statuses.values()) == {"pass"}, statuses


def test_gold_runs_leave_unit_tests_out(runs: GoldRuns) -> None:
    """The asset run's dbt build ran models and data tests but no unit test (they cost 0.5 s
    per commerce run and prove nothing about the data)."""
    # The gold asset keeps dbt's target folder per domain under the data home.
    run_results = runs.warehouse.parent / "dbt" / "target" / "commerce" / "run_results.json"
    kinds = {r["unique_id"].split(".")[0] for r in json.loads(run_results.read_text())["results"]}
    assert {"model", "test"} <= kinds
    assert "unit_test" not in kinds


def test_rerunning_the_same_range_gives_identical_tables(runs: GoldRuns) -> None:
    for name in GOLD:
        assert_frame_equal(sort_all(runs.rerun_tables[name]), sort_all(runs.tables[name]))


EXPECTED_MARTS: dict[str, Callable[[dict[str, pl.DataFrame]], pl.DataFrame]] = {
    "daily_revenue": lambda s: expected.daily_revenue(s["orders"], START, END),
    "top_products_daily": lambda s: expected.top_products_daily(
        s["orders"], s["order_lines"], START, END
    ),
    "customer_sessions": lambda s: expected.customer_sessions(s["orders"]),
    "monthly_retention": lambda s: expected.monthly_retention(s["orders"]),
    "rfm_segments": lambda s: expected.rfm_segments(s["orders"]),
    "dim_date": lambda s: expected.calendar(s["orders"]),
}


@pytest.mark.parametrize("mart", sorted(EXPECTED_MARTS))
def test_mart_equals_the_independent_computation(runs: GoldRuns, mart: str) -> None:
    wanted = EXPECTED_MARTS[mart](runs.silver)
    assert wanted.height > 0
    assert_same_rows(runs.tables[mart], wanted)


def test_the_data_exercises_the_marts(runs: GoldRuns) -> None:
    """Guards the comparisons above against passing on degenerate data."""
    assert runs.tables["monthly_retention"]["cohort_month"].n_unique() == 2
    assert (runs.tables["customer_sessions"]["orders"] > 1).any()
    assert (runs.tables["top_products_daily"].group_by("date_day").len()["len"] == 5).all()
    assert runs.tables["rfm_segments"]["segment"].n_unique() >= 3
    assert (runs.tables["dim_customer"]["version_number"] > 1).any()
    assert (runs.tables["fct_orders"]["customer_sk"] == -1).any()


def test_dim_customer_is_the_scd2_history(runs: GoldRuns) -> None:
    dim = runs.tables["dim_customer"]
    known, unknown = (
        dim.filter(pl.col("customer_sk") != -1),
        dim.filter(pl.col("customer_sk") == -1),
    )
    assert unknown.height == 1
    assert unknown["customer_id"].to_list() == ["unknown"]
    assert known["customer_sk"].n_unique() == known.height
    assert (known["customer_sk"] > 0).all()
    assert_same_rows(
        known.drop("customer_sk"), expected.customer_versions(runs.silver["customers"])
    )


def test_dim_product_has_latest_attributes(runs: GoldRuns) -> None:
    dim = runs.tables["dim_product"]
    known = dim.filter(pl.col("product_sk") != -1)
    assert dim.filter(pl.col("product_sk") == -1).height == 1
    assert known["product_sk"].n_unique() == known.height
    assert_same_rows(known.drop("product_sk"), expected.products_latest(runs.silver["products"]))


def test_fct_orders_keys_point_at_the_right_dimension_rows(runs: GoldRuns) -> None:
    s = runs.silver
    wanted = expected.order_lines_facts(
        s["orders"], s["order_lines"], s["customers"], s["products"], START, END
    )
    fact = runs.tables["fct_orders"]
    resolved = (
        fact.join(
            runs.tables["dim_customer"].select(
                "customer_sk", dim_customer_id="customer_id", customer_valid_from="valid_from"
            ),
            on="customer_sk",
            how="left",
        )
        .join(
            runs.tables["dim_product"].select("product_sk", dim_product_id="product_id"),
            on="product_sk",
            how="left",
        )
        .join(runs.tables["dim_date"].select("date_key", "date_day"), on="date_key", how="left")
    )
    assert resolved.height == fact.height == wanted.height
    # Every key resolves; a known customer/product resolves to itself, an unknown one to -1.
    assert resolved["dim_customer_id"].null_count() == 0
    assert resolved["dim_product_id"].null_count() == 0
    assert (resolved["date_day"] == resolved["order_date"]).all()
    unknown_customer = resolved["customer_sk"] == -1
    assert (
        resolved.filter(~unknown_customer)["dim_customer_id"]
        == resolved.filter(~unknown_customer)["customer_id"]
    ).all()
    assert (
        resolved.filter(pl.col("product_sk") != -1)["dim_product_id"]
        == resolved.filter(pl.col("product_sk") != -1)["product_id"]
    ).all()
    actual = resolved.with_columns(
        customer_valid_from=pl.when(unknown_customer).then(None).otherwise("customer_valid_from"),
        product_known=pl.col("product_sk") != -1,
    )
    assert_same_rows(actual, wanted)


def test_a_partition_rerun_replaces_exactly_its_days(runs: GoldRuns) -> None:
    """Silver re-publishes one day with no orders (say, everything quarantined): re-running that
    partition empties it in the incremental marts and leaves every other day as it was."""
    silver = {
        name: frame.filter(pl.col("partition_date") != RERUN_DAY)
        if name in ("orders", "order_lines")
        else frame
        for name, frame in runs.silver.items()
    }
    write_silver(runs.warehouse, silver)

    result = run_gold(runs.project, runs.assets_def, runs.warehouse, RERUN_DAY, RERUN_DAY)

    assert result.success
    after = read_tables(runs.warehouse, "commerce_gold", GOLD)
    day = pl.col("partition_date") == RERUN_DAY
    assert after["fct_orders"].filter(day).height == 0
    assert_frame_equal(
        sort_all(after["fct_orders"]), sort_all(runs.tables["fct_orders"].filter(~day))
    )
    for mart in ("daily_revenue", "top_products_daily"):
        other_days = pl.col("date_day") != RERUN_DAY
        assert_frame_equal(
            sort_all(after[mart].filter(other_days)),
            sort_all(runs.tables[mart].filter(other_days)),
        )
    assert after["top_products_daily"].filter(pl.col("date_day") == RERUN_DAY).height == 0
    assert_same_rows(
        after["daily_revenue"].filter(pl.col("date_day") == RERUN_DAY),
        expected.daily_revenue(silver["orders"], RERUN_DAY, RERUN_DAY),
    )
