"""The Parquet partition store: atomic per-partition replaces, schema rules and warehouse views."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_products.lib.keys import DatasetName, InvalidIdentifierError
from data_products.lib.tables import (
    PartitionedFiles,
    PartitionMismatchError,
    SchemaEvolutionError,
    TableNotFoundError,
    TableWriteError,
)

ORDERS = DatasetName("shop", "silver", "orders")
D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _frame(
    day: date, ids: list[int], id_type: type[pl.DataType] = pl.Int32, **extra: list[object]
) -> pl.DataFrame:
    return pl.DataFrame(
        {"partition_date": [day] * len(ids), "order_id": ids, **extra},
        schema_overrides={"partition_date": pl.Date, "order_id": id_type},
    )


@pytest.fixture
def store(tmp_path: Path) -> PartitionedFiles:
    return PartitionedFiles(tmp_path / "files")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(tmp_path / "warehouse.duckdb"))


def _view_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        'SELECT * EXCLUDE (partition_date) FROM "shop_silver"."orders" ORDER BY ALL'
    ).fetchall()


def test_a_range_write_replaces_exactly_its_partitions_and_is_idempotent(
    store: PartitionedFiles, con: duckdb.DuckDBPyConnection
) -> None:
    first = store.replace_partitions(
        con, ORDERS, pl.concat([_frame(D1, [1, 2]), _frame(D2, [3])]), partition_values=[D1, D2]
    )
    assert first.rows_written == 3 and first.rows_replaced == 0
    again = store.replace_partitions(con, ORDERS, _frame(D2, [4, 5]), partition_values=[D2])
    assert again.rows_replaced == 1
    store.replace_partitions(con, ORDERS, _frame(D2, [4, 5]), partition_values=[D2])
    assert _view_rows(con) == [(1,), (2,), (4,), (5,)]
    assert store.partition_row_counts(ORDERS, [D1, D2, D3]) == {"2026-01-01": 2, "2026-01-02": 2}
    read = store.read_partitions(ORDERS, [D2, D3])
    assert sorted(read["order_id"].to_list()) == [4, 5]
    assert read.schema["order_id"] == pl.Int32
    assert not list(store.table_dir(ORDERS).rglob("*.tmp")), "no temporary file is left behind"


def test_a_partition_without_rows_is_emptied_not_left_stale(
    store: PartitionedFiles, con: duckdb.DuckDBPyConnection
) -> None:
    store.replace_partitions(con, ORDERS, _frame(D1, [1]), partition_values=[D1])
    store.replace_partitions(con, ORDERS, _frame(D1, []), partition_values=[D1])
    assert _view_rows(con) == []
    assert store.read_partitions(ORDERS, [D1]).height == 0


def test_rows_outside_the_partitions_are_refused_before_anything_is_written(
    store: PartitionedFiles, con: duckdb.DuckDBPyConnection
) -> None:
    with pytest.raises(PartitionMismatchError):
        store.replace_partitions(con, ORDERS, _frame(D2, [1]), partition_values=[D1])
    assert not store.exists(ORDERS)
    with pytest.raises(InvalidIdentifierError):
        store.replace_partitions(con, ORDERS, _frame(D1, [1]), partition_values=["../2026-01-01"])


def test_new_columns_are_added_narrower_types_cast_and_lossy_changes_refused(
    store: PartitionedFiles, con: duckdb.DuckDBPyConnection
) -> None:
    store.replace_partitions(con, ORDERS, _frame(D1, [1]), partition_values=[D1])
    drifted = _frame(D2, [2], coupon=["X"])
    result = store.replace_partitions(con, ORDERS, drifted, partition_values=[D2])
    assert result.columns_added == ("coupon",)
    assert _view_rows(con) == [(1, None), (2, "X")]
    assert store.read_partitions(ORDERS, [D1, D2])["coupon"].to_list() == [None, "X"]

    narrower = _frame(D3, [3], pl.Int16)
    store.replace_partitions(con, ORDERS, narrower, partition_values=[D3])
    assert store.schema(ORDERS)["order_id"] == pl.Int32

    wider = _frame(D3, [2**40], pl.Int64)
    assert store.replace_partitions(con, ORDERS, wider, partition_values=[D3]).columns_widened == (
        "order_id",
    )
    assert store.read_partitions(ORDERS, [D1, D3])["order_id"].to_list() == [1, 2**40]

    lossy = _frame(D1, [1]).with_columns(pl.col("order_id").cast(pl.String))
    with pytest.raises(SchemaEvolutionError, match="order_id"):
        store.replace_partitions(con, ORDERS, lossy, partition_values=[D1])
    untyped = _frame(D1, [1]).with_columns(pl.lit(None).alias("note"))
    with pytest.raises(SchemaEvolutionError, match="Null"):
        store.replace_partitions(con, ORDERS, untyped, partition_values=[D1])


def test_reads_name_what_is_missing(store: PartitionedFiles) -> None:
    with pytest.raises(TableNotFoundError, match="materialise"):
        store.read_partitions(ORDERS, [D1])
    store.replace_partitions(None, ORDERS, _frame(D1, [1]), partition_values=[D1])
    with pytest.raises(TableWriteError, match="no column"):
        store.read_partitions(ORDERS, [D1], columns=["nope"])
    assert store.read_partitions(ORDERS, [D1], columns=["order_id"]).columns == ["order_id"]


def test_a_warehouse_table_of_the_same_name_is_not_silently_replaced(
    store: PartitionedFiles, con: duckdb.DuckDBPyConnection
) -> None:
    con.execute('CREATE SCHEMA "shop_silver"; CREATE TABLE "shop_silver"."orders" (x INT)')
    with pytest.raises(TableWriteError, match="DROP TABLE"):
        store.replace_partitions(con, ORDERS, _frame(D1, [1]), partition_values=[D1])
