"""``python -m bench.commerce``: arguments, then the printed report (see ``bench.commerce``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from bench.commerce import guard, report
from bench.commerce.layout import DEFAULT_HOME, IMPLEMENTATIONS
from bench.commerce.runner import BenchOutcome, run_benchmark


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commerce",
        description=(
            "Commerce bronze → silver → gold with checks, run three ways (the platform's assets, "
            "hand-written DuckDB SQL, straightforward pandas) on the same generated drops."
        ),
    )
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=1_000_000,
        help="order lines per day (the generator's rows_per_day; default 1,000,000)",
    )
    parser.add_argument("--days", type=int, default=7, help="daily partitions (default 7)")
    parser.add_argument(
        "--home",
        type=Path,
        default=DEFAULT_HOME,
        help=f"bench data home, never the user's data home (default {DEFAULT_HOME})",
    )
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=IMPLEMENTATIONS,
        default=list(IMPLEMENTATIONS),
        help="run only these implementations (the guard compares whichever ran)",
    )
    parser.add_argument(
        "--regenerate", action="store_true", help="generate the drops even if identical ones exist"
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 2 when a performance target is missed"
    )
    return parser


def print_outcome(outcome: BenchOutcome, rows_per_day: int, days: int) -> None:
    runs = outcome.runs
    print()
    print(
        f"=== commerce benchmark: {rows_per_day:,} order lines/day (the generator's "
        f"rows_per_day) × {days} days = {outcome.order_lines:,} delivered order lines "
        "(re-sent and duplicate rows included), bronze → silver → gold with checks ==="
    )
    print(report.render_table(runs, outcome.order_lines))
    phases = report.render_phases(runs)
    if phases:
        print("\nPhases (inside each process):")
        print(phases)
    if outcome.targets:
        print("\nTargets:")
        print(report.render_targets(outcome.targets))
    if "platform" in runs:
        print("\nPlatform profile (from the run's own records):")
        print(report.render_platform_profile(runs["platform"]))
        for note in runs["platform"].result.get("notes", []):
            print(f"  note: {note}")
    print()
    print(guard.render(outcome.comparisons, list(runs)))
    for failure in outcome.failures:
        print(f"FAILED: {failure}")
    verdict = "agree" if outcome.guard_passed else "DISAGREE"
    print(f"\nThe implementations {verdict}. Full results: {outcome.report_path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        outcome = run_benchmark(
            home=args.home,
            rows_per_day=args.rows_per_day,
            days=args.days,
            start=args.start,
            seed=args.seed,
            implementations=args.only,
            regenerate=args.regenerate,
        )
    except ValueError as exc:  # bad arguments: say which, no traceback
        parser.error(str(exc))
    print_outcome(outcome, args.rows_per_day, args.days)
    if not outcome.ok:
        return 1
    if args.fail_on_miss and not all(t.passed for t in outcome.targets):
        return 2
    return 0
