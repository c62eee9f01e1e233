"""The commerce benchmark at tiny scale: the platform, the DuckDB SQL and the pandas versions of
bronze → silver → gold agree on the correctness guard (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.commerce import guard
from bench.commerce.runner import run_benchmark


@pytest.mark.slow
def test_the_three_implementations_agree_on_the_correctness_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_home = tmp_path / "user-home"
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(user_home))
    outcome = run_benchmark(home=tmp_path / "bench", rows_per_day=300, days=2, quiet=True)

    assert outcome.failures == []
    assert set(outcome.runs) == {"platform", "duckdb", "pandas"}
    required = {c.metric: c for c in outcome.comparisons if c.required}
    assert [m for m, c in required.items() if not c.agree] == []
    # The guard compared real figures, and they are the generator's ground truth too.
    assert required["silver published order_lines"].values["platform"] > 0
    assert required["silver quarantined order_lines"].values["pandas"] > 0
    assert sum(m.endswith("revenue_usd") for m in required) == 2  # one per day
    assert all(c.truth_agrees for c in required.values() if c.truth_agrees is not None)
    # Each implementation ran its checks, and the platform's include the dbt tests.
    for run in outcome.runs.values():
        assert run.result["checks"]["evaluated"] > 100
        assert run.result["checks"]["gate_failures"] == []
    assert outcome.runs["platform"].result["profile"]["dbt"]["data_tests"] > 0
    report = json.loads(outcome.report_path.read_text())
    assert report["guard"]["passed"] is True
    assert set(report["implementations"]) == {"platform", "duckdb", "pandas"}
    assert not user_home.exists(), "the benchmark must not write the user's data home"


def _outputs(revenue: float, published: int) -> guard.KeyOutputs:
    return guard.KeyOutputs(
        required={
            "silver published orders": published,
            "daily_revenue 2026-01-01 revenue_usd": revenue,
        }
    )


def test_the_guard_tolerates_a_cent_and_nothing_more() -> None:
    within = guard.compare({"a": _outputs(100.00, 5), "b": _outputs(100.01, 5)}, None)
    assert guard.passed(within)
    off = guard.compare({"a": _outputs(100.00, 5), "b": _outputs(100.02, 5)}, None)
    assert not guard.passed(off)
    assert [c.metric for c in off if not c.agree] == ["daily_revenue 2026-01-01 revenue_usd"]


def test_the_guard_fails_on_a_count_or_a_missing_implementation() -> None:
    counts = guard.compare({"a": _outputs(1.0, 5), "b": _outputs(1.0, 6)}, None)
    assert [c.metric for c in counts if not c.agree] == ["silver published orders"]
    missing = guard.compare({"a": _outputs(1.0, 5), "b": None}, None)
    assert not guard.passed(missing)
    rendered = guard.render(missing, ["a", "b"])
    assert "✗ silver published orders" in rendered
