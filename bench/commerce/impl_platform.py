"""Implementation 1: the project's own assets, as production runs them.

The whole ``commerce`` group over the range is one single-run backfill through
``data_products.cli.runs.materialize_slice`` on a persistent Dagster instance under this run's
data home, with file lineage on. The parent process has pointed ``DATA_PRODUCTS_HOME`` at
``runs/platform`` (whose ``landing`` links to the shared drops) before starting this process.

Timed: importing the code location, loading the definitions and the run. After the clock stops,
the profile is read from what the run recorded: step durations from the instance, the silver
``timings`` metadata (read/build/split/write/checks), and dbt model and test durations from the
events dagster-dbt logged.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.commerce.clock import Progress
from bench.commerce.layout import BenchLayout, BenchRange


def run(layout: BenchLayout, bench_range: BenchRange, progress: Progress) -> dict[str, Any]:
    """Materialise the range and report timings, check outcomes and the platform's profile."""
    started = time.perf_counter()
    import dagster as dg

    from data_products.cli.runs import materialize_slice
    from data_products.lib.instance import ensure_dagster_home
    from data_products.lib.settings import get_settings

    settings = get_settings()
    expected_home = layout.run_dir("platform").resolve()
    if settings.home != expected_home:
        raise RuntimeError(
            f"DATA_PRODUCTS_HOME is {settings.home}, expected {expected_home}: the platform "
            "run must never write the user's data home"
        )
    ensure_dagster_home(settings)
    from data_products.definitions import defs  # after DAGSTER_HOME is set

    instance = dg.DagsterInstance.get()
    loaded = time.perf_counter()
    keys = bench_range.keys
    progress(
        f"definitions loaded in {loaded - started:.1f} s; materialising group commerce "
        f"{keys[0]}...{keys[-1]} as one run"
    )
    try:
        slice_run = materialize_slice(
            defs,
            dg.AssetSelection.groups("commerce"),
            start=keys[0],
            end=keys[-1],
            instance=instance,
            log_level="WARNING",
        )
    finally:
        finished = time.perf_counter()
    progress(f"run {slice_run.run_id} {'succeeded' if slice_run.success else 'FAILED'}")

    # ---- not timed: read the profile the run recorded
    steps = _step_durations(instance, slice_run.run_id)
    silver = _silver_timings(instance, slice_run.run_id)
    # The platform keeps dbt's target folder per domain under the data home (partial parsing),
    # so the build's run_results.json (exact start and end of every node) is there after the run.
    run_results = settings.home / "dbt" / "target" / "commerce" / "run_results.json"
    dbt = dbt_run_results_profile(run_results if run_results.exists() else None) or dbt_profile(
        instance, slice_run.run_id
    )
    _split_dbt_step(dbt, instance, slice_run.run_id)
    silver_checks_s = sum(float(t.get("checks_s", 0.0)) for t in silver.values())
    # Exact from run_results.json: the wall time during which a dbt test ran. Without it, the
    # sum of the tests' durations: an upper bound (two dbt threads run tests side by side).
    dbt_checks_s = dbt.get("test_wall_s") if "run_results" in dbt else dbt.get("test_sum_s", 0.0)
    failed_checks = [
        f"{c.asset}::{c.check} ({c.severity})" for c in slice_run.checks if not c.passed
    ]
    notes = []
    if not dbt:
        notes.append("no dbt node timings in the run's events: dbt test time unknown")
    instance.dispose()
    return {
        "success": slice_run.success and not slice_run.gate_failures,
        "setup_s": loaded - started,
        "work_s": finished - started,
        "phases": {"load definitions": loaded - started, "run": finished - loaded},
        "checks_s": silver_checks_s + dbt_checks_s,
        "checks_breakdown": {
            "silver contract checks (timings.checks_s)": silver_checks_s,
            (
                "dbt tests (wall time while one ran)"
                if "run_results" in dbt
                else "dbt data tests (sum of durations)"
            ): dbt_checks_s,
        },
        "checks": {
            "evaluated": len(slice_run.checks),
            "failed": failed_checks,
            "gate_failures": [f"{c.asset}::{c.check}" for c in slice_run.gate_failures],
        },
        "failed_steps": slice_run.failed_steps,
        "skipped_assets": slice_run.skipped_assets,
        "profile": {"steps": steps, "silver_timings": silver, "dbt": dbt},
        "lineage_events": _count_lines(layout.run_dir("platform") / "lineage"),
        "notes": notes,
    }


def _step_durations(instance: Any, run_id: str) -> dict[str, float]:
    stats = instance.get_run_step_stats(run_id)
    return {
        s.step_key: round(s.end_time - s.start_time, 3)
        for s in stats
        if s.start_time is not None and s.end_time is not None
    }


def _split_dbt_step(dbt: dict[str, Any], instance: Any, run_id: str) -> None:
    """Before/after the first/last dbt node within the gold step: dbt's start-up and project
    parsing before, dagster-dbt's event and metadata handling after."""
    first, last = dbt.get("first_node_started"), dbt.get("last_node_completed")
    if first is None or last is None:
        return
    for stats in instance.get_run_step_stats(run_id):
        if "dbt" in stats.step_key and stats.start_time and stats.end_time:
            dbt["before_first_node_s"] = round(first - stats.start_time, 3)
            dbt["nodes_running_s"] = round(last - first, 3)
            dbt["after_last_node_s"] = round(stats.end_time - last, 3)


def _silver_timings(instance: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """``timings`` metadata of every materialisation that reported it (the silver assets), with
    the step that produced it (one step may materialise several assets)."""
    import dagster as dg

    found: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        materialization = event.event_specific_data.materialization
        timings = materialization.metadata.get("timings")
        if timings is not None:
            value = getattr(timings, "data", None) or getattr(timings, "value", None) or {}
            found[materialization.asset_key.to_user_string()] = {
                "step": event.step_key,
                **{k: float(v) for k, v in dict(value).items()},
            }
    return found


def dbt_run_results_profile(path: Path | None) -> dict[str, Any]:
    """Model and test time from ``run_results.json``: ``*_wall_s`` is the union of the nodes'
    [start, end] intervals (dbt runs two threads, so nodes overlap), ``*_sum_s`` their sum."""
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:  # copied while dbt was writing it
        return {}
    groups: dict[str, list[dict[str, Any]]] = {"model": [], "test": [], "unit_test": []}
    for result in data.get("results", []):
        groups.setdefault(result["unique_id"].split(".", 1)[0], []).append(result)
    tests = groups["test"] + groups["unit_test"]
    slowest = sorted(data.get("results", []), key=lambda r: -float(r.get("execution_time", 0)))
    spans = _intervals(data.get("results", []))
    return {
        "run_results": str(path),
        "first_node_started": min((a for a, _ in spans), default=None),
        "last_node_completed": max((b for _, b in spans), default=None),
        "elapsed_s": round(float(data.get("elapsed_time", 0.0)), 3),
        "models": len(groups["model"]),
        "data_tests": len(groups["test"]),
        "unit_tests": len(groups["unit_test"]),
        "model_sum_s": _sum(groups["model"]),
        "model_wall_s": _union(_intervals(groups["model"])),
        "test_sum_s": _sum(tests),
        "test_wall_s": _union(_intervals(tests)),
        "slowest_nodes": {_node(r["unique_id"]): _seconds(r) for r in slowest[:6]},
    }


def _node(unique_id: str) -> str:
    """``model fct_orders`` from ``model.data_products.fct_orders`` (tests: their name)."""
    parts = unique_id.split(".")
    return f"{parts[0]} {parts[2]}" if len(parts) > 2 else unique_id


def _seconds(result: dict[str, Any]) -> float:
    return round(float(result.get("execution_time", 0.0)), 3)


def _sum(results: list[dict[str, Any]]) -> float:
    return round(sum(float(r.get("execution_time", 0.0)) for r in results), 3)


def _intervals(results: list[dict[str, Any]]) -> list[tuple[float, float]]:
    spans = []
    for result in results:
        times = [
            datetime.fromisoformat(t[field]).timestamp()
            for t in result.get("timing", [])
            for field in ("started_at", "completed_at")
            if t.get(field)
        ]
        if times:
            spans.append((min(times), max(times)))
    return spans


def dbt_profile(instance: Any, run_id: str) -> dict[str, Any]:
    """Model and test time of the run's ``dbt build``, from the events dagster-dbt recorded.

    Each dbt node's event carries its ``Execution Duration`` (dbt's node start to finish):
    ``*_sum_s`` adds them up. ``*_wall_s`` is the union of ``[timestamp - duration, timestamp]``
    intervals, a rough lower bound only: dagster-dbt yields events in order after fetching row
    counts and column metadata, so timestamps arrive late and bunched. Used only when the
    build's ``run_results.json`` (exact) is missing.
    """
    import dagster as dg

    tests: list[tuple[float, float]] = []
    test_names: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        metadata = entry.dagster_event.event_specific_data.metadata
        unique_id = _value(metadata.get("unique_id"))
        duration = _value(metadata.get("Execution Duration"))
        if isinstance(unique_id, str) and isinstance(duration, int | float):
            tests.append((entry.timestamp - float(duration), entry.timestamp))
            test_names[unique_id] = float(duration)
    models: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.dagster_event.event_specific_data.materialization
        duration = _value(materialization.metadata.get("Execution Duration"))
        key = materialization.asset_key.to_user_string()
        # One event per partition of the range for the same dbt node: keep the first.
        if isinstance(duration, int | float) and key not in models:
            models[key] = (entry.timestamp - float(duration), entry.timestamp)
    if not tests and not models:
        return {}
    slowest = sorted(
        [*((k, e - s) for k, (s, e) in models.items()), *test_names.items()], key=lambda i: -i[1]
    )
    return {
        "models": len(models),
        "data_tests": len(tests),
        "model_sum_s": round(sum(e - s for s, e in models.values()), 3),
        "model_wall_s": _union(list(models.values())),
        "test_sum_s": round(sum(test_names.values()), 3),
        "test_wall_s": _union(tests),
        "slowest_nodes": {name: round(seconds, 3) for name, seconds in slowest[:6]},
    }


def _value(metadata_value: Any) -> Any:
    return getattr(metadata_value, "value", metadata_value)


def _union(spans: list[tuple[float, float]]) -> float:
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(spans):
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None and current_end is not None:
        total += current_end - current_start
    return round(total, 3)


def _count_lines(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(
        sum(1 for _ in path.open(encoding="utf-8", errors="replace"))
        for path in folder.glob("*.jsonl")
    )
