"""CDC sensor: new WAL in the replication slot becomes one micro-batch run per LSN range.

The run key is the LSN range, so a range is launched once. The cursor is the end of the last
range requested; while the slot has not been advanced to it (the run is still going, or failed)
no new range is requested, so batches never overlap and a failed batch blocks the stream until
it is re-run (its run key is taken: re-execute the failed run) -- nothing is skipped.
"""

from __future__ import annotations

import dagster as dg

from assets.cdc.oltp import TABLES
from assets.cdc.replication import LSN_END_TAG, LSN_START_TAG, history_key, mirror_key
from assets.cdc.runtime import build_pipeline
from data_products.lib.cdc.lsn import format_lsn, parse_lsn
from resources.lake import LakeResource
from resources.postgres import PostgresResource

CDC_SELECTION = [key for table in TABLES for key in (mirror_key(table), history_key(table))]


@dg.sensor(
    name="cdc_slot",
    description="Turns new WAL in the inventory replication slot into CDC micro-batch runs "
    "(run_key = LSN range); waits for the previous batch's slot advance before the next.",
    minimum_interval_seconds=30,
    asset_selection=CDC_SELECTION,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def cdc_slot(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, lake: LakeResource
) -> dg.SensorResult | dg.SkipReason:
    if not postgres.server().is_running() and postgres.managed:
        return dg.SkipReason("the PostgreSQL source is not running")
    pipeline = build_pipeline(postgres, lake)
    if not pipeline.source.slot_exists():
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"snapshot:{postgres.slot}")],
            cursor=context.cursor,
        )
    confirmed = pipeline.source.confirmed_lsn()
    if context.cursor and confirmed < parse_lsn(context.cursor):
        return dg.SkipReason(
            f"batch up to {context.cursor} not applied yet (slot at {format_lsn(confirmed)})"
        )
    pending = pipeline.pending_range(max_changes=postgres.max_batch_changes)
    if pending is None:
        return dg.SkipReason(f"no new WAL for slot {postgres.slot} after {format_lsn(confirmed)}")
    start, end, transactions = pending
    lsn_range = f"{format_lsn(start)}-{format_lsn(end)}"
    context.log.info(f"CDC batch {lsn_range}: {transactions} transactions")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=lsn_range,
                tags={LSN_START_TAG: format_lsn(start), LSN_END_TAG: format_lsn(end)},
            )
        ],
        cursor=format_lsn(end),
    )
