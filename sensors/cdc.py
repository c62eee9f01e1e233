"""CDC sensor: new WAL in the replication slot becomes one micro-batch run per LSN range.

One batch at a time: while a batch run of the slot is in flight (or failed and about to be
re-executed by Dagster's run retry) nothing is requested, so batches never overlap. Otherwise the
next range starts where the slot is: the slot only advances after every sink committed, so after
a failed or killed batch the same changes are requested again, under a new run key (the LSN
range, ``#retry<n>`` for a retry: Dagster launches a run key once), and the sinks, which stamp
the LSN they hold, apply them exactly once. A run killed by SIGKILL counts as in flight until run
monitoring marks it failed; the stream then resumes by itself. A batch that failed
``MAX_ATTEMPTS`` times from the same LSN with no new WAL since is not requested again: that is
a bad change (a value the lake cannot hold, a malformed message) for a person to look at; its
failures are alerted.
"""

from __future__ import annotations

import dagster as dg

from assets.cdc.oltp import TABLES
from assets.cdc.replication import LSN_END_TAG, LSN_START_TAG, history_key, mirror_key
from assets.cdc.runtime import build_pipeline
from data_products.lib.cdc.lsn import format_lsn
from data_products.lib.instance import MAX_RUNTIME_TAG, STREAM_BATCH_MAX_RUNTIME_SECONDS
from data_products.lib.microbatch import attempt_run_key, blocking_run
from resources.lake import LakeResource
from resources.postgres import PostgresResource

CDC_SELECTION = [key for table in TABLES for key in (mirror_key(table), history_key(table))]
SLOT_TAG = "cdc/slot"
"""On every run the sensor requests: the slot whose batch it applies (one at a time)."""
SNAPSHOT_TAG = "cdc/snapshot"
MAX_ATTEMPTS = 3


@dg.sensor(
    name="cdc_slot",
    description="Turns new WAL in the inventory replication slot into CDC micro-batch runs "
    "(run_key = LSN range), one at a time; resumes by itself after a failed or killed batch.",
    minimum_interval_seconds=30,
    asset_selection=CDC_SELECTION,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def cdc_slot(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    if not postgres.server().is_running() and postgres.managed:
        return dg.SkipReason("the PostgreSQL source is not running")
    slot = {SLOT_TAG: postgres.slot}
    in_flight = blocking_run(context.instance, slot)
    if in_flight:
        return dg.SkipReason(f"batch run {in_flight} still in flight (or being retried)")
    pipeline = build_pipeline(postgres, lake)
    limits = {MAX_RUNTIME_TAG: str(STREAM_BATCH_MAX_RUNTIME_SECONDS)}
    if not pipeline.source.slot_exists():
        snapshot = {**slot, SNAPSHOT_TAG: "true"}
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=attempt_run_key(
                        context.instance, f"snapshot:{postgres.slot}", snapshot
                    ),
                    tags={**snapshot, **limits},
                )
            ],
            cursor=context.cursor,
        )
    pending = pipeline.pending_range(max_changes=postgres.max_batch_changes)
    if pending is None:
        confirmed = pipeline.source.confirmed_lsn()
        return dg.SkipReason(f"no new WAL for slot {postgres.slot} after {format_lsn(confirmed)}")
    start, end, transactions = pending
    lsn_range = f"{format_lsn(start)}-{format_lsn(end)}"
    batch = {**slot, LSN_START_TAG: format_lsn(start), LSN_END_TAG: format_lsn(end)}
    failed = context.instance.get_run_ids(
        filters=dg.RunsFilter(tags=batch, statuses=[dg.DagsterRunStatus.FAILURE])
    )
    if len(failed) >= MAX_ATTEMPTS:
        return dg.SkipReason(
            f"CDC batch {lsn_range} failed {len(failed)} times (last run {failed[0]}): not "
            "requested again until new WAL arrives or the failure is fixed and re-executed"
        )
    context.log.info(f"CDC batch {lsn_range}: {transactions} transactions")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=attempt_run_key(context.instance, lsn_range, batch),
                tags={**batch, **limits},
            )
        ],
        cursor=format_lsn(end),
    )
