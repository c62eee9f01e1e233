"""``python -m bench.aviation``: land the year once, run the three variants, print the figures."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from assets.aviation import drops
from bench.commerce.measure import GIB, ChildRun, run_child
from data_products.lib.bronze import REFERENCE_FOLDER
from data_products.lib.settings import REPO_ROOT, get_settings

DEFAULT_HOME = REPO_ROOT / ".data" / "bench-aviation"
TARGET_RATIO = 1.5
DAYS_IN_YEAR = 365
SUBSET_PLANNED = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
"""Dagster's switch for one ``ASSET_MATERIALIZATION_PLANNED`` event per asset per run instead of
one per asset per partition (``EventLogStorage.supports_partition_subset_in_...``): most of a
year's single-run overhead on the SQLite instance (see ``bench.aviation.profile``)."""


def _fresh(run_dir: Path, landing: Path) -> Path:
    """An empty data home whose landing/ is the shared one (read-only by convention)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "landing").symlink_to(landing, target_is_directory=True)
    return run_dir


def _unpartitioned_landing(home: Path) -> Path:
    """The year's flights and weather as one file each, plus the reference snapshots."""
    landing = home / "landing-unpartitioned"
    folder = landing / "aviation" / REFERENCE_FOLDER / drops.REFERENCE_AS_OF
    folder.mkdir(parents=True, exist_ok=True)
    for table in (*drops.REFERENCE_TABLES, *drops.DAILY_TABLES):
        path = folder / f"{table}.csv"
        if not path.exists():
            path.write_bytes(drops.read_source(table))
    return landing


def _child(
    label: str, home: Path, mode: str, day: str | None = None, *, planned: str = "environment"
) -> ChildRun:
    command = [sys.executable, "-m", "bench.aviation.child", mode, "--home", str(home)]
    command += ["--day", day] if day else []
    env = {**os.environ, "DATA_PRODUCTS_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    if planned == "subset":
        env[SUBSET_PLANNED] = "true"
    elif planned == "per-partition":
        env.pop(SUBSET_PLANNED, None)
    run = run_child(
        label, command, env=env, log_path=home / f"{label}.log", cwd=str(REPO_ROOT), quiet=True
    )
    if run.returncode != 0:
        tail = "\n".join(run.tail[-15:])
        raise RuntimeError(
            f"{label} failed (exit {run.returncode}); log {home}/{label}.log\n{tail}"
        )
    return run


def _cpu(home: Path, mode: str, day: str | None = None) -> float:
    """CPU seconds the child measured for itself and its dbt processes (``result-*.json``)."""
    name = f"result-{mode}{'-' + day if day else ''}.json"
    return float(json.loads((home / name).read_text())["cpu_s"])


def _sample(days: int) -> list[str]:
    """Days spread over the year (every season, both DST changes nearby)."""
    step = DAYS_IN_YEAR // days
    first = date(2013, 1, 1)
    return [(first + timedelta(days=i * step + step // 2)).isoformat() for i in range(days)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aviation", description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--sample-days", type=int, default=12)
    parser.add_argument(
        "--planned-events",
        choices=("environment", "subset", "per-partition"),
        default="environment",
        help=f"planned events of the single run: as {SUBSET_PLANNED} in the environment says "
        "(default), one per asset (subset), or one per asset per partition (Dagster's default)",
    )
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if home == get_settings().home:
        parser.error("the bench home must not be the data home (it is wiped per run)")
    landing = home / "landing"
    print(drops.land(landing, "2013-01-01", "2013-12-31").line(landing))

    print("single-run backfill of 2013-01-01...2013-12-31 …", flush=True)
    planned = args.planned_events
    if planned == "environment":
        subset = os.environ.get(SUBSET_PLANNED, "").lower() in {"true", "1"}
        planned = "subset" if subset else "per-partition"
    single = _child("single", _fresh(home / "single", landing), "single", planned=planned)

    print(f"per-partition: {args.sample_days} sampled days, one run (process) each …", flush=True)
    per_home = _fresh(home / "per_partition", landing)
    references = _child("references", per_home, "references")
    days = [_child(f"day-{d}", per_home, "partition", d) for d in _sample(args.sample_days)]

    print("unpartitioned: the same pipeline with no partitions …", flush=True)
    flat = _fresh(home / "unpartitioned", _unpartitioned_landing(home))
    unpartitioned = _child("unpartitioned", flat, "unpartitioned")

    mean_day = sum(d.wall_s for d in days) / len(days)
    extrapolated = references.wall_s + mean_day * DAYS_IN_YEAR
    sampled = _sample(args.sample_days)
    mean_day_cpu = sum(_cpu(per_home, "partition", d) for d in sampled) / len(sampled)
    single_cpu = _cpu(home / "single", "single")
    flat_cpu = _cpu(flat, "unpartitioned")
    ratio = single.wall_s / unpartitioned.wall_s
    rows = [
        (
            "single-run backfill (365 partitions, 1 run)",
            single.wall_s,
            single_cpu,
            single.peak_bytes,
        ),
        (
            f"per-partition, extrapolated: refs once + {DAYS_IN_YEAR} x mean of "
            f"{len(days)} measured runs",
            extrapolated,
            _cpu(per_home, "references") + mean_day_cpu * DAYS_IN_YEAR,
            max(d.peak_bytes for d in [references, *days]),
        ),
        (
            "unpartitioned run (same factories, no partitions)",
            unpartitioned.wall_s,
            flat_cpu,
            unpartitioned.peak_bytes,
        ),
    ]
    print("\n=== aviation benchmark: 336,776 flights + 26,115 weather rows, bronze → gold ===")
    what = "one per asset" if planned == "subset" else "one per asset per partition"
    print(f"  single run's ASSET_MATERIALIZATION_PLANNED events: {what} ({planned})")
    for label, wall, cpu, peak in rows:
        print(f"  {label:<78} {wall:8.1f} s wall {cpu:8.1f} s CPU   peak RSS {peak / GIB:5.2f} GiB")
    print(
        f"  per-partition run: mean {mean_day:.1f} s (min {min(d.wall_s for d in days):.1f}, "
        f"max {max(d.wall_s for d in days):.1f}); "
        f"reference snapshots once: {references.wall_s:.1f} s"
    )
    print(
        "  per-partition overhead inside the single run: "
        f"{(single.wall_s - unpartitioned.wall_s) / DAYS_IN_YEAR * 1000:.0f} ms per partition; "
        f"as separate runs: {mean_day - single.wall_s / DAYS_IN_YEAR:.1f} s per partition"
    )
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"  target single ≤ {TARGET_RATIO} × unpartitioned: {ratio:.2f} × wall ({verdict}), "
        f"{single_cpu / flat_cpu:.2f} × CPU"
    )
    return 0
