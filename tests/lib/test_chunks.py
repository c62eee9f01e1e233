"""Chunk planning and merging the checks of a chunked range run."""

from __future__ import annotations

import dagster as dg
import pytest

from data_products.lib.chunks import merge_check_results, plan_chunks

KEYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


def test_plan_chunks_respects_the_budget_and_keeps_partitions_whole() -> None:
    sizes = {"2026-01-01": 400, "2026-01-02": 500, "2026-01-03": 2000, "2026-01-04": 100}
    assert plan_chunks(KEYS, sizes, 1000) == [
        ["2026-01-01", "2026-01-02"],
        ["2026-01-03"],  # larger than the budget: a chunk of its own, never split
        ["2026-01-04"],
    ]
    assert plan_chunks(KEYS, sizes, 10_000) == [KEYS]
    assert plan_chunks(KEYS, {}, 1) == [KEYS]  # empty partitions cost nothing
    with pytest.raises(ValueError, match="positive"):
        plan_chunks(KEYS, sizes, 0)


def _result(passed: bool, failing: int, rows: int, where: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["commerce", "silver", "orders"]),
        check_name="orders__order_id__required",
        passed=passed,
        description=f"{failing} of {rows} fail ({where})",
        metadata={
            "rows_evaluated": dg.MetadataValue.int(rows),
            "failing_rows": dg.MetadataValue.int(failing),
            "failing_pct": dg.MetadataValue.float(100 * failing / rows),
            "threshold_pct": dg.MetadataValue.float(5.0),
            "partitions": dg.MetadataValue.text(where),
        },
    )


def test_a_failing_chunk_fails_the_run_and_counts_add_up() -> None:
    merged = merge_check_results(
        [
            ("2026-01-01", [_result(True, 1, 100, "commerce/2026-01-01/orders.csv line 3")]),
            ("2026-01-02", [_result(False, 40, 100, "commerce/2026-01-02/orders.csv line 9")]),
            ("2026-01-03", [_result(True, 0, 200, "ok")]),
        ],
        partitions="2026-01-01...2026-01-03 (3 partitions)",
    )
    assert len(merged) == 1
    result = merged[0]
    assert not result.passed
    assert result.description is not None
    assert result.description.startswith("[2026-01-02]")
    assert "orders.csv line 9" in result.description
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    assert meta["rows_evaluated"] == 400 and meta["failing_rows"] == 41
    assert meta["failing_pct"] == pytest.approx(10.25)
    assert meta["threshold_pct"] == 5.0  # not a count: never summed
    assert meta["chunks"] == 3 and meta["chunks_failed"] == ["2026-01-02"]
    assert meta["partitions"] == "2026-01-01...2026-01-03 (3 partitions)"


def test_single_chunk_results_pass_through_unchanged() -> None:
    only = [_result(True, 0, 10, "ok")]
    assert merge_check_results([("2026-01-01", only)], partitions="2026-01-01") == only
    assert merge_check_results([], partitions="") == []
