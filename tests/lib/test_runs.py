"""The CI gate: a run fails on ERROR-severity check failures and failed steps, never on warnings,
and the JUnit report says the same thing a CI system will read."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from data_products.lib.runs import CheckOutcome, SliceRun, write_junit


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
