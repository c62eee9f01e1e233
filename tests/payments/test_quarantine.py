"""Malformed and invalid records are quarantined, never fatal: the batch commits, every other
record is published, and rows in = published + duplicates + quarantined in every batch."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.payments.records import PARSE_RULE, record_rules
from assets.payments.tables import silver_contract
from data_products.lib.settings import get_settings
from tests.payments.helpers import SMALL, drain, produce_small, snapshot

_GOOD = {
    "event_id": "bad-0",
    "user_id": "u0000001",
    "merchant_id": "m00001",
    "amount": 12.5,
    "currency": "USD",
    "country": "US",
    "device_id": "d1",
    "event_time": "2026-03-01T00:20:00.000Z",
}


def _line(**changes: object) -> bytes:
    record = {**_GOOD, **changes}
    return (json.dumps({k: v for k, v in record.items() if v is not ...}) + "\n").encode()


# (raw record, the rule it must be quarantined under)
BAD_RECORDS = [
    (b"not json at all\n", PARSE_RULE),
    (b"[1, 2, 3]\n", PARSE_RULE),
    (_line(event_id="bad-1", amount="12,50"), PARSE_RULE),
    (b'{"event_id": "bad-2", "amount": 1.0', PARSE_RULE),
    (
        _line(event_id="bad-3") + _line(event_id="bad-4"),
        PARSE_RULE,
    ),
    (b"\xff\xfe\n", PARSE_RULE),
    (_line(event_id="bad-5", user_id=...), "transactions.user_id.required"),
    (_line(event_id="bad-6", amount=-3.0), "transactions.amount.range"),
    (
        _line(event_id="bad-7", event_time="01/03/2026"),
        "transactions.event_time.type",
    ),
    (_line(event_id="bad-8", currency="usd"), "transactions.currency.pattern"),
]


def _consume(batch: int) -> tuple[dict[str, pl.DataFrame], list, int]:
    log, _ = produce_small(SMALL)
    # Bad records after the good ones of partition 0, then one more good record.
    middle = log.end_offset(0)
    log.append(0, [r for r, _ in BAD_RECORDS], append_ms=1)
    log.append(0, [_line(event_id="good-after-bad")], append_ms=2)
    with duckdb.connect(str(get_settings().warehouse_path)) as con:
        reports = drain(con, log, batch=batch)
        return snapshot(con), reports, middle


def test_malformed_records_are_quarantined_and_the_rest_published(data_home: Path) -> None:
    tables, reports, middle = _consume(batch=400)
    quarantine = tables["quarantine"]
    assert quarantine.select("log_partition", "log_offset", "rule_id").rows() == [
        (0, middle + i, rule) for i, (_, rule) in enumerate(BAD_RECORDS)
    ]
    assert set(quarantine["rule_id"]) <= set(record_rules(silver_contract()).ids)
    # Reasons name the log position; raw records are kept as delivered.
    assert all(r.startswith(f"p0@{middle + i}: ") for i, r in enumerate(quarantine["reason"]))
    assert quarantine["raw_record"][0] == "not json at all\n"
    assert "12,50" in quarantine["reason"][2]
    # A record that fails several rules lists them all.
    assert quarantine.filter(pl.col("log_offset") == middle + 6)["failed_rules"].to_list() == [
        ["transactions.user_id.required"]
    ]
    # Everything around the bad records is published; no bad id reached silver.
    published = set(tables["silver"]["event_id"]) | set(tables["late"]["event_id"])
    assert "good-after-bad" in published
    assert not any(e.startswith("bad-") for e in published)
    assert tables["bronze"].height == sum(r.records for r in reports)
    for r in reports:
        assert r.records == r.bronze_rows == r.published + r.duplicates + r.quarantined, r
    assert sum(r.quarantined for r in reports) == len(BAD_RECORDS)


def test_quarantine_is_exactly_once_across_batch_sizes(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_batches, _, _ = _consume(batch=97)
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(tmp_path / "other"))
    one_batch, _, _ = _consume(batch=100_000)
    for name in small_batches:
        assert_frame_equal(small_batches[name], one_batch[name], check_row_order=True)
