"""The payments_stream sensor and its runs, in-process: run keys name offset ranges, the cursor is
never trusted (a consumer killed before saving it resumes from the warehouse), a failed batch is
retried under a new run key, and backpressure caps batches and drains a backlog at a set rate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from polars.testing import assert_frame_equal

import assets.payments.batch as batch_module
from assets.payments.stream import payments_stream_batch
from assets.payments.tables import BRONZE, CARD_EVENTS, FEATURES
from data_products.cli.runs import tick_and_run
from data_products.lib.settings import get_settings
from resources.warehouse import WarehouseResource
from sensors.payments_stream import payments_stream
from tests.payments.helpers import LATE_STREAM, drain, produce_small, snapshot

SENSOR = "payments_stream"


@pytest.fixture
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[payments_stream_batch],
        sensors=[payments_stream],
        resources={"warehouse": WarehouseResource()},
    )


def _ranges(label: str) -> dict[int, tuple[int, int]]:
    out = {}
    for part in label.split(","):
        partition, span = part.split(":")
        start, end = span.split("-")
        out[int(partition[1:])] = (int(start), int(end))
    return out


def test_batches_resume_from_the_warehouse_not_the_cursor(
    data_home: Path,
    defs: dg.Definitions,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with monkeypatch.context() as m:  # the reference: one clean consumption elsewhere
        m.setenv("DATA_PRODUCTS_HOME", str(tmp_path_factory.mktemp("reference")))
        log, _ = produce_small(LATE_STREAM)
        with duckdb.connect(str(get_settings().warehouse_path)) as con:
            drain(con, log, batch=10_000)
            expected = snapshot(con)

    produce_small(LATE_STREAM)
    monkeypatch.setenv("DATA_PRODUCTS_PAYMENTS_STREAM_MAX_BATCH", "600")
    instance = dg.DagsterInstance.ephemeral()

    first, cursor = tick_and_run(defs, instance, SENSOR)
    assert len(first) == 1 and first[0].success
    assert {c.check for c in first[0].checks if c.passed} >= {
        "rows_reconcile",
        "event_id_unique",
        "schema",
        "one_row_per_event",
        "balanced",
        "offsets_contiguous",
    }
    assert all(c.passed for c in first[0].checks), [c for c in first[0].checks if not c.passed]
    first_ranges = _ranges(first[0].partitions)
    assert sum(end - start for start, end in first_ranges.values()) == 600
    meta = instance.get_latest_materialization_event(BRONZE.asset_key)
    assert meta is not None and meta.asset_materialization is not None
    recorded = meta.asset_materialization.metadata
    assert recorded["lag_offsets"].value == _late_stream_records() - 600
    assert recorded["lag_seconds"].value >= 0 and recorded["batch_latency_s"].value > 0
    features = instance.get_latest_materialization_event(FEATURES.asset_key)
    assert features is not None and features.asset_materialization is not None
    state_rows = features.asset_materialization.metadata["window_state_rows"].value
    assert state_rows == _count(f"SELECT count(*) FROM {CARD_EVENTS}") > 0

    # Killed before the cursor was saved: the next tick starts where the warehouse says.
    second, _ = tick_and_run(defs, instance, SENSOR, cursor=None)
    assert second[0].success
    for partition, (start, _) in _ranges(second[0].partitions).items():
        assert start == first_ranges[partition][1]

    # The run launcher retries the first request after a crash: a no-op.
    job = defs.resolve_implicit_global_asset_job_def()
    request_config = {
        "ops": {
            "payments_stream_batch": {
                "config": {
                    "topic": "payments_transactions",
                    "ranges": [
                        {"partition": p, "start": s, "end": e} for p, (s, e) in first_ranges.items()
                    ],
                }
            }
        }
    }
    rows_before = _count(f"SELECT count(*) FROM {BRONZE.table}")
    replay = job.execute_in_process(
        instance=instance,
        run_config=request_config,
        asset_selection=list(payments_stream_batch.keys),
    )
    assert replay.success
    assert _count(f"SELECT count(*) FROM {BRONZE.table}") == rows_before

    # A batch that fails before its commit leaves nothing and is retried under a new run key.
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as m:
        m.setattr(batch_module, "commit_ranges", crash)
        failed, cursor = tick_and_run(defs, instance, SENSOR, cursor=cursor)
    assert not failed[0].success
    assert _count(f"SELECT count(*) FROM {BRONZE.table}") == rows_before
    sensor = defs.resolve_sensor_def(SENSOR)
    retry = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    )
    assert retry.run_requests and retry.run_requests[0].run_key.endswith("#retry1")

    runs = []
    for _ in range(20):
        batch, cursor = tick_and_run(defs, instance, SENSOR, cursor=cursor)
        if not batch:
            break
        runs += batch
    assert runs and all(r.success for r in runs)
    with duckdb.connect(str(get_settings().warehouse_path)) as con:
        tables = snapshot(con)
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=False, rel_tol=1e-9)
    assert _count(f"SELECT count(*) FROM {FEATURES.table}") == expected["features"].height


def _late_stream_records() -> int:
    from assets.payments.simulator import simulate

    return simulate(LATE_STREAM).events.height


def _count(sql: str) -> int:
    with duckdb.connect(str(get_settings().warehouse_path), read_only=True) as con:
        row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_a_backlog_drains_at_the_configured_rate(
    data_home: Path, defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    produce_small(LATE_STREAM)
    monkeypatch.setenv("DATA_PRODUCTS_PAYMENTS_STREAM_MAX_RATE", "50")
    sensor = defs.resolve_sensor_def(SENSOR)
    instance = dg.DagsterInstance.ephemeral()
    just_now = json.dumps({"requested_at": time.time()})
    result = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=just_now, definitions=defs)
    )
    assert not result.run_requests and "rate limit" in (result.skip_message or "")
    ten_seconds_ago = json.dumps({"requested_at": time.time() - 10})
    result = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=ten_seconds_ago, definitions=defs)
    )
    (request,) = result.run_requests
    ranges = request.run_config["ops"]["payments_stream_batch"]["config"]["ranges"]
    size = sum(r["end"] - r["start"] for r in ranges)
    # 50 records/s over the ~10 s since the last request (a little more if this test was slow).
    assert 500 <= size <= 50 * 15
