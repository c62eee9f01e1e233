"""The cdc_slot sensor resumes by itself, exactly once: a batch that failed after its sinks
committed, and a batch whose run worker was killed (its run STARTED until run monitoring marks it
failed), are both requested again from where the slot is, under a new run key, and the mirrors
and histories end equal to the source with every check passing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.cdc.replication import LSN_END_TAG, LSN_START_TAG, cdc_replication, sources
from data_products.cli.runs import SliceRun, tick_and_run
from data_products.lib.cdc.pipeline import CdcPipeline
from data_products.lib.instance import MAX_RUNTIME_TAG
from resources.lake import LakeResource
from resources.postgres import PostgresResource
from sensors.cdc import CDC_SELECTION, SLOT_TAG, cdc_slot
from tests.cdc.conftest import CdcEnv, Server

SENSOR = "cdc_slot"


def _defs(postgres: Server, env: CdcEnv) -> dg.Definitions:
    source = PostgresResource(
        password=postgres.password,
        data_dir=str(postgres.server.data_dir),
        port=postgres.server.port,
        database=env.database,
        slot=env.database,
        publication=env.database,
        managed=False,
    )
    lake = LakeResource(
        catalog_uri=f"sqlite:///{env.lake / 'catalog.db'}",
        warehouse=str(env.lake / "ice"),
        delta_root=str(env.lake / "delta"),
    )
    return dg.Definitions(
        assets=[*sources, cdc_replication],
        sensors=[cdc_slot],
        resources={"postgres": source, "lake": lake},
    )


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.SensorResult:
    return defs.resolve_sensor_def(SENSOR).evaluate_tick(
        dg.build_sensor_context(
            instance=instance, definitions=defs, sensor_name=SENSOR, resources=defs.resources
        )
    )


def _all_checks_pass(run: SliceRun) -> bool:
    return bool(run.checks) and all(c.passed for c in run.checks)


def test_failed_and_killed_batches_are_requested_again_and_applied_once(
    data_home: Path,
    postgres: Server,
    make_env: Callable[..., CdcEnv],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = make_env(3)
    defs = _defs(postgres, env)
    instance = dg.DagsterInstance.ephemeral()
    (snapshot,), _ = tick_and_run(defs, instance, SENSOR)
    assert snapshot.success and _all_checks_pass(snapshot)

    # A batch crashes after every sink committed, before the slot advanced.
    env.workload.run(200, per_transaction=5)
    real_run_batch = CdcPipeline.run_batch

    def crash(_result: object) -> None:
        raise RuntimeError("killed after the sinks committed")

    def crashing(self: CdcPipeline, **kwargs: Any) -> Any:
        return real_run_batch(self, **kwargs, after_sinks_commit=crash)

    with monkeypatch.context() as patched:
        patched.setattr(CdcPipeline, "run_batch", crashing)
        (failed,), _ = tick_and_run(defs, instance, SENSOR)
    assert not failed.success
    failed_run = instance.get_runs(filters=dg.RunsFilter(tags={SLOT_TAG: env.database}), limit=1)[0]

    # The old sensor waited here forever; now the same range is requested under a new key.
    (retry,) = _evaluate(defs, instance).run_requests or []
    assert retry.run_key == f"{failed_run.tags['dagster/run_key']}#retry1"
    assert retry.tags[LSN_START_TAG] == failed_run.tags[LSN_START_TAG]
    assert retry.tags[MAX_RUNTIME_TAG]
    (resumed,), _ = tick_and_run(defs, instance, SENSOR)
    assert resumed.success and _all_checks_pass(resumed)

    # A batch whose run worker is SIGKILLed: its run stays STARTED until run monitoring notices.
    env.workload.run(100, per_transaction=4)
    (request,) = _evaluate(defs, instance).run_requests or []
    killed = instance.create_run_for_job(
        job_def=defs.resolve_implicit_global_asset_job_def(),
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
        asset_selection=set(CDC_SELECTION),
        status=dg.DagsterRunStatus.STARTED,
    )
    waiting = _evaluate(defs, instance)
    assert not waiting.run_requests and killed.run_id in (waiting.skip_message or "")
    instance.report_run_failed(killed, "run worker pid 4242 is gone (killed or crashed)")
    (after_kill,), _ = tick_and_run(defs, instance, SENSOR)
    assert after_kill.success and _all_checks_pass(after_kill)
    assert after_kill.partitions == f"run key {request.run_key}#retry1"

    # Caught up: nothing left to request, and every check above compared the source row by row.
    drained = _evaluate(defs, instance)
    assert not drained.run_requests and "no new WAL" in (drained.skip_message or "")
    assert {c.check for c in after_kill.checks} == {"consistent_with_source", "replays_to_mirror"}
    assert request.tags[LSN_END_TAG] == instance.get_run_by_id(killed.run_id).tags[LSN_END_TAG]  # type: ignore[union-attr]
