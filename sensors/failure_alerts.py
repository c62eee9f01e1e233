"""Failure alerting: every failed run and every failed check of ERROR severity becomes an alert,
and so does its recovery (the next successful run of the same job and selection, or of the
failed run's re-execution; the same check passing again), through the channel freshness alerts
use (see ``data_products.lib.alerts`` for the format and the delivery guarantees).

The cursor holds the storage id of the last finished-run event handled and the failures still
open (what a later success recovers); it moves past a run only once all of that run's alerts
were delivered, so an alert is delivered at least once and a receiver de-duplicates on ``id``.
"""

from __future__ import annotations

import copy
import json

import dagster as dg

from data_products.lib.alerts import (
    OpenFailures,
    deliver,
    failure_alerts_for_run,
    finished_run_events,
)
from data_products.lib.settings import get_settings

BATCH = 100
ALERTS_FILE = "failures.jsonl"


@dg.sensor(
    name="failure_alerts",
    description=(
        "Records every failed run and failed ERROR-severity check (and its recovery) under the "
        "data home's alerts/ and posts it to DATA_PRODUCTS_ALERT_WEBHOOK_URL when set."
    ),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def failure_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason | dg.SensorResult:
    settings = get_settings()
    saved = json.loads(context.cursor) if context.cursor else {}
    after: int | None = saved.get("after")
    state = OpenFailures.from_json(saved.get("open", {}))
    events = finished_run_events(context.instance, after, BATCH)
    if not events:
        return dg.SkipReason("no finished runs")
    log_path = settings.alerts_dir / ALERTS_FILE
    handled, alerted = after, 0
    for event in events:
        run = context.instance.get_run_by_id(event.run_id)
        if run is not None:
            trial = copy.deepcopy(state)
            alerts = failure_alerts_for_run(context.instance, run, event, trial)
            if deliver(alerts, log_path, settings.alert_webhook_url, context.log.warning) is None:
                break  # the webhook refused one: this run's alerts again next tick
            state, alerted = trial, alerted + len(alerts)
        handled = event.storage_id
    if handled == after:
        return dg.SkipReason("webhook unavailable; will retry")
    return dg.SensorResult(
        cursor=json.dumps({"after": handled, "open": state.to_json()}),
        skip_reason=None if alerted else "no failures or recoveries",
    )
