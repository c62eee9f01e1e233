"""The payments stream resumes by itself after a killed batch: while the dead batch's run is
STARTED (its worker was SIGKILLed and nothing has noticed yet) the sensor waits; once run
monitoring marks it failed, a dead run is not in flight, and the sensor requests the same
offsets again under a new run key; the stream then drains with every offset committed once."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.payments.reference import CONSUMER, TOPIC
from assets.payments.stream import payments_stream_batch
from data_products.cli.runs import tick_and_run
from data_products.lib.instance import MAX_RUNTIME_TAG
from data_products.lib.microbatch import RANGES_TAG, TOPIC_TAG
from data_products.lib.settings import get_settings
from resources.warehouse import WarehouseResource
from sensors.payments_stream import payments_stream
from tests.payments.helpers import produce_small

SENSOR = "payments_stream"


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def(SENSOR)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))


def test_a_killed_batch_is_requested_again_once_it_is_marked_failed(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = produce_small()
    monkeypatch.setenv("DATA_PRODUCTS_PAYMENTS_STREAM_MAX_BATCH", "1000")
    defs = dg.Definitions(
        assets=[payments_stream_batch],
        sensors=[payments_stream],
        resources={"warehouse": WarehouseResource()},
    )
    instance = dg.DagsterInstance.ephemeral()
    (request,) = _tick(defs, instance).run_requests or []
    assert request.tags[TOPIC_TAG] == TOPIC and request.tags[MAX_RUNTIME_TAG]

    # The daemon launched it and the run worker was SIGKILLed mid-batch: the run stays STARTED.
    job = defs.resolve_implicit_global_asset_job_def()
    killed = instance.create_run_for_job(
        job_def=job,
        run_config=request.run_config,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
        asset_selection=set(payments_stream_batch.keys),
        status=dg.DagsterRunStatus.STARTED,
    )
    waiting = _tick(defs, instance)
    assert not waiting.run_requests
    assert killed.run_id in (waiting.skip_message or "")

    # Run monitoring marks the dead run failed: the stream moves on by itself.
    instance.report_run_failed(killed, "run worker pid 4242 is gone (killed or crashed)")
    (again,) = _tick(defs, instance).run_requests or []
    assert again.tags[RANGES_TAG] == request.tags[RANGES_TAG]
    assert again.run_key == f"{request.run_key}#retry1"

    runs, cursor = tick_and_run(defs, instance, SENSOR)
    assert len(runs) == 1 and runs[0].success and runs[0].partitions == request.tags[RANGES_TAG]
    for _ in range(20):
        batch, cursor = tick_and_run(defs, instance, SENSOR, cursor=cursor)
        if not batch:
            break
        assert all(r.success for r in batch)

    ends = log.end_offsets()
    with duckdb.connect(str(get_settings().warehouse_path), read_only=True) as con:
        rows = con.execute(
            "SELECT partition, start_offset, end_offset FROM stream_state.committed_offsets "
            "WHERE consumer = ? AND topic = ? ORDER BY partition, start_offset",
            [CONSUMER, TOPIC],
        ).fetchall()
    for partition, end in ends.items():
        spans = [(s, e) for p, s, e in rows if p == partition]
        # Every offset committed exactly once: contiguous spans from 0 to the log's end.
        assert [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]]
        assert (spans[-1][1] if spans else 0) == end
