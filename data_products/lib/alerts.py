"""Freshness alerting: open-source Dagster evaluates freshness policies but sends no alerts, so
the platform records every WARN/FAIL transition (and the recovery) and posts it to a webhook.

Delivery is at-least-once: a transition is appended to ``alerts/freshness.jsonl`` once (keyed by
the event's storage id) and the sensor's cursor only moves past it after the webhook accepted it,
so a receiver that is down gets the alert on a later tick. Receivers de-duplicate on ``id``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
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


def record_alert(alert: FreshnessAlert, log_path: Path) -> bool:
    """Append the alert unless it is already recorded; True when newly written."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists():
        with log_path.open() as lines:
            if any(json.loads(line).get("id") == alert.id for line in lines if line.strip()):
                return False
    with log_path.open("a") as out:
        out.write(json.dumps(asdict(alert), sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return True


def redact(url: str) -> str:
    """The scheme and host of a webhook URL: paths and queries often carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}/…"


def post_alert(alert: FreshnessAlert, url: str, *, timeout: float = 5.0) -> None:
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
    payload = {**asdict(alert), "text": alert.summary, "source": "data-products"}
    with session:
        response = session.post(url, json=payload, timeout=timeout)
        response.raise_for_status()
