"""The freshness alert sensor turns real freshness state-change events into webhook posts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from sensors.freshness_alerts import freshness_alerts
from tests.conftest import Receiver

KEY = dg.AssetKey(["commerce", "gold", "daily_revenue"])


def _change(instance: dg.DagsterInstance, new: FreshnessState, previous: FreshnessState) -> None:
    instance.report_runless_asset_event(
        FreshnessStateChange(
            key=KEY, new_state=new, previous_state=previous, state_change_timestamp=time.time()
        )
    )


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    return freshness_alerts(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_posts_breach_and_recovery_once(
    data_home: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/secret-token")
    with dg.instance_for_test() as instance:
        _change(instance, FreshnessState.WARN, FreshnessState.PASS)
        _change(instance, FreshnessState.FAIL, FreshnessState.WARN)
        _change(instance, FreshnessState.PASS, FreshnessState.FAIL)
        _change(instance, FreshnessState.UNKNOWN, FreshnessState.NOT_APPLICABLE)  # not an alert

        result = _tick(instance, None)
        assert isinstance(result, dg.SensorResult)
        assert [(b["previous_state"], b["new_state"], b["kind"]) for b in receiver.bodies] == [
            ("PASS", "WARN", "breach"),
            ("WARN", "FAIL", "breach"),
            ("FAIL", "PASS", "recovery"),
        ]
        assert all(b["asset_key"] == "commerce/gold/daily_revenue" for b in receiver.bodies)
        assert receiver.paths[0] == "/hooks/secret-token"

        # The next tick starts after the cursor: nothing is sent twice.
        again = _tick(instance, result.cursor)
        assert isinstance(again, dg.SkipReason)
        assert len(receiver.bodies) == 3

    recorded = [
        json.loads(line) for line in (data_home / "alerts/freshness.jsonl").read_text().splitlines()
    ]
    assert [r["new_state"] for r in recorded] == ["WARN", "FAIL", "PASS"]


def test_receiver_down_keeps_cursor_and_retries(
    data_home: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_ALERT_WEBHOOK_URL", receiver.url)
    with dg.instance_for_test() as instance:
        _change(instance, FreshnessState.FAIL, FreshnessState.PASS)
        receiver.status = 400  # rejects without retry
        down = _tick(instance, None)
        assert isinstance(down, dg.SkipReason)
        assert receiver.bodies == []

        receiver.status = 200
        up = _tick(instance, None)  # cursor did not move, so the alert is delivered now
        assert isinstance(up, dg.SensorResult)
        assert [b["new_state"] for b in receiver.bodies] == ["FAIL"]
    # recorded locally exactly once despite two attempts
    assert len((data_home / "alerts/freshness.jsonl").read_text().splitlines()) == 1


def test_records_alerts_without_webhook(data_home: Path) -> None:
    with dg.instance_for_test() as instance:
        _change(instance, FreshnessState.WARN, FreshnessState.PASS)
        result = _tick(instance, None)
        assert isinstance(result, dg.SensorResult)
    assert "WARN" in (data_home / "alerts/freshness.jsonl").read_text()
