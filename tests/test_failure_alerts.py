"""The failure alert sensor: a real failing run (a step error and an ERROR check failing) in the
project's instance reaches the alert channel (JSONL under the data home and a real local HTTP
receiver), then its recovery when the next run of the same selection succeeds; no secret from
the error's message ever leaves the run."""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from data_products.lib.instance import ensure_dagster_home
from sensors.failure_alerts import ALERTS_FILE, failure_alerts
from tests.conftest import Receiver

ORDERS = dg.AssetKey(["commerce", "silver", "orders"])
REVENUE = dg.AssetKey(["commerce", "gold", "daily_revenue"])
SECRET = "s3cr3t-t0ken"


def _assets(broken: dict[str, bool]) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=ORDERS,
        check_specs=[
            dg.AssetCheckSpec("rows_reconcile", asset=ORDERS),
            dg.AssetCheckSpec("late_rows", asset=ORDERS),
        ],
    )
    def orders() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="rows_reconcile",
            passed=not broken["check"],
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"sample": f"card 4111-1111 {SECRET}"},
        )
        yield dg.AssetCheckResult(  # a warning: recorded by Dagster, never alerted
            check_name="late_rows", passed=False, severity=dg.AssetCheckSeverity.WARN
        )

    @dg.asset(key=REVENUE, deps=[ORDERS])
    def daily_revenue() -> None:
        if broken["run"]:
            raise RuntimeError(f"POST https://hooks.example/{SECRET} answered 403")

    return [orders, daily_revenue]


@pytest.fixture
def instance(data_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(ensure_dagster_home())) as instance:
        yield instance


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    return failure_alerts(dg.build_sensor_context(instance=instance, cursor=cursor))


def _recorded(data_home: Path) -> list[dict[str, object]]:
    path = data_home / "alerts" / ALERTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_failing_run_and_check_alert_then_recover(
    data_home: Path,
    instance: dg.DagsterInstance,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/{SECRET}")
    broken = {"run": True, "check": True}
    assets = _assets(broken)

    failed = dg.materialize(assets, instance=instance, raise_on_error=False)
    assert not failed.success
    first = _tick(instance, None)
    assert isinstance(first, dg.SensorResult) and first.cursor
    kinds = [(b["about"], b["kind"], b["subject"]) for b in receiver.bodies]
    selection = "__ephemeral_asset_job__"  # materialize: a job of exactly these assets
    assert kinds == [
        ("run", "failure", selection),
        ("check", "failure", "commerce/silver/orders:rows_reconcile"),
    ]
    run_failure = receiver.bodies[0]
    assert run_failure["run_id"] == failed.run_id
    assert run_failure["failed_steps"] == ["commerce__gold__daily_revenue"]
    assert run_failure["error_types"] == ["RuntimeError"]
    assert receiver.paths == [f"/hooks/{SECRET}"] * 2

    # Nothing new: nothing sent again.
    assert isinstance(_tick(instance, first.cursor), dg.SkipReason)
    assert len(receiver.bodies) == 2

    broken.update(run=False, check=False)
    fixed = dg.materialize(assets, instance=instance)
    second = _tick(instance, first.cursor)
    assert isinstance(second, dg.SensorResult)
    recoveries = receiver.bodies[2:]
    assert [(b["about"], b["kind"], b["subject"], b["recovers"]) for b in recoveries] == [
        ("run", "recovery", selection, f"run_failure:{failed.run_id}"),
        ("check", "recovery", "commerce/silver/orders:rows_reconcile", receiver.bodies[1]["id"]),
    ]
    assert all(b["run_id"] == fixed.run_id for b in recoveries)

    # A later success of an already recovered selection is no news.
    dg.materialize(assets, instance=instance)
    third = _tick(instance, second.cursor)
    assert isinstance(third, dg.SensorResult) and third.skip_reason
    assert len(receiver.bodies) == 4

    recorded = _recorded(data_home)
    assert [(r["about"], r["kind"]) for r in recorded] == [
        ("run", "failure"),
        ("check", "failure"),
        ("run", "recovery"),
        ("check", "recovery"),
    ]
    assert len({r["id"] for r in recorded}) == 4
    everything = (data_home / "alerts" / ALERTS_FILE).read_text() + json.dumps(receiver.bodies)
    assert SECRET not in everything and "4111" not in everything


def test_a_receiver_down_gets_the_alert_later_and_the_file_holds_it_once(
    data_home: Path,
    instance: dg.DagsterInstance,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_ALERT_WEBHOOK_URL", receiver.url)
    assets = _assets({"run": True, "check": False})
    assert not dg.materialize(assets, instance=instance, raise_on_error=False).success

    receiver.status = 400  # rejected without a retry
    down = _tick(instance, None)
    assert isinstance(down, dg.SkipReason) and receiver.bodies == []
    receiver.status = 200
    up = _tick(instance, None)  # the cursor did not move: delivered now
    assert isinstance(up, dg.SensorResult)
    assert [(b["about"], b["kind"]) for b in receiver.bodies] == [("run", "failure")]
    assert [r["id"] for r in _recorded(data_home)] == [receiver.bodies[0]["id"]]
