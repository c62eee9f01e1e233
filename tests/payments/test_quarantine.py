"""Malformed and invalid records are quarantined, never fatal: the batch commits, every other
record is published, and rows in = published + duplicates + quarantined in every batch."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from assets.payments.records import PARSE_RULE, record_rules
from assets.payments.reference import TOPIC
from assets.payments.tables import QUARANTINE, silver_contract
from data_products.lib.quarantine import QUARANTINE_SCHEMA
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
    # Lineage as in every domain's quarantine: <topic>/p<partition> and the offset.
    assert quarantine.select("_source_file", "_source_line", "rule_id").rows() == [
        (f"{TOPIC}/p0", middle + i, rule) for i, (_, rule) in enumerate(BAD_RECORDS)
    ]
    assert set(quarantine["rule_id"]) <= set(record_rules(silver_contract()).ids)
    # Reasons name the log position; raw records are kept as delivered.
    assert all(r.startswith(f"p0@{middle + i}: ") for i, r in enumerate(quarantine["reason"]))
    assert quarantine["raw_record"][0] == "not json at all\n"
    assert "12,50" in quarantine["reason"][2]
    # A record that fails several rules lists them all.
    assert quarantine.filter(pl.col("_source_line") == middle + 6)["failed_rules"].to_list() == [
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


def test_the_stream_quarantine_has_the_shared_schema(data_home: Path) -> None:
    """Every domain's quarantine has the same columns (the stream adds its ``_batch_id``);
    ``partition_date`` is the event's day, or the day the log appended a record whose event time
    cannot be read (the bad records are appended at epoch millisecond 1: 1970-01-01)."""
    _, _, middle = _consume(batch=400)
    with duckdb.connect(str(get_settings().warehouse_path)) as con:
        stored = con.execute(
            f"SELECT * FROM {QUARANTINE.table} ORDER BY _source_file, _source_line"
        ).pl()
    assert stored.schema == pl.Schema({**QUARANTINE_SCHEMA, "_batch_id": pl.String()})
    days = dict(zip(stored["_source_line"] - middle, stored["partition_date"], strict=True))
    event_day, append_day = date(2026, 3, 1), date(1970, 1, 1)
    for i, (_, rule) in enumerate(BAD_RECORDS):
        readable = rule not in (PARSE_RULE, "transactions.event_time.type")
        assert days[i] == (event_day if readable else append_day), (i, rule)
    assert stored["severity"].unique().to_list() == ["error"]
    assert stored["_batch_id"].null_count() == 0


def test_quarantine_is_exactly_once_across_batch_sizes(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_batches, _, _ = _consume(batch=97)
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(tmp_path / "other"))
    one_batch, _, _ = _consume(batch=100_000)
    for name in small_batches:
        assert_frame_equal(small_batches[name], one_batch[name], check_row_order=True)


def test_a_quarantine_table_of_the_old_shape_fails_naming_the_table(data_home: Path) -> None:
    """No payments warehouse from before the shared quarantine schema exists outside tests, so
    there is no migration; a leftover one must fail loudly, not lose the rejected records."""
    get_settings().warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(get_settings().warehouse_path)) as con:
        con.execute("CREATE SCHEMA payments_silver")
        con.execute(
            f"""CREATE TABLE {QUARANTINE.table} (rule_id VARCHAR, failed_rules VARCHAR[],
                severity VARCHAR, reason VARCHAR, log_partition INTEGER, log_offset BIGINT,
                raw_record VARCHAR, event_hour TIMESTAMP, _batch_id VARCHAR,
                _quarantined_at TIMESTAMP)"""
        )
    with pytest.raises(RuntimeError, match=f"DROP TABLE {QUARANTINE.table}"):
        _consume(batch=100_000)
