"""The table writer: partition replaces in DuckDB and Iceberg, on real files under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.transforms import IdentityTransform

from data_products.lib.keys import DatasetName, InvalidIdentifierError
from data_products.lib.tables import (
    IcebergTables,
    PartitionMismatchError,
    SchemaEvolutionError,
    TableNotFoundError,
    extension_path,
    load_extensions,
    read_partitions,
    read_table,
    replace_partitions,
    replace_table,
    table_exists,
)
from data_products.lib.tables.duckdb import _widens

ORDERS = DatasetName("commerce", "silver", "orders")
FX = DatasetName("commerce", "silver", "fx_rates")
DAY1, DAY2, DAY3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
KEY = ["partition_date", "order_id"]


def orders(rows_per_day: dict[date, int], *, version: int = 1) -> pl.DataFrame:
    """``rows_per_day`` orders per day; ``version`` changes the amounts so rewrites are visible."""
    records = [
        {
            "partition_date": day,
            "order_id": f"O{day:%m%d}{i:05d}",
            "amount": round(10.0 * version + i, 2),
            "quantity": i + 1,
            "status": "placed" if i % 2 else "shipped",
            "order_ts": datetime.combine(day, datetime.min.time()) + timedelta(minutes=i),
        }
        for day, count in rows_per_day.items()
        for i in range(count)
    ]
    schema = {
        "partition_date": pl.Date,
        "order_id": pl.String,
        "amount": pl.Float64,
        "quantity": pl.Int32,
        "status": pl.String,
        "order_ts": pl.Datetime("us"),
    }
    return pl.DataFrame(records, schema=schema, orient="row")


def sorted_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(KEY)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def table_rows(con: duckdb.DuckDBPyConnection, dataset: DatasetName = ORDERS) -> pl.DataFrame:
    return sorted_rows(read_table(con, dataset))


def column_types(con: duckdb.DuckDBPyConnection, dataset: DatasetName = ORDERS) -> dict[str, str]:
    return dict(
        con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [dataset.schema, dataset.name],
        ).fetchall()
    )


class _NoSql:
    """A stand-in connection that fails the test if the writer touches it at all."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the writer used the connection ({name}) before rejecting input")


# --- DuckDB ---------------------------------------------------------------------------------


def test_single_partition_replace_leaves_other_partitions_alone(con) -> None:
    replace_partitions(con, ORDERS, orders({DAY1: 3, DAY2: 2}), partition_values=[DAY1, DAY2])

    result = replace_partitions(
        con, ORDERS, orders({DAY1: 5}, version=2), partition_values=["2026-01-01"]
    )

    expected = pl.concat([orders({DAY1: 5}, version=2), orders({DAY2: 2})])
    assert_frame_equal(table_rows(con), sorted_rows(expected))
    assert (result.rows_written, result.rows_replaced) == (5, 3)
    assert result.partition_keys == ("2026-01-01",)
    assert result.table == "warehouse.commerce_silver.orders"


def test_range_replace_writes_exactly_its_range_and_empties_days_without_rows(con) -> None:
    replace_partitions(
        con, ORDERS, orders({DAY1: 2, DAY2: 2, DAY3: 2}), partition_values=[DAY1, DAY2, DAY3]
    )

    # DAY2 has no rows in the new frame: replacing the range must leave it empty.
    new = orders({DAY1: 4, DAY3: 1}, version=3)
    result = replace_partitions(con, ORDERS, new, partition_values=[DAY3, DAY1, DAY2, DAY1])

    assert_frame_equal(table_rows(con), sorted_rows(new))
    assert result.partition_keys == ("2026-01-01", "2026-01-02", "2026-01-03")
    assert result.rows_replaced == 6
    metadata = result.metadata()
    assert metadata["dagster/row_count"] == dg.MetadataValue.int(5)
    assert metadata["dagster/table_name"] == dg.MetadataValue.text(result.table)
    assert metadata["partition_range"] == dg.MetadataValue.text(
        "2026-01-01...2026-01-03 (3 partitions)"
    )
    schema = metadata["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns][:2] == [
        ("partition_date", "Date"),
        ("order_id", "String"),
    ]


def test_same_write_twice_gives_identical_content(con) -> None:
    frame = orders({DAY1: 4, DAY2: 3})
    first = replace_partitions(con, ORDERS, frame, partition_values=[DAY1, DAY2])
    after_first = table_rows(con)

    second = replace_partitions(con, ORDERS, frame, partition_values=[DAY1, DAY2])

    assert_frame_equal(table_rows(con), after_first)
    assert_frame_equal(after_first, sorted_rows(frame))
    assert (first.rows_replaced, second.rows_replaced) == (0, 7)
    assert column_types(con) == {
        "partition_date": "DATE",
        "order_id": "VARCHAR",
        "amount": "DOUBLE",
        "quantity": "INTEGER",
        "status": "VARCHAR",
        "order_ts": "TIMESTAMP",
    }


def test_failure_after_delete_rolls_back_and_old_partition_survives(con) -> None:
    con.execute("CREATE SCHEMA commerce_silver")
    con.execute(
        "CREATE TABLE commerce_silver.orders (partition_date DATE, order_id VARCHAR PRIMARY KEY, "
        "amount DOUBLE, quantity INTEGER CHECK (quantity > 0), status VARCHAR, order_ts TIMESTAMP)"
    )
    replace_partitions(con, ORDERS, orders({DAY1: 3, DAY2: 1}), partition_values=[DAY1, DAY2])
    before = table_rows(con)

    # Valid types, so the write gets past schema checks and the DELETE; the CHECK constraint
    # then fails the INSERT. The new column must disappear with the rollback too.
    bad = orders({DAY1: 2}, version=2).with_columns(
        pl.Series("quantity", [1, -1], dtype=pl.Int32), coupon_code=pl.lit("X")
    )
    with pytest.raises(duckdb.ConstraintException, match="quantity"):
        replace_partitions(con, ORDERS, bad, partition_values=[DAY1])

    assert_frame_equal(table_rows(con), before)
    assert "coupon_code" not in column_types(con)
    # The connection is usable afterwards: no transaction was left open.
    replace_partitions(con, ORDERS, orders({DAY1: 2}, version=4), partition_values=[DAY1])
    assert table_rows(con).filter(pl.col("partition_date") == DAY1).height == 2


def test_rewriting_primary_keys_in_the_same_transaction_is_allowed(con) -> None:
    # DuckDB used to reject a delete-then-insert of the same key in one transaction; the
    # writer relies on that working for tables that declare primary keys.
    con.execute("CREATE SCHEMA commerce_silver")
    con.execute(
        "CREATE TABLE commerce_silver.orders (partition_date DATE, order_id VARCHAR PRIMARY KEY)"
    )
    frame = orders({DAY1: 3}).select("partition_date", "order_id")
    replace_partitions(con, ORDERS, frame, partition_values=[DAY1])
    replace_partitions(con, ORDERS, frame, partition_values=[DAY1])
    assert table_rows(con).height == 3


def test_rows_outside_the_partitions_are_rejected_before_writing(con) -> None:
    frame = orders({DAY1: 2, DAY3: 1})
    with pytest.raises(PartitionMismatchError, match=r"2026-01-03") as error:
        replace_partitions(con, ORDERS, frame, partition_values=[DAY1, DAY2])
    assert "1 row(s)" in str(error.value)
    assert not table_exists(con, ORDERS)

    nulls = orders({DAY1: 1}).with_columns(pl.lit(None, dtype=pl.Date).alias("partition_date"))
    with pytest.raises(PartitionMismatchError, match="None"):
        replace_partitions(con, ORDERS, nulls, partition_values=[DAY1])


@pytest.mark.parametrize(
    ("frame", "kwargs"),
    [
        (orders({DAY1: 1}).rename({"amount": "Amount; DROP TABLE x"}), {}),
        (orders({DAY1: 1}).rename({"status": "status--"}), {}),
        (orders({DAY1: 1}), {"partition_column": 'partition_date" OR 1=1 --'}),
        (orders({DAY1: 1}), {"partition_values": ["2026-01-01'; DROP TABLE x; --"]}),
        (orders({DAY1: 1}), {"partition_values": ["2026-13-01"]}),
        (orders({DAY1: 1}), {"partition_values": [20260101]}),
    ],
    ids=["column", "column-comment", "partition-column", "key-injection", "bad-date", "int-key"],
)
def test_invalid_identifiers_and_keys_are_rejected_before_any_sql(frame, kwargs) -> None:
    arguments = {"partition_values": [DAY1], **kwargs}
    with pytest.raises(InvalidIdentifierError):
        replace_partitions(_NoSql(), ORDERS, frame, **arguments)  # type: ignore[arg-type]


def test_read_with_invalid_names_is_rejected_before_any_sql() -> None:
    with pytest.raises(InvalidIdentifierError):
        read_partitions(_NoSql(), ORDERS, [DAY1], columns=["order_id", "1; DROP"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single value"):
        read_partitions(_NoSql(), ORDERS, "2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifierError):
        DatasetName("commerce", "silver", 'orders"; DROP')


def test_schema_evolution_adds_columns_and_never_drops_them(con) -> None:
    replace_partitions(con, ORDERS, orders({DAY1: 2}), partition_values=[DAY1])

    with_coupon = orders({DAY2: 2}).with_columns(coupon_code=pl.lit("WINTER"))
    result = replace_partitions(con, ORDERS, with_coupon, partition_values=[DAY2])
    assert result.columns_added == ("coupon_code",)
    assert result.metadata()["columns_added"] == dg.MetadataValue.json(["coupon_code"])

    # A later frame without the column keeps it in the table, NULL for the new rows.
    replace_partitions(con, ORDERS, orders({DAY3: 1}), partition_values=[DAY3])

    rows = read_partitions(
        con, ORDERS, [DAY1, DAY2, DAY3], columns=["partition_date", "coupon_code"]
    )
    by_day = rows.group_by("partition_date").agg(pl.col("coupon_code").drop_nulls().n_unique())
    assert dict(by_day.iter_rows()) == {DAY1: 0, DAY2: 1, DAY3: 0}
    assert list(column_types(con))[-1] == "coupon_code"


def test_types_widen_losslessly_and_narrower_frames_still_insert(con) -> None:
    replace_partitions(con, ORDERS, orders({DAY1: 2}), partition_values=[DAY1])

    wider = orders({DAY2: 1}).with_columns(pl.col("quantity").cast(pl.Int64) + 3_000_000_000)
    result = replace_partitions(con, ORDERS, wider, partition_values=[DAY2])
    assert result.columns_widened == ("quantity",)
    assert column_types(con)["quantity"] == "BIGINT"

    narrower = orders({DAY3: 1}).with_columns(pl.col("quantity").cast(pl.Int16))
    assert replace_partitions(con, ORDERS, narrower, partition_values=[DAY3]).columns_widened == ()
    quantities = read_partitions(con, ORDERS, [DAY2, DAY3], columns=["quantity"])
    assert sorted(quantities["quantity"].to_list()) == [1, 3_000_000_001]


def test_type_change_that_cannot_widen_names_table_and_column(con) -> None:
    replace_partitions(con, ORDERS, orders({DAY1: 2}), partition_values=[DAY1])
    before = table_rows(con)

    changed = orders({DAY1: 1}).with_columns(pl.col("quantity").cast(pl.String))
    with pytest.raises(SchemaEvolutionError, match=r"commerce_silver.*orders.*quantity.*VARCHAR"):
        replace_partitions(con, ORDERS, changed, partition_values=[DAY1])
    assert_frame_equal(table_rows(con), before)

    untyped = orders({DAY2: 1}).with_columns(note=pl.lit(None))
    with pytest.raises(SchemaEvolutionError, match="note"):
        replace_partitions(con, ORDERS, untyped, partition_values=[DAY2])


@pytest.mark.parametrize(
    ("old", "new", "widens"),
    [
        ("INTEGER", "BIGINT", True),
        ("UINTEGER", "BIGINT", True),
        ("UINTEGER", "INTEGER", False),
        ("INTEGER", "UBIGINT", False),
        ("BIGINT", "INTEGER", False),
        ("INTEGER", "DOUBLE", True),
        ("BIGINT", "DOUBLE", False),
        ("FLOAT", "DOUBLE", True),
        ("DECIMAL(10,2)", "DECIMAL(12,3)", True),
        ("DECIMAL(10,2)", "DECIMAL(10,3)", False),
        ("INTEGER", "DECIMAL(12,2)", True),
        ("BIGINT", "DECIMAL(18,0)", False),
        ("TIMESTAMP_MS", "TIMESTAMP", True),
        ("TIMESTAMP", "TIMESTAMP_NS", False),
        ("DATE", "TIMESTAMP", False),
        ("INTEGER", "VARCHAR", False),
    ],
)
def test_only_lossless_type_changes_count_as_widening(old: str, new: str, widens: bool) -> None:
    assert _widens(old, new) is widens


def test_keyword_column_names_work_because_identifiers_are_quoted(con) -> None:
    frame = orders({DAY1: 2}).with_columns(group=pl.lit("a"), order=pl.lit(1))
    replace_partitions(con, ORDERS, frame, partition_values=[DAY1])
    assert read_partitions(con, ORDERS, [DAY1], columns=["group", "order"]).shape == (2, 2)


def test_hourly_partitions_use_datetime_values_and_keys(con) -> None:
    events = DatasetName("commerce", "bronze", "events")
    hour = datetime(2026, 1, 1, 3)
    frame = pl.DataFrame({"partition_hour": [hour, hour], "event": ["a", "b"]})
    result = replace_partitions(
        con, events, frame, partition_column="partition_hour", partition_values=["2026-01-01-03:00"]
    )
    assert result.partition_keys == ("2026-01-01-03:00",)
    again = read_partitions(con, events, [hour], partition_column="partition_hour")
    assert sorted(again["event"].to_list()) == ["a", "b"]


def test_replace_table_replaces_all_rows(con) -> None:
    first = pl.DataFrame({"currency": ["EUR", "GBP"], "usd_per_unit": [1.1, 1.3]})
    second = pl.DataFrame({"currency": ["JPY"], "usd_per_unit": [0.0068]})
    replace_table(con, FX, first)
    result = replace_table(con, FX, second)
    assert_frame_equal(read_table(con, FX), second)
    assert (result.rows_written, result.rows_replaced, result.partition_keys) == (1, 2, ())


def test_reading_a_table_that_was_never_written_is_an_error(con) -> None:
    with pytest.raises(TableNotFoundError, match=r"commerce_silver.*orders"):
        read_partitions(con, ORDERS, [DAY1])
    replace_partitions(con, ORDERS, orders({}), partition_values=[DAY1])
    assert read_partitions(con, ORDERS, [DAY1]).is_empty()


# --- Iceberg --------------------------------------------------------------------------------


@pytest.fixture
def lake(tmp_path: Path) -> IcebergTables:
    warehouse = tmp_path / "iceberg"
    warehouse.mkdir()
    catalog = SqlCatalog(
        "test", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=str(warehouse)
    )
    return IcebergTables(catalog)


def test_iceberg_single_and_range_replace(lake: IcebergTables) -> None:
    lake.replace_partitions(
        ORDERS, orders({DAY1: 2, DAY2: 2, DAY3: 2}), partition_values=[DAY1, DAY2, DAY3]
    )
    single = lake.replace_partitions(
        ORDERS, orders({DAY2: 5}, version=2), partition_values=["2026-01-02"]
    )
    expected = pl.concat([orders({DAY1: 2, DAY3: 2}), orders({DAY2: 5}, version=2)])
    assert_frame_equal(sorted_rows(lake.read(ORDERS)), sorted_rows(expected))
    assert (single.rows_written, single.rows_replaced) == (5, 2)

    # A range in one call: DAY1 emptied, DAY3 rewritten, DAY2 untouched.
    ranged = lake.replace_partitions(
        ORDERS, orders({DAY3: 1}, version=3), "partition_date", [DAY1, DAY3]
    )
    expected = pl.concat([orders({DAY2: 5}, version=2), orders({DAY3: 1}, version=3)])
    assert_frame_equal(sorted_rows(lake.read(ORDERS)), sorted_rows(expected))
    assert ranged.rows_replaced == 4
    assert_frame_equal(
        sorted_rows(lake.read(ORDERS, partition_values=[DAY3])), orders({DAY3: 1}, version=3)
    )
    table = lake.load_table(ORDERS)
    (field,) = table.spec().fields
    assert isinstance(field.transform, IdentityTransform)
    assert table.schema().find_field(field.source_id).name == "partition_date"
    assert ranged.metadata()["snapshot_id"] == dg.MetadataValue.int(
        table.current_snapshot().snapshot_id
    )


def test_iceberg_same_write_twice_is_identical(lake: IcebergTables) -> None:
    frame = orders({DAY1: 3, DAY2: 1})
    first = lake.replace_partitions(ORDERS, frame, partition_values=[DAY1, DAY2])
    second = lake.replace_partitions(ORDERS, frame, partition_values=[DAY1, DAY2])
    assert_frame_equal(sorted_rows(lake.read(ORDERS)), sorted_rows(frame))
    assert (first.rows_replaced, second.rows_replaced) == (0, 4)
    assert first.snapshot_id != second.snapshot_id
    assert len(lake.load_table(ORDERS).schemas()) == 1  # no schema churn on identical writes


def test_iceberg_schema_evolution_and_time_travel(lake: IcebergTables) -> None:
    v1 = lake.replace_partitions(ORDERS, orders({DAY1: 2}), partition_values=[DAY1])
    evolved = orders({DAY1: 3}, version=2).with_columns(
        pl.col("quantity").cast(pl.Int64), coupon_code=pl.lit("WINTER")
    )
    v2 = lake.replace_partitions(ORDERS, evolved, partition_values=[DAY1])

    assert v2.columns_added == ("coupon_code",)
    assert v2.columns_widened == ("quantity",)
    assert_frame_equal(sorted_rows(lake.read(ORDERS)), sorted_rows(evolved))
    # Time travel: the first snapshot still holds the first write, in its own schema.
    assert_frame_equal(
        sorted_rows(lake.read(ORDERS, snapshot_id=v1.snapshot_id)), orders({DAY1: 2})
    )


def test_iceberg_rejects_bad_input_and_keeps_the_table(lake: IcebergTables) -> None:
    first = lake.replace_partitions(ORDERS, orders({DAY1: 2}), partition_values=[DAY1])

    with pytest.raises(PartitionMismatchError, match="2026-01-02"):
        lake.replace_partitions(ORDERS, orders({DAY1: 1, DAY2: 1}), partition_values=[DAY1])
    changed = orders({DAY1: 1}).with_columns(pl.col("amount").cast(pl.String))
    with pytest.raises(SchemaEvolutionError, match=r"commerce_silver\.orders.*amount"):
        lake.replace_partitions(ORDERS, changed, partition_values=[DAY1])
    with pytest.raises(InvalidIdentifierError):
        lake.replace_partitions(ORDERS, orders({DAY1: 1}), partition_values=["2026-1-1"])

    assert lake.load_table(ORDERS).current_snapshot().snapshot_id == first.snapshot_id
    assert_frame_equal(sorted_rows(lake.read(ORDERS)), orders({DAY1: 2}))
    with pytest.raises(TableNotFoundError):
        lake.read(DatasetName("commerce", "silver", "never_written"))


def test_iceberg_type_mapping(lake: IcebergTables) -> None:
    instant = datetime(2026, 1, 1, 12, 30)
    frame = pl.DataFrame(
        {
            "partition_date": [DAY1],
            "small": pl.Series([7], dtype=pl.Int16),
            "unsigned": pl.Series([4_000_000_000], dtype=pl.UInt32),
            "flag": [True],
            "ratio": [0.5],
            "tags": [["a", "b"]],
            "segment": pl.Series(["vip"], dtype=pl.Categorical),
            "local_ts": pl.Series([instant], dtype=pl.Datetime("ns")),
            "zoned_ts": pl.Series([instant]).dt.replace_time_zone("Europe/Paris"),
        }
    )
    lake.replace_partitions(ORDERS, frame, partition_values=[DAY1])
    back = lake.read(ORDERS)
    assert back.schema == pl.Schema(
        {
            "partition_date": pl.Date,
            "small": pl.Int32,
            "unsigned": pl.Int64,
            "flag": pl.Boolean,
            "ratio": pl.Float64,
            "tags": pl.List(pl.String),
            "segment": pl.String,
            "local_ts": pl.Datetime("us"),
            "zoned_ts": pl.Datetime("us", "UTC"),
        }
    )
    row = back.row(0, named=True)
    assert (row["small"], row["unsigned"], row["segment"]) == (7, 4_000_000_000, "vip")
    assert row["local_ts"] == instant
    assert row["zoned_ts"].replace(tzinfo=None) == instant - timedelta(hours=1)  # Paris is UTC+1

    sub_micro = frame.with_columns(pl.col("local_ts") + pl.duration(nanoseconds=1))
    with pytest.raises(SchemaEvolutionError, match="local_ts"):
        lake.replace_partitions(ORDERS, sub_micro, partition_values=[DAY1])


def test_iceberg_replace_table(lake: IcebergTables) -> None:
    first = pl.DataFrame({"currency": ["EUR", "GBP"], "usd_per_unit": [1.1, 1.3]})
    second = pl.DataFrame({"currency": ["JPY"], "usd_per_unit": [0.0068]})
    lake.replace_table(FX, first)
    result = lake.replace_table(FX, second)
    assert_frame_equal(lake.read(FX), second)
    assert (result.rows_written, result.rows_replaced) == (1, 2)
    assert lake.load_table(FX).spec().is_unpartitioned()


# --- Extensions -----------------------------------------------------------------------------


def test_iceberg_extension_loads_offline_and_reads_a_pyiceberg_table(
    lake: IcebergTables, con: duckdb.DuckDBPyConnection
) -> None:
    frame = orders({DAY1: 3, DAY2: 2})
    lake.replace_partitions(ORDERS, frame, partition_values=[DAY1, DAY2])
    metadata_location = lake.load_table(ORDERS).metadata_location

    assert load_extensions(con, "iceberg") == ("avro", "iceberg")
    loaded = con.execute(
        "SELECT extension_name FROM duckdb_extensions() WHERE loaded AND extension_name IN "
        "('avro', 'iceberg')"
    ).fetchall()
    assert sorted(name for (name,) in loaded) == ["avro", "iceberg"]
    scanned = con.execute("SELECT * FROM iceberg_scan($location)", {"location": metadata_location})
    assert_frame_equal(sorted_rows(scanned.pl()), sorted_rows(frame))


def test_extension_paths_come_from_the_installed_wheels() -> None:
    path = extension_path("delta")
    assert path.is_file()
    assert path.parent.name == f"v{duckdb.__version__}"
    with pytest.raises(ValueError, match="unknown DuckDB extension"):
        extension_path("spatial")
