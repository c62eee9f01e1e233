"""The warehouse and lake resources: defaults from the data home, resolved when used."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from data_products.lib.keys import DatasetName
from data_products.lib.tables import read_partitions, replace_partitions
from resources import LakeResource, WarehouseResource, default_resources

ORDERS = DatasetName("commerce", "silver", "orders")
DAY = date(2026, 1, 5)
FRAME = pl.DataFrame({"partition_date": [DAY, DAY], "order_id": ["O1", "O2"]})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(home))
    return home


def test_warehouse_defaults_to_the_data_home_resolved_at_connect_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = WarehouseResource()  # built before the home is chosen, like at import time
    home = tmp_path / "later_home"
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(home))

    with warehouse.connect() as con:
        replace_partitions(con, ORDERS, FRAME, partition_values=[DAY])
    assert (home / "warehouse.duckdb").is_file()

    with WarehouseResource(read_only=True).connect() as con:
        assert_frame_equal(read_partitions(con, ORDERS, [DAY]).sort("order_id"), FRAME)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE t (x INTEGER)")


def test_warehouse_settings_and_extensions_apply(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "w.duckdb"
    resource = WarehouseResource(
        path=str(path), threads=1, memory_limit="512MiB", extensions=["iceberg"]
    )
    with resource.connect() as con:
        settings = con.execute(
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        ).fetchone()
        loaded = con.execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded"
        ).fetchall()
    assert settings == (1, "512.0 MiB")
    assert {"avro", "iceberg"} <= {name for (name,) in loaded}
    assert path.is_file()
    assert not (home / "warehouse.duckdb").exists()


def test_warehouse_closes_its_connection_and_refuses_a_missing_read_only_file(home: Path) -> None:
    with WarehouseResource().connect() as con:
        pass
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")
    missing = WarehouseResource(read_only=True, path=str(home / "missing.duckdb"))
    with pytest.raises(FileNotFoundError, match="nothing has been materialised"), missing.connect():
        pass


def test_lake_defaults_write_iceberg_under_the_data_home(home: Path) -> None:
    lake = LakeResource()
    result = lake.iceberg().replace_partitions(ORDERS, FRAME, partition_values=[DAY])

    assert (home / "lake" / "iceberg_catalog.db").is_file()
    location = Path(result.location or "")
    assert location.is_relative_to(home / "lake" / "iceberg")
    assert any(location.rglob("*.parquet"))
    assert lake.resolved_delta_root() == str(home / "lake" / "delta")
    # A second resource on the same home sees the table through the catalog.
    assert_frame_equal(LakeResource().iceberg().read(ORDERS).sort("order_id"), FRAME)
    assert lake.iceberg_properties().keys() == {"uri", "warehouse"}
    assert lake.delta_storage_options() == {}


def test_lake_s3_fields_take_env_vars_without_touching_s3(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LAKE_KEY_ID", "key-id")
    monkeypatch.setenv("TEST_LAKE_SECRET", "secret")
    configured = LakeResource(
        warehouse="s3://lake/iceberg",
        delta_root="s3://lake/delta",
        s3_endpoint="http://127.0.0.1:9",
        s3_region="eu-west-1",
        s3_access_key_id=dg.EnvVar("TEST_LAKE_KEY_ID"),
        s3_secret_access_key=dg.EnvVar("TEST_LAKE_SECRET"),
        s3_allow_http=True,
    )
    with dg.build_resources({"lake": configured}) as resources:
        lake: LakeResource = resources.lake
        properties = lake.iceberg_properties()
        options = lake.delta_storage_options()
        delta_root = lake.resolved_delta_root()

    assert properties["warehouse"] == "s3://lake/iceberg"
    assert properties["s3.access-key-id"] == "key-id"
    assert properties["s3.secret-access-key"] == "secret"
    assert properties["uri"] == f"sqlite:///{home / 'lake' / 'iceberg_catalog.db'}"
    assert options == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key-id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ALLOW_HTTP": "true",
    }
    assert delta_root == "s3://lake/delta"


def test_default_resources_run_an_asset(home: Path) -> None:
    @dg.asset(key=ORDERS.asset_key)
    def orders(warehouse: WarehouseResource, lake: LakeResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            written = replace_partitions(con, ORDERS, FRAME, partition_values=[DAY])
        lake.iceberg().replace_partitions(ORDERS, FRAME, partition_values=[DAY])
        return dg.MaterializeResult(metadata=written.metadata())

    result = dg.materialize([orders], resources=default_resources())

    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"] == dg.MetadataValue.int(2)
    assert (home / "warehouse.duckdb").is_file()
    assert (home / "lake" / "iceberg_catalog.db").is_file()
