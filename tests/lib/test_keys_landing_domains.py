"""Key grammar, identifier validation, the landing reader and domain descriptors."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from data_products.lib.domains import DemoSlice, load_domains
from data_products.lib.keys import (
    DatasetName,
    InvalidIdentifierError,
    validate_identifier,
    validate_partition_key,
)
from data_products.lib.landing import LandingError, drop_files, read_landing


@pytest.mark.parametrize("key", ["2026-01-01", "2024-02-29", "2026-01-01-13:00"])
def test_valid_partition_keys(key: str) -> None:
    assert validate_partition_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "2026-02-30",
        "2026-1-01",
        "2026-01-01'; DROP TABLE x; --",
        "../2026-01-01",
        "",
        "2026-01-01 ",
    ],
)
def test_invalid_partition_keys(key: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="invalid partition key"):
        validate_partition_key(key)


@pytest.mark.parametrize("name", ["Orders", "1orders", "orders;", "orders-x", "a" * 64, "ö"])
def test_invalid_identifiers(name: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        validate_identifier(name)


def test_dataset_name_from_key() -> None:
    name = DatasetName.from_key(dg.AssetKey(["commerce", "silver", "orders"]))
    assert (name.schema, name.table, str(name)) == (
        "commerce_silver",
        "commerce_silver.orders",
        "commerce/silver/orders",
    )
    assert DatasetName.from_key("commerce/gold/fct_orders").asset_key.path == [
        "commerce",
        "gold",
        "fct_orders",
    ]
    with pytest.raises(InvalidIdentifierError, match="layer"):
        DatasetName("commerce", "platinum", "orders")
    with pytest.raises(InvalidIdentifierError, match=r"\[domain, layer, name\]"):
        DatasetName.from_key("commerce/orders")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_read_landing_tracks_files_lines_and_drift(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _write(landing / "shop/2026-01-01/orders.csv", b"id,amount\n1,10\n2,20\n")
    _write(landing / "shop/2026-01-01/orders_resent.csv", b"id,amount\n2,20\n")
    _write(landing / "shop/2026-01-02/orders.csv", b"id,price,coupon\n3,30,X\n")
    _write(landing / "shop/2026-01-02/order_items.csv", b"not,ours\n")  # other dataset
    _write(landing / "shop/2026-01-03/orders.csv", "id,name\n4,Jos\xe9\n".encode("latin-1"))

    read = read_landing(landing, "shop", "orders", ["2026-01-01", "2026-01-02", "2026-01-03"])
    frame = read.frame
    assert read.files == {
        "shop/2026-01-01/orders.csv": 2,
        "shop/2026-01-01/orders_resent.csv": 1,
        "shop/2026-01-02/orders.csv": 1,
        "shop/2026-01-03/orders.csv": 1,
    }
    assert frame.height == 5
    assert set(frame.columns) >= {"id", "amount", "price", "coupon", "name", "_row_hash"}
    assert frame.schema["id"] == pl.String  # as delivered: text
    assert frame.filter(pl.col("id") == "2")["_source_line"].to_list() == [3, 2]
    assert frame.filter(pl.col("id") == "3")["price"].item() == "30"
    assert (
        "\ufffd" in frame.filter(pl.col("id") == "4")["name"].item()
    )  # undecodable byte kept visible
    # the same delivered values hash the same wherever they arrive
    hashes = frame.filter(pl.col("id") == "2")["_row_hash"].to_list()
    assert hashes[0] == hashes[1]


def test_missing_day_and_multiline_fields(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    assert read_landing(landing, "shop", "orders", ["2026-01-05"]).missing_partitions == [
        "2026-01-05"
    ]
    _write(landing / "shop/2026-01-06/orders.csv", b'id,note\n1,"two\nlines"\n')
    with pytest.raises(LandingError, match="spans lines"):
        read_landing(landing, "shop", "orders", ["2026-01-06"])
    with pytest.raises(InvalidIdentifierError):
        drop_files(landing, "shop", "orders", "../../etc")


def test_domain_descriptors_load() -> None:
    domains = load_domains()
    assert "commerce" in domains
    commerce = domains["commerce"]
    assert commerce.owner.startswith("team:")
    assert commerce.demo is not None
    ports = [p for product in commerce.data_products for p in product.output_ports]
    assert all(p.startswith("commerce/") for p in ports)
    with pytest.raises(ValueError, match="invalid partition key"):
        DemoSlice(start="2026-13-01", end="2026-01-02")


def test_demo_slice_is_a_range_or_a_runner() -> None:
    assert DemoSlice(runner="scripts.slices:run_all_slices").resolve_runner() is not None
    assert DemoSlice(start="2026-01-01", end="2026-01-02").resolve_runner() is None
    with pytest.raises(ValueError, match="range"):
        DemoSlice()
    with pytest.raises(ValueError, match="both start and end"):
        DemoSlice(start="2026-01-01", runner="scripts.slices:run_all_slices")
    with pytest.raises(ValueError, match="module:function"):
        DemoSlice(runner="scripts.slices.run_all_slices")
