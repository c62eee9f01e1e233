"""The quarantine split on the commerce contracts: every row published or quarantined exactly
once, first-delivered duplicates kept, reasons that name the value, file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from data_products.lib import quarantine
from data_products.lib.contracts import Contract, load_contract_for
from data_products.lib.quarantine import (
    QUARANTINE_SCHEMA,
    ReconciliationError,
    SplitError,
    split,
)

DAY = date(2026, 1, 3)
ORDERS_CSV = "commerce/2026-01-03/orders.csv"
RESENT_CSV = "commerce/2026-01-03/orders_resent.csv"
STAMP = datetime(2026, 1, 4, 6, 0, 0)

LINE_SCHEMA = {
    "order_id": pl.String,
    "order_id__raw": pl.String,
    "line_no": pl.Int64,
    "line_no__raw": pl.String,
    "product_id": pl.String,
    "quantity": pl.Int64,
    "quantity__raw": pl.String,
    "unit_price_local": pl.Float64,
    "unit_price_local__raw": pl.String,
    "unit_price_usd": pl.Float64,
    "line_amount_usd": pl.Float64,
    "currency": pl.String,
    "order_ts": pl.Datetime("us"),
    "order_ts__raw": pl.String,
    "_known_rate": pl.Boolean,
    "_in_partition": pl.Boolean,
    "_raw_record": pl.String,
    "_extra_columns": pl.String,
    "partition_date": pl.Date,
    "_source_file": pl.String,
    "_source_line": pl.Int64,
}


@pytest.fixture(scope="module")
def lines() -> Contract:
    return load_contract_for("commerce.silver.order_lines")


def line_row(line: int, file: str = ORDERS_CSV, **changes: Any) -> dict[str, Any]:
    """A typed order line (the transforms' convention) that passes every rule."""
    row: dict[str, Any] = {
        "order_id": f"O{line:09d}",
        "line_no": 1,
        "product_id": "P00001",
        "quantity": 2,
        "quantity__raw": "2",
        "unit_price_local": 10.0,
        "unit_price_local__raw": "10.00",
        "unit_price_usd": 10.0,
        "line_amount_usd": 20.0,
        "currency": "USD",
        "order_ts": datetime(2026, 1, 3, 10, 15),
        "order_ts__raw": "2026-01-03T10:15:00Z",
        "_known_rate": True,
        "_in_partition": True,
        "_extra_columns": None,
        "partition_date": DAY,
        "_source_file": file,
        "_source_line": line,
    }
    row.update(changes)
    row.setdefault("order_id__raw", row["order_id"] or "")
    row.setdefault("line_no__raw", "" if row["line_no"] is None else str(row["line_no"]))
    row.setdefault("_raw_record", json.dumps({"order_id": row["order_id__raw"], "line": line}))
    return row


def lines_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


# --------------------------------------------------------------------------------------------
# Quarantine rows


def test_quarantine_rows_follow_the_model(lines: Contract) -> None:
    bad = line_row(57, quantity=1000, quantity__raw="1000")
    result = split(lines_frame([line_row(2), bad]), lines, quarantined_at=STAMP)
    assert result.quarantined.schema == QUARANTINE_SCHEMA
    row = result.quarantined.row(0, named=True)
    assert row == {
        "partition_date": DAY,
        "rule_id": "order_lines.quantity.range",
        "failed_rules": ["order_lines.quantity.range"],
        "severity": "error",
        "reason": "order_lines.quantity.range: quantity=1000 outside [1, 100] "
        f"({ORDERS_CSV} line 57)",
        "_source_file": ORDERS_CSV,
        "_source_line": 57,
        "raw_record": bad["_raw_record"],
        "_quarantined_at": STAMP,
    }
    assert result.quarantined_by_rule == {"order_lines.quantity.range": 1}


def test_raw_record_is_rebuilt_from_raw_values_without_one(lines: Contract) -> None:
    bad = line_row(3, unit_price_local=None, unit_price_local__raw="1.2.3,4")
    frame = lines_frame([line_row(2), bad]).drop("_raw_record")
    record = json.loads(split(frame, lines).quarantined.get_column("raw_record")[0])
    assert record["unit_price_local"] == "1.2.3,4"
    assert record["order_id"] == "O000000003"
    assert record["line_amount_usd"] == "20.0"  # no raw column: the typed value as text


def test_warning_rules_keep_rows_and_errors_list_every_failing_rule() -> None:
    customers = load_contract_for("commerce.silver.customers")
    base = {
        "partition_date": DAY,
        "customer_id": "C000001",
        "customer_id__raw": "C000001",
        "email": "ana@example.org",
        "full_name": "Ana",
        "full_name__raw": "Ana",
        "country": "PT",
        "segment": "vip",
        "signup_date": DAY,
        "signup_date__raw": "2026-01-03",
        "updated_at": datetime(2026, 1, 3, 10),
        "updated_at__raw": "2026-01-03T10:00:00Z",
        "_source_file": "commerce/2026-01-03/customers.csv",
    }
    rows = [
        {**base, "_source_line": 2},
        {**base, "_source_line": 3, "customer_id": "C000002", "email": "nope"},
        {**base, "_source_line": 4, "customer_id": "C000003", "email": "no", "segment": "gold"},
    ]
    result = split(pl.DataFrame(rows), customers)
    assert result.published.get_column("_source_line").to_list() == [2, 3]
    assert result.rule_failures == {
        "customers.email.pattern": 2,
        "customers.segment.valid_values": 1,
    }
    row = result.quarantined.row(0, named=True)
    assert row["rule_id"] == "customers.segment.valid_values"
    assert row["failed_rules"] == ["customers.email.pattern", "customers.segment.valid_values"]
    assert [s["line"] for s in result.samples["customers.email.pattern"]] == [3, 4]


# --------------------------------------------------------------------------------------------
# Duplicates


def test_duplicates_keep_the_first_delivered_row(lines: Contract) -> None:
    # Delivered out of order on purpose: the re-sent copy and a later repeat come first.
    rows = [
        line_row(2, file=RESENT_CSV, order_id="O000000001"),
        line_row(9, order_id="O000000002"),
        line_row(2, order_id="O000000001"),
        line_row(3, order_id="O000000002"),
        line_row(4, order_id="O000000003"),
    ]
    result = split(lines_frame(rows), lines)
    published = result.published.select("order_id", "_source_file", "_source_line").rows()
    assert published == [
        ("O000000001", ORDERS_CSV, 2),
        ("O000000002", ORDERS_CSV, 3),
        ("O000000003", ORDERS_CSV, 4),
    ]
    reasons = dict(
        result.quarantined.select(
            pl.concat_str("_source_file", pl.lit(":"), "_source_line"), "reason"
        ).rows()
    )
    assert reasons == {
        f"{ORDERS_CSV}:9": "order_lines.primary_key.duplicate: duplicate of order_id=O000000002, "
        f"line_no=1 kept from {ORDERS_CSV} line 3 ({ORDERS_CSV} line 9)",
        f"{RESENT_CSV}:2": "order_lines.primary_key.duplicate: duplicate of order_id=O000000001, "
        f"line_no=1 kept from {ORDERS_CSV} line 2 ({RESENT_CSV} line 2)",
    }
    assert result.rule_failures == {"order_lines.primary_key.duplicate": 2}
    assert len(result.samples["order_lines.primary_key.duplicate"]) == 2


def test_a_row_failing_a_rule_never_counts_as_the_kept_duplicate(lines: Contract) -> None:
    rows = [
        line_row(2, order_id="O000000001", quantity=0, quantity__raw="0"),
        line_row(3, order_id="O000000001"),
    ]
    result = split(lines_frame(rows), lines)
    assert result.published.get_column("_source_line").to_list() == [3]
    assert result.quarantined.get_column("rule_id").to_list() == ["order_lines.quantity.range"]


# --------------------------------------------------------------------------------------------
# Published rows


def test_published_rows_are_cast_and_stripped_of_helper_columns(lines: Contract) -> None:
    rows = [line_row(2, _extra_columns='{"coupon_code": "WINTER"}'), line_row(3)]
    result = split(lines_frame(rows), lines)
    contract_columns = [c.name for c in lines.columns]
    lineage = ["partition_date", "_source_file", "_source_line", "_extra_columns"]
    assert result.published.columns == contract_columns + lineage
    for column in lines.columns:
        assert result.published.schema[column.name] == column.dtype, column.name
    assert result.published.schema["line_no"] == pl.Int32
    assert result.dropped_columns == ("currency", "order_ts")
    assert result.extra_columns == ("coupon_code",)
    assert result.extra_column_rows == 1
    lines.pandera_schema().validate(result.published)


def test_drift_ignores_empty_extra_columns(lines: Contract) -> None:
    rows = [line_row(2, _extra_columns="{}"), line_row(3, _extra_columns='{"a": 1, "b": 2}')]
    result = split(lines_frame(rows), lines)
    assert (result.extra_columns, result.extra_column_rows) == (("a", "b"), 1)


def test_aware_timestamps_are_published_as_utc() -> None:
    orders = load_contract_for("commerce.silver.orders")
    frame = pl.DataFrame(
        {
            "order_id": ["O000000001"],
            "customer_id": ["C000001"],
            "order_ts": [datetime(2026, 1, 4, 3, 30)],
            "order_date": [DAY],
            "status": ["placed"],
            "currency": ["JPY"],
            "order_total_local": [1000.0],
            "order_total_usd": [6.4],
            "line_count": [1],
            "_in_partition": [True],
            "_lines_complete": [True],
            "partition_date": [DAY],
            "_source_file": [ORDERS_CSV],
            "_source_line": [2],
        }
    ).with_columns(pl.col("order_ts").dt.replace_time_zone("Asia/Tokyo"))
    published = split(frame, orders).published
    assert published.schema["order_ts"] == pl.Datetime("us")
    assert published.get_column("order_ts").to_list() == [datetime(2026, 1, 3, 18, 30)]
    assert published.schema["line_count"] == pl.Int32


def test_lossy_integer_cast_is_refused(lines: Contract) -> None:
    frame = lines_frame([line_row(2)]).with_columns(pl.lit(1.5).alias("quantity"))
    with pytest.raises(SplitError, match=rf"'quantity' has fractional values.*{ORDERS_CSV} line 2"):
        split(frame, lines)


@pytest.mark.parametrize(
    ("dropped", "message"),
    [
        ("product_id", r"lacks contract columns \['product_id'\]"),
        ("_known_rate", r"order_lines\.currency\.known_rate needs flag column '_known_rate'"),
        ("currency", r"order_lines\.currency\.known_rate checks column 'currency'"),
        ("_in_partition", r"order_lines\.order_ts\.in_partition needs flag column '_in_partition'"),
        ("_source_line", r"lacks lineage columns \['_source_line'\]"),
    ],
)
def test_missing_input_columns_are_named(lines: Contract, dropped: str, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        split(lines_frame([line_row(2)]).drop(dropped), lines)


def test_a_lost_row_raises(lines: Contract, monkeypatch: pytest.MonkeyPatch) -> None:
    real = quarantine._publish
    monkeypatch.setattr(quarantine, "_publish", lambda kept, c: real(kept, c).head(0))
    with pytest.raises(ReconciliationError, match=r"2 rows in != 0 published \+ 0 quarantined"):
        split(lines_frame([line_row(2), line_row(3)]), lines)


def test_samples_are_the_first_five_rows_by_file_and_line(lines: Contract) -> None:
    rows = [line_row(n, quantity=0, quantity__raw="0") for n in range(20, 10, -1)]
    result = split(lines_frame(rows), lines)
    samples = result.samples["order_lines.quantity.range"]
    assert [s["line"] for s in samples] == [11, 12, 13, 14, 15]
    assert all(s["file"] == ORDERS_CSV and s["value"] == "0" for s in samples)
    assert json.loads(samples[0]["raw_record"])["line"] == 11
    assert result.rule_failures["order_lines.quantity.range"] == 10


def test_an_empty_input_splits_into_empty_outputs(lines: Contract) -> None:
    result = split(lines_frame([]), lines)
    assert (result.rows_in, result.published.height, result.quarantined.height) == (0, 0, 0)
    assert result.quarantined.schema == QUARANTINE_SCHEMA
    assert result.rule_failures == {} and result.samples == {}


# --------------------------------------------------------------------------------------------
# The invariant, on random frames


def _typed_int(raw: str | None) -> int | None:
    """What the transforms do with a delivered whole number: ``"2.0"`` → 2, ``"1.5"`` → null."""
    try:
        value = float(raw or "")
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _typed_float(raw: str | None) -> float | None:
    try:
        return float(raw or "")
    except ValueError:
        return None


_random_line = st.fixed_dictionaries(
    {
        "order_id": st.sampled_from(["O000000001", "O000000002", "O000000003", "bad", None]),
        "line_no": st.sampled_from([1, 2, None]),
        "quantity__raw": st.sampled_from(["1", "2.0", "100", "0", "1000", "1.5", "", "x"]),
        "unit_price_local__raw": st.sampled_from(["10.5", "0", "-1", "200000", "abc", ""]),
        "_known_rate": st.sampled_from([True, True, False, None]),
        "_in_partition": st.sampled_from([True, True, False]),
        "file": st.sampled_from([ORDERS_CSV, RESENT_CSV]),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=st.lists(_random_line, max_size=40))
def test_every_row_is_published_or_quarantined_exactly_once(drawn: list[dict[str, Any]]) -> None:
    contract = load_contract_for("commerce.silver.order_lines")
    rows = [
        line_row(
            line,
            file=d["file"],
            order_id=d["order_id"],
            line_no=d["line_no"],
            quantity=_typed_int(d["quantity__raw"]),
            quantity__raw=d["quantity__raw"],
            unit_price_local=_typed_float(d["unit_price_local__raw"]),
            unit_price_local__raw=d["unit_price_local__raw"],
            _known_rate=d["_known_rate"],
            _in_partition=d["_in_partition"],
        )
        for line, d in enumerate(drawn, start=2)
    ]
    result = split(lines_frame(rows), contract)

    def locations(frame: pl.DataFrame) -> Counter:
        return Counter(frame.select("_source_file", "_source_line").rows())

    inputs = Counter((r["_source_file"], r["_source_line"]) for r in rows)
    assert locations(result.published) + locations(result.quarantined) == inputs
    assert result.rows_in == result.published.height + result.quarantined.height
    assert not result.published.select(
        pl.struct("order_id", "line_no").is_duplicated().any()
    ).item()
    contract.pandera_schema().validate(result.published)

    errors = {r.id for r in contract.rules if r.severity == "error"}
    for row in result.quarantined.iter_rows(named=True):
        assert row["rule_id"] in errors
        assert row["rule_id"] in row["failed_rules"]
        assert row["reason"].startswith(f"{row['rule_id']}: ")
        assert row["reason"].endswith(f"({row['_source_file']} line {row['_source_line']})")
    for rule_id, count in result.quarantined_by_rule.items():
        assert result.rule_failures[rule_id] >= count
    assert sum(result.quarantined_by_rule.values()) == result.quarantined.height

    kept = {
        (r["order_id"], r["line_no"]): (r["_source_file"], r["_source_line"])
        for r in result.published.iter_rows(named=True)
    }
    duplicates = result.quarantined.filter(pl.col("rule_id") == "order_lines.primary_key.duplicate")
    by_location = {(r["_source_file"], r["_source_line"]): r for r in rows}
    for dup in duplicates.iter_rows(named=True):
        original = by_location[(dup["_source_file"], dup["_source_line"])]
        first = kept[(original["order_id"], original["line_no"])]
        assert first < (dup["_source_file"], dup["_source_line"])
        assert f"kept from {first[0]} line {first[1]}" in dup["reason"]


def test_raw_record_is_encoded_from_delivered_columns_for_rejected_rows_only(
    lines: Contract,
) -> None:
    bad = line_row(3, unit_price_local=None, unit_price_local__raw="1.2.3,4")
    frame = lines_frame([line_row(2), bad]).drop("_raw_record")
    delivered = pl.DataFrame(
        {"_delivered__price": ["9.99", "1.2.3,4"], "_delivered__coupon": [None, "VIP"]}
    )
    result = split(pl.concat([frame, delivered], how="horizontal"), lines)
    record = json.loads(result.quarantined.get_column("raw_record")[0])
    assert record == {"price": "1.2.3,4", "coupon": "VIP"}  # delivered names, nulls left out
    assert not any(c.startswith("_delivered__") for c in result.published.columns)
    assert "_delivered__price" not in result.dropped_columns


_DELIVERED = {
    # Delivered out of contract order, with an alias (price: unit_price_local) and two extras.
    "_delivered__zone": ["eu", "eu"],
    "_delivered__quantity": ["2", "1000"],
    "_delivered__coupon": [None, "VIP"],
    "_delivered__price": ["9.99", "1.2.3,4"],
    "_delivered__order_id": ["O000000002", "O000000003"],
    "_delivered__product_id": ["P00001", "P00001"],
}

_RAW_RECORDS_SCRIPT = """
import polars as pl, sys
from data_products.lib.contracts import load_contract_for
from data_products.lib.quarantine import split
from tests.lib.test_quarantine import _DELIVERED, line_row, lines_frame

frame = lines_frame([line_row(2), line_row(3, quantity=1000, quantity__raw="1000")])
typed = pl.concat([frame.drop("_raw_record"), pl.DataFrame(_DELIVERED)], how="horizontal")
result = split(typed, load_contract_for("commerce.silver.order_lines"))
sys.stdout.write("\\n".join(result.quarantined.get_column("raw_record").to_list()))
"""


def test_raw_record_keys_follow_the_contract_then_sorted_extras(lines: Contract) -> None:
    frame = lines_frame([line_row(2), line_row(3, quantity=1000, quantity__raw="1000")])
    typed = pl.concat([frame.drop("_raw_record"), pl.DataFrame(_DELIVERED)], how="horizontal")
    record = split(typed, lines).quarantined.get_column("raw_record")[0]
    # order_id, product_id, quantity, price (unit_price_local) in contract order, then extras.
    assert list(json.loads(record)) == [
        "order_id",
        "product_id",
        "quantity",
        "price",
        "coupon",
        "zone",
    ]


def test_raw_record_bytes_do_not_depend_on_the_process_hash_seed() -> None:
    """``split`` holds the frame's columns in a frozenset; string hashing (hence a set's order)
    changes with ``PYTHONHASHSEED``, so two clean runs used to write different raw_record bytes."""
    root = Path(__file__).resolve().parents[2]
    outputs = set()
    for seed in ("0", "1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", _RAW_RECORDS_SCRIPT],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
        )
        assert done.stdout, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1, outputs


def test_a_quarantine_written_before_the_rename_stays_readable(
    lines: Contract, tmp_path: Path
) -> None:
    """Partition files from before ``quarantined_at`` became ``_quarantined_at`` sit next to new
    ones: the warehouse view reads both by name, old rows with a null ``_quarantined_at``."""
    import duckdb

    from data_products.lib.tables.files import PartitionedFiles

    bad = line_row(57, quantity=1000, quantity__raw="1000")
    new = split(lines_frame([bad]), lines, quarantined_at=STAMP).quarantined
    old = new.rename({"_quarantined_at": "quarantined_at"}).with_columns(
        partition_date=pl.lit(date(2026, 1, 2))
    )
    store, dataset = PartitionedFiles(tmp_path), lines.quarantine_dataset
    with duckdb.connect() as con:
        store.replace_partitions(con, dataset, old, partition_values=[date(2026, 1, 2)])
        store.replace_partitions(con, dataset, new, partition_values=[DAY])
        rows = con.execute(
            f"SELECT partition_date, quarantined_at, _quarantined_at, rule_id FROM {dataset.table} "
            "ORDER BY partition_date"
        ).fetchall()
    rule = "order_lines.quantity.range"
    assert rows == [(date(2026, 1, 2), STAMP, None, rule), (DAY, None, STAMP, rule)]
