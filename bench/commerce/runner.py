"""The benchmark end to end: drops once, one child process per implementation, guard, report.

``run_benchmark`` is what ``python -m bench.commerce`` and the smoke test call. Generation and the
guard are outside the timed region; each implementation's wall time and memory are its own
process's (see ``bench.commerce.measure``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bench.commerce import guard, report
from bench.commerce.layout import IMPLEMENTATIONS, BenchLayout, BenchRange
from bench.commerce.measure import run_child
from data_products.lib.settings import REPO_ROOT, get_settings

_GENERATOR = REPO_ROOT / "assets" / "commerce" / "generator.py"

Say = Callable[[str], None]


@dataclass
class BenchOutcome:
    """Everything one invocation measured and concluded."""

    runs: dict[str, report.Measured]
    comparisons: list[guard.Comparison]
    targets: list[report.Target]
    order_lines: int
    report_path: Path
    failures: list[str] = field(default_factory=list)

    @property
    def guard_passed(self) -> bool:
        return guard.passed(self.comparisons)

    @property
    def ok(self) -> bool:
        return not self.failures and self.guard_passed


def ensure_drops(
    layout: BenchLayout,
    bench_range: BenchRange,
    rows_per_day: int,
    seed: int,
    *,
    regenerate: bool,
    say: Say,
) -> None:
    """Generate the seeded drops unless the same ones (same parameters and generator) exist."""
    wanted = {
        "start": bench_range.start.isoformat(),
        "days": bench_range.days,
        "rows_per_day": rows_per_day,
        "seed": seed,
        "generator_sha256": hashlib.sha256(_GENERATOR.read_bytes()).hexdigest(),
    }
    manifest = layout.drops_manifest
    if not regenerate and manifest.exists() and json.loads(manifest.read_text()) == wanted:
        say(f"reusing the drops in {layout.landing} (same parameters and generator)")
        return
    from assets.commerce.generator import generate

    say(
        f"generating {bench_range.days} days × {rows_per_day:,} order lines (seed {seed}) "
        f"into {layout.drops} (not timed) …"
    )
    started = time.perf_counter()
    manifest.unlink(missing_ok=True)
    generate(layout.landing, layout.truth, bench_range.start, bench_range.days, rows_per_day, seed)
    manifest.write_text(json.dumps(wanted, indent=2))
    say(f"generated in {time.perf_counter() - started:.1f} s")


def _child_env(layout: BenchLayout, implementation: str) -> dict[str, str]:
    run_dir = layout.run_dir(implementation)
    env = dict(os.environ)
    env |= {
        "PYTHONUNBUFFERED": "1",
        # Every implementation gets its own data home, so nothing can touch the user's.
        "DATA_PRODUCTS_HOME": str(run_dir),
        "DAGSTER_HOME": str(run_dir / "dagster_home"),
        # Lineage on, as in production, to files: a benchmark must not post to a real endpoint.
        "DATA_PRODUCTS_LINEAGE_TRANSPORT": "file",
    }
    if implementation == "platform":
        # Its own temporary folder, so the dbt build's artifacts can be found and kept.
        env["TMPDIR"] = str(run_dir / "tmp")
    env.pop("OPENLINEAGE_URL", None)
    env.pop("DATA_PRODUCTS_ALERT_WEBHOOK_URL", None)
    return env


def _prepare(layout: BenchLayout, implementation: str) -> None:
    run_dir = layout.fresh_run_dir(implementation)
    if implementation == "platform":
        # The platform reads <home>/landing: point it at the shared drops.
        (run_dir / "landing").symlink_to(layout.landing.resolve(), target_is_directory=True)
        (run_dir / "tmp").mkdir()


def run_implementation(
    layout: BenchLayout,
    bench_range: BenchRange,
    implementation: str,
    *,
    quiet: bool,
) -> report.Measured:
    _prepare(layout, implementation)
    command = [
        sys.executable,
        "-m",
        "bench.commerce.child",
        implementation,
        "--home",
        str(layout.home),
        "--start",
        bench_range.start.isoformat(),
        "--days",
        str(bench_range.days),
    ]
    child = run_child(
        implementation,
        command,
        env=_child_env(layout, implementation),
        log_path=layout.run_dir(implementation) / "output.log",
        cwd=str(REPO_ROOT),
        quiet=quiet,
    )
    path = layout.result_path(implementation)
    result: dict[str, Any] = (
        json.loads(path.read_text())
        if path.exists()
        else {"success": False, "error": f"no {path.name}: the process died"}
    )
    return report.Measured(implementation, child, result)


def run_benchmark(
    *,
    home: Path,
    rows_per_day: int,
    days: int,
    start: date = date(2026, 1, 1),
    seed: int = 42,
    implementations: Sequence[str] = IMPLEMENTATIONS,
    regenerate: bool = False,
    quiet: bool = False,
) -> BenchOutcome:
    """Generate (or reuse) the drops, run each implementation, guard and write the JSON."""

    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    unknown = set(implementations) - set(IMPLEMENTATIONS)
    if unknown:
        raise ValueError(f"unknown implementations {sorted(unknown)}: {IMPLEMENTATIONS}")
    layout = BenchLayout(home.resolve())
    if layout.home == get_settings().home:
        raise ValueError(
            f"--home {layout.home} is the data home (DATA_PRODUCTS_HOME): give the benchmark "
            "a folder of its own"
        )
    bench_range = BenchRange(start, days)
    ensure_drops(layout, bench_range, rows_per_day, seed, regenerate=regenerate, say=say)

    runs: dict[str, report.Measured] = {}
    failures: list[str] = []
    for name in [i for i in IMPLEMENTATIONS if i in implementations]:
        say(f"[{name}] running in its own process …")
        measured = run_implementation(layout, bench_range, name, quiet=quiet)
        runs[name] = measured
        say(
            f"[{name}] done: {measured.wall_s:.1f} s wall, peak RSS {measured.peak_gib:.2f} GiB"
            + ("" if measured.result.get("success") else " — FAILED")
        )
        if not measured.result.get("success") or measured.child.returncode != 0:
            reason = measured.result.get("error") or measured.result.get("checks", {}).get(
                "gate_failures"
            )
            failures.append(f"{name} failed: {reason}")
            if not quiet:
                print(f"[{name}] last output lines:\n  " + "\n  ".join(measured.child.tail))

    outputs: dict[str, guard.KeyOutputs | None] = {}
    for name in runs:
        try:
            outputs[name] = guard.key_outputs(layout, name)
        except Exception as exc:  # a missing table: that implementation did not finish
            outputs[name] = None
            failures.append(f"{name}: outputs unreadable: {type(exc).__name__}: {exc}")
    comparisons = guard.compare(outputs, guard.truth_outputs(layout.truth))
    order_lines = _order_lines(outputs)
    outcome = BenchOutcome(
        runs=runs,
        comparisons=comparisons,
        targets=report.targets(runs),
        order_lines=order_lines,
        report_path=layout.report,
        failures=failures,
    )
    _write_json(outcome, layout, bench_range, rows_per_day, seed)
    return outcome


def _order_lines(outputs: dict[str, guard.KeyOutputs | None]) -> int:
    counts = [o.required.get("bronze rows orders") for o in outputs.values() if o is not None]
    return max((int(c) for c in counts if c is not None), default=0)


def _write_json(
    outcome: BenchOutcome,
    layout: BenchLayout,
    bench_range: BenchRange,
    rows_per_day: int,
    seed: int,
) -> None:
    document = {
        "benchmark": "commerce",
        "config": {
            "rows_per_day": rows_per_day,
            "rows_per_day_means": "order lines per day (the generator's rows_per_day)",
            "days": bench_range.days,
            "start": bench_range.start.isoformat(),
            "end": bench_range.end.isoformat(),
            "seed": seed,
            "delivered_order_lines": outcome.order_lines,
            "home": str(layout.home),
            "cpu_count": os.cpu_count(),
        },
        "implementations": {
            name: run.as_json(outcome.order_lines) for name, run in outcome.runs.items()
        },
        "ratios": _ratios(outcome.runs),
        "targets": [
            {"target": t.label, "passed": t.passed, "measured": t.measured} for t in outcome.targets
        ],
        "guard": {
            "passed": outcome.guard_passed,
            "metrics": [
                {
                    "metric": c.metric,
                    "required": c.required,
                    "agree": c.agree,
                    "truth_agrees": c.truth_agrees,
                    "values": c.values,
                }
                for c in outcome.comparisons
            ],
        },
        "failures": outcome.failures,
    }
    layout.report.parent.mkdir(parents=True, exist_ok=True)
    layout.report.write_text(json.dumps(document, indent=2, default=str))


def _ratios(runs: dict[str, report.Measured]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    if "platform" in runs and "duckdb" in runs:
        ratios["platform_over_duckdb"] = round(runs["platform"].wall_s / runs["duckdb"].wall_s, 3)
    if "platform" in runs and "pandas" in runs:
        ratios["pandas_over_platform"] = round(runs["pandas"].wall_s / runs["platform"].wall_s, 3)
    return ratios
