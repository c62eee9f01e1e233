"""Alerting, one channel for every kind of alert: open-source Dagster evaluates freshness policies
and records failures but sends no alerts, so the platform turns them into alert records.

Kinds: freshness WARN/FAIL transitions and their recovery (``FreshnessAlert``,
``sensors/freshness_alerts.py``); run failures, ERROR-severity check failures and their recovery
(``FailureAlert``, ``sensors/failure_alerts.py``).

Delivery is at-least-once, the same for every kind (``deliver``): an alert is appended to its
JSONL file under the data home's ``alerts/`` once (keyed by its ``id``) and posted to
``DATA_PRODUCTS_ALERT_WEBHOOK_URL`` when set; the sensor's cursor only moves past an alert after
the webhook accepted it, so a receiver that is down gets it on a later tick. Receivers
de-duplicate on ``id``. No alert carries a secret: the webhook URL is never logged in full
(``redact``), failure alerts name the failed steps and the error's type, never its message (an
error message may hold a URL with a token, or rows of data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import dagster as dg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ALERT_STATES = frozenset({"WARN", "FAIL"})


@dataclass(frozen=True)
class FreshnessAlert:
    id: int  # the event's storage id: unique and ordered
    asset_key: str
    new_state: str
    previous_state: str
    changed_at: str
    kind: str  # "breach" (into WARN/FAIL) or "recovery" (back to PASS)

    @property
    def summary(self) -> str:
        return (
            f"{self.asset_key} freshness {self.previous_state} → {self.new_state} "
            f"at {self.changed_at}"
        )


def alert_from_record(record: dg.EventLogRecord) -> FreshnessAlert | None:
    """An alert for a transition into WARN/FAIL or out of it; None for other transitions."""
    event = record.event_log_entry.dagster_event
    if event is None:  # a plain log line, not a Dagster event: no transition
        return None
    change = event.asset_freshness_state_change_data
    new, previous = change.new_state.value, change.previous_state.value
    if new in ALERT_STATES:
        kind = "breach"
    elif new == "PASS" and previous in ALERT_STATES:
        kind = "recovery"
    else:
        return None
    changed = datetime.fromtimestamp(change.state_change_timestamp, tz=UTC)
    return FreshnessAlert(
        id=record.storage_id,
        asset_key=change.key.to_user_string(),
        new_state=new,
        previous_state=previous,
        changed_at=changed.isoformat(),
        kind=kind,
    )


class Alert(Protocol):
    """What the channel needs of an alert: a dataclass with a unique ``id`` and a summary."""

    @property
    def id(self) -> int | str: ...

    @property
    def summary(self) -> str: ...


def _fields(alert: Alert) -> dict[str, Any]:
    if not is_dataclass(alert) or isinstance(alert, type):
        raise TypeError(f"an alert must be a dataclass instance, not {type(alert).__name__}")
    return asdict(alert)


def record_alert(alert: Alert, log_path: Path) -> bool:
    """Append the alert unless it is already recorded; True when newly written."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists():
        with log_path.open() as lines:
            if any(json.loads(line).get("id") == alert.id for line in lines if line.strip()):
                return False
    with log_path.open("a") as out:
        out.write(json.dumps(_fields(alert), sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return True


def redact(url: str) -> str:
    """The scheme and host of a webhook URL: paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"


def post_alert(alert: Alert, url: str, *, timeout: float = 5.0) -> None:
    """POST the alert as JSON, retrying transient failures (connection errors, 5xx, 429)."""
    session = requests.Session()
    retry = Retry(
        total=3,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"POST"}),
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    payload = {**_fields(alert), "text": alert.summary, "source": "data-products"}
    with session:
        response = session.post(url, json=payload, timeout=timeout)
        response.raise_for_status()


def deliver(
    alerts: Iterable[Alert],
    log_path: Path,
    url: str | None,
    warn: Callable[[str], None],
) -> int | None:
    """Record and post ``alerts`` in order; the number posted, or ``None`` when the webhook
    refused one (the caller keeps its cursor before it: every alert from there is sent again on
    the next tick, and recorded once)."""
    sent = 0
    for alert in alerts:
        if record_alert(alert, log_path):
            warn(f"alert: {alert.summary}")
        if url:
            try:
                post_alert(alert, url)
            except Exception as exc:  # delivery failed: retry from here next tick
                warn(
                    f"webhook {redact(url)} rejected alert {alert.id}: {type(exc).__name__}; "
                    "will retry"
                )
                return None
            sent += 1
    return sent


# ------------------------------------------------------------------------------------------------
# Run failures, ERROR check failures and their recovery

FAILURE, RECOVERY = "failure", "recovery"
"""``kind`` of a failure alert (freshness alerts say ``breach`` and ``recovery``)."""
RUN, CHECK = "run", "check"
"""``about``: a run, or a check of ERROR severity."""
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FAILURE_REASON_TAG = "dagster/failure_reason"
"""Dagster's reason for a failed run (``STEP_FAILURE``, ``START_TIMEOUT``...), when it gives one."""
IMPLICIT_JOB_PREFIX = "__"
"""Dagster's implicit jobs (``__ASSET_JOB``, ``__ephemeral_asset_job__``): their runs are told
apart by their asset selection."""


@dataclass(frozen=True)
class FailureAlert:
    """A run that failed, a check of ERROR severity that failed, or the recovery of either.

    ``subject`` is what recovers: for a run, its job (``<job>`` for a named job,
    ``<job>[<asset keys>]`` for Dagster's implicit asset jobs, whose runs differ by their
    selection);
    for a check, ``<asset key>:<check>`` (``[<partition>]`` for a partition's check). A recovery
    names the failure it closes (``recovers``)."""

    id: str
    kind: str
    about: str
    subject: str
    run_id: str
    job_name: str
    occurred_at: str
    partitions: str | None = None
    failed_steps: tuple[str, ...] = ()
    error_types: tuple[str, ...] = ()
    failure_reason: str | None = None
    recovers: str | None = None

    @property
    def summary(self) -> str:
        what = {
            (RUN, FAILURE): "run failed",
            (RUN, RECOVERY): "run succeeded again",
            (CHECK, FAILURE): "ERROR check failed",
            (CHECK, RECOVERY): "check passes again",
        }[(self.about, self.kind)]
        steps = f" (steps {', '.join(self.failed_steps)})" if self.failed_steps else ""
        days = f" [{self.partitions}]" if self.partitions else ""
        return f"{self.subject}: {what}{days} in run {self.run_id}{steps} at {self.occurred_at}"


def run_subject(run: dg.DagsterRun) -> str:
    """What a later run must be to recover this one (see ``FailureAlert``)."""
    if not run.job_name.startswith(IMPLICIT_JOB_PREFIX) or not run.asset_selection:
        return run.job_name
    keys = sorted(key.to_user_string() for key in run.asset_selection)
    return f"{run.job_name}[{','.join(keys)}]"


def run_partitions(run: dg.DagsterRun) -> str | None:
    """The partition (``2026-01-05``) or range (``2026-01-01...2026-01-05``) a run covered."""
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return run.tags.get(PARTITION_TAG)


def check_subject(evaluation: dg.AssetCheckEvaluation) -> str:
    subject = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    return f"{subject}[{evaluation.partition}]" if evaluation.partition else subject


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


@dataclass
class OpenFailures:
    """Failures alerted and not yet recovered, by subject (the sensor's cursor keeps them);
    ``groups`` maps a failed run's root run to its subject, so a re-execution of the failed run
    (Dagster's run retry, a re-execution from the UI) that succeeds recovers it too."""

    runs: dict[str, str]
    checks: dict[str, str]
    groups: dict[str, str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenFailures:
        return cls(
            runs=dict(data.get("runs", {})),
            checks=dict(data.get("checks", {})),
            groups=dict(data.get("groups", {})),
        )

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "checks": self.checks, "groups": self.groups}


def failure_alerts_for_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    event: dg.EventLogRecord,
    state: OpenFailures,
) -> list[FailureAlert]:
    """The alerts one finished run (its RUN_FAILURE or RUN_SUCCESS event) raises, updating
    ``state``: its failure or the recovery of its subject, then its checks' ERROR failures and
    the recoveries of checks that failed before."""
    alerts: list[FailureAlert] = []
    when = _timestamp(event.event_log_entry.timestamp)
    subject = run_subject(run)
    partitions = run_partitions(run)
    root = run.root_run_id or run.run_id
    records = instance.get_records_for_run(
        run.run_id,
        of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION},
    ).records
    finished = event.event_log_entry.dagster_event_type
    if finished == dg.DagsterEventType.RUN_FAILURE:
        failed_steps: list[str] = []
        error_types: list[str] = []
        for record in records:
            dagster_event = record.event_log_entry.dagster_event
            if dagster_event is None or not dagster_event.is_step_failure:
                continue
            failed_steps.append(dagster_event.step_key or "?")
            error = dagster_event.step_failure_data.error
            while (
                error is not None
                and error.cause is not None
                and error.cls_name
                in {
                    "RetryRequested",
                    "DagsterExecutionStepExecutionError",
                }
            ):
                error = error.cause
            if error is not None and error.cls_name:
                error_types.append(error.cls_name)
        alert_id = f"run_failure:{run.run_id}"
        alerts.append(
            FailureAlert(
                id=alert_id,
                kind=FAILURE,
                about=RUN,
                subject=subject,
                run_id=run.run_id,
                job_name=run.job_name,
                occurred_at=when,
                partitions=partitions,
                failed_steps=tuple(sorted(set(failed_steps))),
                error_types=tuple(sorted(set(error_types))),
                failure_reason=run.tags.get(FAILURE_REASON_TAG),
            )
        )
        state.runs[subject] = alert_id
        state.groups[root] = subject
    elif finished == dg.DagsterEventType.RUN_SUCCESS:
        recovered = {subject, state.groups.get(root, subject)}
        for closed in sorted(recovered):
            failure_id = state.runs.pop(closed, None)
            if failure_id is None:
                continue
            alerts.append(
                FailureAlert(
                    id=f"run_recovery:{run.run_id}:{closed}",
                    kind=RECOVERY,
                    about=RUN,
                    subject=closed,
                    run_id=run.run_id,
                    job_name=run.job_name,
                    occurred_at=when,
                    partitions=partitions,
                    recovers=failure_id,
                )
            )
        for group, group_subject in list(state.groups.items()):
            if group_subject in recovered:
                del state.groups[group]
    for record in records:
        dagster_event = record.event_log_entry.dagster_event
        if (
            dagster_event is None
            or dagster_event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            continue
        evaluation = dagster_event.asset_check_evaluation_data
        check = check_subject(evaluation)
        when = _timestamp(record.event_log_entry.timestamp)
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            alert_id = f"check_failure:{run.run_id}:{record.storage_id}"
            alerts.append(
                FailureAlert(
                    id=alert_id,
                    kind=FAILURE,
                    about=CHECK,
                    subject=check,
                    run_id=run.run_id,
                    job_name=run.job_name,
                    occurred_at=when,
                    partitions=evaluation.partition or partitions,
                )
            )
            state.checks[check] = alert_id
        elif evaluation.passed and check in state.checks:
            alerts.append(
                FailureAlert(
                    id=f"check_recovery:{run.run_id}:{record.storage_id}",
                    kind=RECOVERY,
                    about=CHECK,
                    subject=check,
                    run_id=run.run_id,
                    job_name=run.job_name,
                    occurred_at=when,
                    partitions=evaluation.partition or partitions,
                    recovers=state.checks.pop(check),
                )
            )
    return alerts


def finished_run_events(
    instance: dg.DagsterInstance, after: int | None, limit: int
) -> Sequence[dg.EventLogRecord]:
    """RUN_FAILURE and RUN_SUCCESS events after storage id ``after``, oldest first, at most
    ``limit``, with no gap: when one kind fills its page, only the events up to its last are
    returned (the other kind's later ones come on the next call)."""

    def page(records_filter: dg.RunStatusChangeRecordsFilter) -> Sequence[dg.EventLogRecord]:
        return instance.fetch_run_status_changes(
            records_filter, limit=limit, ascending=True
        ).records

    pages = [
        page(
            dg.RunStatusChangeRecordsFilter(
                event_type=dg.DagsterEventType.RUN_FAILURE, after_storage_id=after
            )
        ),
        page(
            dg.RunStatusChangeRecordsFilter(
                event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=after
            )
        ),
    ]
    full = [page[-1].storage_id for page in pages if len(page) >= limit]
    upto = min(full) if full else None
    merged = sorted((r for page in pages for r in page), key=lambda r: r.storage_id)
    return [r for r in merged if upto is None or r.storage_id <= upto]
