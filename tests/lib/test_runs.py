"""The CI gate: a run fails on ERROR-severity check failures and failed steps, never on warnings,
and the JUnit report says the same thing a CI system will read; a slice runs its unpartitioned
assets first, once, and its range as one run."""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import dagster as dg

from data_products.cli.junit import write_junit
from data_products.cli.runs import CheckOutcome, SliceRun, materialize_slice, tick_and_run
from data_products.lib.partitions import daily


def _check(name: str, *, passed: bool, severity: str = "ERROR") -> CheckOutcome:
    return CheckOutcome(
        asset="commerce/silver/orders",
        check=name,
        passed=passed,
        severity=severity,
        blocking=severity == "ERROR",
        description=f"{name}: commerce/2026-01-01/orders.csv line 7",
        metadata={"failing_rows": "3"},
    )


def test_gate_counts_error_failures_only() -> None:
    run = SliceRun(run_id="r1", success=True, partitions="2026-01-01...2026-01-02")
    run.checks = [
        _check("ok", passed=True),
        _check("warn", passed=False, severity="WARN"),
        _check("broken", passed=False),
    ]
    assert [c.check for c in run.gate_failures] == ["broken"]


def test_junit_report(tmp_path: Path) -> None:
    run = SliceRun(run_id="r1", success=False, partitions="2026-01-01...2026-01-02")
    run.checks = [
        _check("ok", passed=True),
        _check("warn", passed=False, severity="WARN"),
        _check("broken", passed=False),
    ]
    run.failed_steps = ["commerce__gold__dbt"]
    run.skipped_assets = ["commerce/gold/daily_revenue"]
    report = write_junit([run], tmp_path / "reports" / "checks.xml")

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "5" and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    broken = cases["broken"].find("failure")
    assert broken is not None and "orders.csv line 7" in (broken.get("message") or "")
    assert "failing_rows: 3" in (broken.text or "")
    assert cases["warn"].find("skipped") is not None  # a warning is reported, not a failure
    assert cases["ok"].find("failure") is None
    assert cases["commerce__gold__dbt"].find("failure") is not None
    assert cases["commerce/gold/daily_revenue"].find("skipped") is not None


DAYS = daily("2024-01-01", "2024-01-06")  # the platform's daily partitions, as domains use them
SINGLE_RUN = dg.BackfillPolicy.single_run()


def _slice_defs(*, broken_reference: bool) -> dg.Definitions:
    """A reference snapshot and a daily table that reads it. The names matter: Dagster 1.13
    stores a run's partition subset from the partitions of the last asset of the plan
    (``RunDomain.create_run``), and then plans unpartitioned assets once per partition too, as
    for aviation's snapshots ahead of its daily assets."""

    @dg.asset(
        backfill_policy=SINGLE_RUN,
        check_specs=[dg.AssetCheckSpec("complete", asset="airports", blocking=True)],
    )
    def airports() -> Iterator[Any]:
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(passed=not broken_reference)

    @dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN, deps=[airports])
    def flights(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    @dg.asset(deps=[flights])
    def model(context: dg.AssetExecutionContext) -> None:
        """Unpartitioned but fed by the range: it must run after it, not with the snapshots."""
        flights_days = context.instance.get_materialized_partitions(dg.AssetKey("flights"))
        if not flights_days:
            raise RuntimeError("flights has no partitions yet")

    return dg.Definitions(assets=[airports, flights, model])


def _planned_partitions(instance: dg.DagsterInstance, run_id: str, key: str) -> list[str | None]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    return [
        r.event_log_entry.dagster_event.asset_materialization_planned_data.partition
        for r in records
        if r.event_log_entry.dagster_event.asset_key == dg.AssetKey(key)
    ]


def test_unpartitioned_assets_run_first_and_once_then_the_range_as_one_run() -> None:
    with dg.instance_for_test() as instance:
        run = materialize_slice(
            _slice_defs(broken_reference=False),
            dg.AssetSelection.all(),
            start="2024-01-01",
            end="2024-01-05",
            instance=instance,
        )
        assert run.success and run.skipped_assets == []
        # one event per day; the model, downstream of the range, runs in the range run
        assert run.materialized == ["airports"] + ["flights"] * 5 + ["model"]
        assert len(run.run_ids) == 2 and run.run_id == run.run_ids[-1]
        assert [c.check for c in run.checks] == ["complete"]
        first, ranged = run.run_ids
        # one planned event for the snapshot, not one per day of the range
        assert _planned_partitions(instance, first, "airports") == [None]
        assert len(_planned_partitions(instance, ranged, "flights")) == 5
        assert instance.get_materialized_partitions(dg.AssetKey("flights")) == set(
            DAYS.get_partition_keys()
        )

        together = materialize_slice(
            _slice_defs(broken_reference=False),
            dg.AssetSelection.assets("airports", "flights"),
            start="2024-01-01",
            end="2024-01-05",
            instance=instance,
            unpartitioned_first=False,
        )
        assert together.success and len(together.run_ids) == 1
        # what the split avoids: Dagster plans the snapshot once per day of a range run
        assert len(_planned_partitions(instance, together.run_id, "airports")) == 5


def test_a_blocked_reference_run_does_not_start_the_range() -> None:
    with dg.instance_for_test() as instance:
        run = materialize_slice(
            _slice_defs(broken_reference=True),
            dg.AssetSelection.all(),
            start="2024-01-01",
            end="2024-01-05",
            instance=instance,
        )
        assert len(run.run_ids) == 1
        assert run.skipped_assets == ["flights", "model"]
        assert [c.check for c in run.gate_failures] == ["complete"]
        assert instance.get_materialized_partitions(dg.AssetKey("flights")) == set()


class _Source(dg.ConfigurableResource):
    """A resource a sensor reads, like cdc_slot reads the replication slot."""

    position: str


@dg.asset(key=["demo", "bronze", "ticked"])
def _ticked() -> None:
    return None


@dg.sensor(asset_selection=[dg.AssetKey(["demo", "bronze", "ticked"])])
def _needs_a_resource(context: dg.SensorEvaluationContext, source: _Source) -> dg.SensorResult:
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"at-{source.position}")], cursor=source.position
    )


def test_a_tick_gives_the_sensor_the_code_locations_resources(data_home: Path) -> None:
    defs = dg.Definitions(
        assets=[_ticked],
        sensors=[_needs_a_resource],
        resources={"source": _Source(position="42")},
    )
    with dg.instance_for_test() as instance:
        runs, cursor = tick_and_run(defs, instance, "_needs_a_resource")
    assert cursor == "42"
    assert [run.success for run in runs] == [True]
    assert runs[0].materialized == ["demo/bronze/ticked"]
