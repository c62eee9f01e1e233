"""Freshness SLA alerting: turns the freshness daemon's state changes into alerts (see
``data_products.lib.alerts`` for the delivery guarantees)."""

from __future__ import annotations

import dagster as dg

from data_products.lib.alerts import alert_from_record, deliver
from data_products.lib.settings import get_settings

BATCH = 100


@dg.sensor(
    name="freshness_alerts",
    description=(
        "Records every freshness WARN/FAIL transition (and recovery) under the data home's "
        "alerts/ and posts it to DATA_PRODUCTS_ALERT_WEBHOOK_URL when set."
    ),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def freshness_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason | dg.SensorResult:
    settings = get_settings()
    after = int(context.cursor) if context.cursor else None
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after
        ),
        limit=BATCH,
        ascending=True,
    )
    if not records:
        return dg.SkipReason("no freshness state changes")
    log_path = settings.alerts_dir / "freshness.jsonl"
    cursor, sent = after, 0
    for record in records:
        alert = alert_from_record(record)
        if alert is not None:
            delivered = deliver([alert], log_path, settings.alert_webhook_url, context.log.warning)
            if delivered is None:  # the webhook refused it: from here again next tick
                break
            sent += delivered
        cursor = record.storage_id
    if cursor == after:
        return dg.SkipReason("webhook unavailable; will retry")
    return dg.SensorResult(
        cursor=str(cursor), skip_reason=None if sent else "no alerting transitions"
    )
