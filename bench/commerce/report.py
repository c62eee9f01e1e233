"""The benchmark's figures: per-implementation table, ratios, targets and the platform profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.commerce.measure import GIB, ChildRun

PLATFORM_VS_DUCKDB_MAX = 1.5
PANDAS_VS_PLATFORM_MIN = 4.0
CHECKS_SHARE_MAX = 0.10
PEAK_RSS_MAX_GIB = 4.0

BACKGROUND_PHASES = frozenset({"iceberg_s"})
"""Silver phases timed on a background thread (``data_products.lib.silver``), not on the path."""


@dataclass(frozen=True)
class Measured:
    """One implementation: the parent's measurement and the child's own report."""

    name: str
    child: ChildRun
    result: dict[str, Any]

    @property
    def wall_s(self) -> float:
        return self.child.wall_s

    @property
    def startup_s(self) -> float:
        """Interpreter, imports and (platform) definitions: everything before the work."""
        work = float(self.result.get("work_s", self.wall_s)) - float(
            self.result.get("setup_s", 0.0)
        )
        return max(0.0, self.wall_s - work)

    @property
    def checks_s(self) -> float:
        return float(self.result.get("checks_s", 0.0))

    @property
    def peak_gib(self) -> float:
        return self.child.peak_bytes / GIB

    def as_json(self, order_lines: int) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.result.items() if k != "implementation"},
            "wall_s": round(self.wall_s, 3),
            "startup_s": round(self.startup_s, 3),
            "peak_rss_bytes": self.child.peak_bytes,
            "peak_rss_gib": round(self.peak_gib, 3),
            "maxrss_single_process_bytes": self.child.maxrss_bytes,
            "tree_rss_sampled_peak_bytes": self.child.tree_peak_bytes,
            "order_lines_per_s": round(order_lines / self.wall_s) if self.wall_s else None,
            "checks_s": round(self.checks_s, 3),
            "checks_share": round(self.checks_s / self.wall_s, 4) if self.wall_s else None,
            "returncode": self.child.returncode,
        }


@dataclass(frozen=True)
class Target:
    label: str
    passed: bool
    measured: str


def targets(runs: dict[str, Measured]) -> list[Target]:
    """The issue's four targets, for whichever implementations ran."""
    found: list[Target] = []
    platform = runs.get("platform")
    if platform is None:
        return found
    if "duckdb" in runs:
        ratio = platform.wall_s / runs["duckdb"].wall_s
        found.append(
            Target(
                f"platform ≤ {PLATFORM_VS_DUCKDB_MAX:g}× the DuckDB limit",
                ratio <= PLATFORM_VS_DUCKDB_MAX,
                f"platform/DuckDB = {ratio:.2f}×",
            )
        )
    if "pandas" in runs:
        ratio = runs["pandas"].wall_s / platform.wall_s
        found.append(
            Target(
                f"platform ≥ {PANDAS_VS_PLATFORM_MIN:g}× faster than pandas",
                ratio >= PANDAS_VS_PLATFORM_MIN,
                f"pandas/platform = {ratio:.2f}×",
            )
        )
    share = platform.checks_s / platform.wall_s
    breakdown = ", ".join(
        f"{k} {v:.1f} s" for k, v in platform.result.get("checks_breakdown", {}).items()
    )
    found.append(
        Target(
            f"checks ≤ {CHECKS_SHARE_MAX:.0%} of the platform's wall time",
            share <= CHECKS_SHARE_MAX,
            f"{share:.1%} = {platform.checks_s:.1f} s ({breakdown})",
        )
    )
    found.append(
        Target(
            f"platform peak RSS ≤ {PEAK_RSS_MAX_GIB:g} GiB",
            platform.peak_gib <= PEAK_RSS_MAX_GIB,
            f"{platform.peak_gib:.2f} GiB",
        )
    )
    return found


def render_table(runs: dict[str, Measured], order_lines: int) -> str:
    header = (
        f"  {'implementation':<14} {'wall s':>8} {'start-up s':>10} {'peak RSS GiB':>12} "
        f"{'order lines/s':>14} {'checks s':>9} {'checks %':>9}  checks run/failed"
    )
    lines = [header]
    for name, run in runs.items():
        checks = run.result.get("checks", {})
        failed = checks.get("failed", [])
        status = "" if run.result.get("success") else "  FAILED"
        lines.append(
            f"  {name:<14} {run.wall_s:>8.1f} {run.startup_s:>10.1f} {run.peak_gib:>12.2f} "
            f"{order_lines / run.wall_s:>14,.0f} {run.checks_s:>9.1f} "
            f"{run.checks_s / run.wall_s:>9.1%}  {checks.get('evaluated', 0)}/{len(failed)}"
            f"{status}"
        )
    ratios = []
    if "platform" in runs and "duckdb" in runs:
        ratios.append(f"platform/DuckDB {runs['platform'].wall_s / runs['duckdb'].wall_s:.2f}×")
    if "platform" in runs and "pandas" in runs:
        ratios.append(f"pandas/platform {runs['pandas'].wall_s / runs['platform'].wall_s:.2f}×")
    if ratios:
        lines.append("  ratios (wall time): " + ", ".join(ratios))
    return "\n".join(lines)


def render_targets(found: list[Target]) -> str:
    return "\n".join(
        f"  {'PASS' if t.passed else 'MISS'}  {t.label:<44} {t.measured}" for t in found
    )


def render_phases(runs: dict[str, Measured]) -> str:
    lines = []
    for name, run in runs.items():
        phases = run.result.get("phases", {})
        if phases:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
            lines.append(f"  {name:<9} {parts}")
    return "\n".join(lines)


def render_platform_profile(run: Measured) -> str:
    """Where the platform's wall time went, largest first, from what the run recorded."""
    profile = run.result.get("profile", {})
    steps: dict[str, float] = profile.get("steps", {})
    silver: dict[str, dict[str, float]] = profile.get("silver_timings", {})
    dbt: dict[str, Any] = profile.get("dbt", {})
    in_steps = sum(steps.values())
    outside = max(0.0, run.wall_s - run.startup_s - in_steps)
    layers = {"bronze": 0.0, "silver": 0.0, "gold": 0.0}
    for step, seconds in steps.items():
        layer = next((name for name in layers if f"_{name}_" in step), "gold")
        layers[layer] += seconds
    by_layer = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in layers.items())
    lines = [
        f"  by layer: start-up {run.startup_s:.1f} s, {by_layer}, orchestration {outside:.1f} s",
        f"  process start-up (interpreter, imports, definitions) {run.startup_s:6.1f} s",
        f"  run outside the steps (orchestration, event log)     {outside:6.1f} s",
    ]
    by_step: dict[str, list[tuple[str, dict[str, float]]]] = {}
    for asset, timings in silver.items():
        phases = {k: float(v) for k, v in timings.items() if k != "step"}
        by_step.setdefault(str(timings.get("step")), []).append((asset, phases))
    for step, seconds in sorted(steps.items(), key=lambda i: -i[1]):
        lines.append(
            f"  step {step:<40} {seconds:6.1f} s{_dbt_detail(dbt) if 'dbt' in step else ''}"
        )
        accounted = 0.0
        for asset, phases in by_step.get(step, []):
            # Iceberg replicas are written by a background thread, overlapping the other phases.
            accounted += sum(v for k, v in phases.items() if k not in BACKGROUND_PHASES)
            parts = ", ".join(
                f"{k.removesuffix('_s')}{' (background)' if k in BACKGROUND_PHASES else ''} {v:.1f}"
                for k, v in phases.items()
            )
            lines.append(f"      {asset}: {parts}")
        if by_step.get(step):
            lines.append(f"      rest of the step (reads, lineage, …): {seconds - accounted:.1f}")
    if dbt.get("run_results"):
        lines.append(f"  dbt run_results: {dbt['run_results']}")
    if dbt.get("slowest_nodes"):
        slowest = ", ".join(f"{k} {v:.1f} s" for k, v in dbt["slowest_nodes"].items())
        lines.append(f"  slowest dbt nodes: {slowest}")
    return "\n".join(lines)


def _dbt_detail(dbt: dict[str, Any]) -> str:
    if not dbt:
        return ""
    exact = "run_results" in dbt
    summed = (
        f"{dbt.get('models', 0)} models {dbt.get('model_sum_s', 0):.1f} s and "
        f"{dbt.get('data_tests', 0) + dbt.get('unit_tests', 0)} tests "
        f"{dbt.get('test_sum_s', 0):.1f} s summed over 2 dbt threads"
    )
    if not exact or "nodes_running_s" not in dbt:
        return f" ({summed})"
    return (
        f"\n      before the first dbt node (dbt start-up, project parsing) "
        f"{dbt['before_first_node_s']:.1f} s; nodes running {dbt['nodes_running_s']:.1f} s "
        f"(a model running {dbt.get('model_wall_s', 0):.1f} s, a test running "
        f"{dbt.get('test_wall_s', 0):.1f} s; {summed}); after the last node (dagster-dbt "
        f"events, row counts, column metadata) {dbt['after_last_node_s']:.1f} s"
    )
