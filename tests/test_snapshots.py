"""The re-run snapshot (``tests/snapshots.py``) sees every store a run writes: a row changed in a
Parquet partition behind a warehouse view, in an Iceberg table or in a Delta table is reported;
load-time columns and row order are not."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from deltalake import write_deltalake

from data_products.lib.keys import DatasetName
from data_products.lib.settings import Settings
from data_products.lib.tables.duckdb import replace_table
from data_products.lib.tables.files import PartitionedFiles
from data_products.lib.tables.iceberg import IcebergTables
from resources.lake import LakeResource
from tests.snapshots import assert_same_snapshot, capture_home, differences, normalised

ORDERS = DatasetName("shop", "silver", "orders")
TOTALS = DatasetName("shop", "gold", "totals")
DAY_1, DAY_2 = date(2026, 1, 1), date(2026, 1, 2)


def _orders(loaded: datetime, *, amount_of_2: float = 20.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": [1, 2, 3],
            "amount": [10.0, amount_of_2, 30.0],
            "tags": [["a"], [], ["b", "c"]],
            "_source_line": [2, 3, 2],
            "_ingested_at": [loaded] * 3,
            "partition_date": [DAY_1, DAY_1, DAY_2],
        }
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data home with one dataset in every store: a warehouse table, Parquet partitions behind
    a view, an Iceberg table in the catalog and a Delta table under the Delta root."""
    settings = Settings(home=tmp_path)
    orders = _orders(datetime(2026, 1, 3, 4, 5))
    with duckdb.connect(str(settings.warehouse_path)) as con:
        replace_table(con, TOTALS, pl.DataFrame({"day": [DAY_1, DAY_2], "total": [30.0, 30.0]}))
        PartitionedFiles(settings.lake_files).replace_partitions(
            con, ORDERS, orders, partition_values=[DAY_1, DAY_2]
        )
    _iceberg(tmp_path).replace_partitions(ORDERS, orders, partition_values=[DAY_1, DAY_2])
    write_deltalake(str(settings.delta_root / "orders"), orders.drop("tags").to_arrow())
    return tmp_path


def _iceberg(home: Path) -> IcebergTables:
    settings = Settings(home=home)
    lake = LakeResource(
        catalog_uri=settings.iceberg_catalog_uri, warehouse=str(settings.iceberg_warehouse)
    )
    return lake.iceberg()


def test_every_store_is_captured(home: Path) -> None:
    snapshot = capture_home(home)
    assert set(snapshot) == {
        "duckdb:shop_gold.totals",
        "duckdb:shop_silver.orders",
        "iceberg:shop_silver.orders",
        "delta:orders",
    }
    assert "_ingested_at" not in snapshot["duckdb:shop_silver.orders"].columns
    assert "_source_line" in snapshot["duckdb:shop_silver.orders"].columns  # data, not load time
    assert_same_snapshot(snapshot, capture_home(home))


def test_a_changed_row_in_a_parquet_partition_is_seen_through_its_view(home: Path) -> None:
    before = capture_home(home)
    part = Settings(home=home).lake_files / "shop_silver/orders/partition_date=2026-01-01"
    planted = pl.read_parquet(part / "part.parquet").with_columns(
        pl.when(pl.col("order_id") == 2).then(21.0).otherwise(pl.col("amount")).alias("amount")
    )
    planted.write_parquet(part / "part.parquet")
    found = differences(before, capture_home(home))
    assert len(found) == 1 and found[0].startswith("duckdb:shop_silver.orders:"), found
    assert "'amount': 21.0" in found[0]
    with pytest.raises(AssertionError, match=r"shop_silver\.orders"):
        assert_same_snapshot(before, capture_home(home))


def test_a_changed_row_in_an_iceberg_table_is_seen(home: Path) -> None:
    before = capture_home(home)
    changed = _orders(datetime(2026, 1, 3, 4, 5), amount_of_2=21.0).filter(
        pl.col("partition_date") == DAY_1
    )
    _iceberg(home).replace_partitions(ORDERS, changed, partition_values=[DAY_1])
    found = differences(before, capture_home(home))
    assert len(found) == 1 and found[0].startswith("iceberg:shop_silver.orders:"), found
    assert "'amount': 20.0" in found[0] and "'amount': 21.0" in found[0]


def test_a_changed_row_in_a_delta_table_is_seen(home: Path) -> None:
    before = capture_home(home)
    changed = _orders(datetime(2026, 1, 3, 4, 5), amount_of_2=21.0).drop("tags")
    write_deltalake(
        str(Settings(home=home).delta_root / "orders"), changed.to_arrow(), mode="overwrite"
    )
    found = differences(before, capture_home(home))
    assert len(found) == 1 and found[0].startswith("delta:orders:"), found


def test_a_vanished_dataset_is_seen(home: Path) -> None:
    before = capture_home(home)
    with duckdb.connect(str(Settings(home=home).warehouse_path)) as con:
        con.execute("DROP TABLE shop_gold.totals")
    assert differences(before, capture_home(home)) == ["duckdb:shop_gold.totals: vanished"]


def test_load_time_columns_and_row_order_are_not_differences(home: Path) -> None:
    before = capture_home(home)
    later = _orders(datetime(2027, 6, 7, 8, 9))  # loaded again, later
    reordered = later.reverse()
    with duckdb.connect(str(Settings(home=home).warehouse_path)) as con:
        PartitionedFiles(Settings(home=home).lake_files).replace_partitions(
            con, ORDERS, reordered, partition_values=[DAY_1, DAY_2]
        )
    _iceberg(home).replace_partitions(ORDERS, reordered, partition_values=[DAY_1, DAY_2])
    write_deltalake(
        str(Settings(home=home).delta_root / "orders"),
        reordered.drop("tags").to_arrow(),
        mode="overwrite",
    )
    assert_same_snapshot(before, capture_home(home))


def test_rows_equal_but_for_a_list_column_sort_the_same_either_way() -> None:
    rows = pl.DataFrame({"k": [1, 1], "tags": [["x"], ["y"]]})
    assert normalised(rows).equals(normalised(rows.reverse()))
