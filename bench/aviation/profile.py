"""Where a single-run aviation backfill spends its time, and how many events it writes.

``python -m bench.aviation.profile --home H --start 2013-01-01 --end 2013-01-31
[--env NAME=VALUE ...] [--no-profile]``

Lands the range under ``H/landing`` (kept between invocations), wipes everything else in ``H``,
runs the range as one in-process run (``materialize_slice``, as ``bench.aviation.child`` does)
under cProfile, and prints:

- the run's phases from its own event log: planning (run start to the first step start, which
  is where Dagster writes the per-partition ``ASSET_MATERIALIZATION_PLANNED`` events), each
  step's wall time, and the tail after the last step;
- cumulative seconds in buckets of the profile: Dagster event storage (``store_event``, and the
  SQLAlchemy engine set-up and commits inside it), dbt (the gold step), our silver and bronze
  steps;
- the events written, by type, and per asset per partition.

``--env`` sets variables before Dagster is imported (e.g.
``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true``), ``--stock-storage`` drops the
platform's storage block (``data_products.lib.compat.dagster``) so Dagster's own SQLite storage
is measured, and ``--instance-yaml FILE`` appends instance configuration to the dagster.yaml the
platform writes (with ``--stock-storage`` for a ``storage:`` of its own, e.g. PostgreSQL), to
measure instance settings without changing the platform's template.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

_PLANNED = "_log_asset_planned_events"
_STEP_ENDS = ("STEP_SUCCESS", "STEP_FAILURE")

# (bucket, file suffix, function name): cumulative time of that function in the profile.
# Buckets can nest (store_event contains the engine set-up); they are reported separately.
BUCKETS: tuple[tuple[str, str, str], ...] = (
    ("event storage: SqliteEventLogStorage.store_event", "sqlite_event_log.py", "store_event"),
    (
        "event storage: batches (platform storage)",
        "data_products/lib/compat/dagster.py",
        "store_event_batch",
    ),
    ("  of which SQLAlchemy create_engine", "sqlalchemy/engine/create.py", "create_engine"),
    ("  of which engine.dispose", "sqlalchemy/engine/base.py", "dispose"),
    ("  of which transaction commit", "sqlalchemy/engine/base.py", "commit"),
    ("run storage: SqlRunStorage.handle_run_event", "sql_run_storage.py", "handle_run_event"),
    (
        "planned events: RunDomain._log_asset_planned_events",
        "run_domain.py",
        "_log_asset_planned_events",
    ),
    ("dbt gold step (dbt process + metadata)", "data_products/lib/dbt.py", "_gold"),
    (
        "  of which waiting for dbt's events",
        "data_products/lib/compat/dagster_dbt.py",
        "finished_events",
    ),
    ("silver steps (flights, weather, references)", "data_products/lib/silver.py", "_silver"),
    ("bronze steps (daily drops, snapshots)", "data_products/lib/bronze.py", "_bronze"),
)


def _land(home: Path, start: str, end: str) -> None:
    from assets.aviation import drops

    landing = home / "landing"
    for child in home.iterdir() if home.exists() else []:
        if child != landing:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    print(drops.land(landing, start, end).line(landing), flush=True)


def _buckets(profile: pstats.Stats) -> list[tuple[str, float, int]]:
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = profile.stats  # type: ignore[attr-defined]
    rows = []
    for label, suffix, name in BUCKETS:
        matching = [
            (value[3], value[1])
            for (path, _line, function), value in stats.items()
            if function == name and path.endswith(suffix)
        ]
        # A recursive or re-entered function counts its outermost calls' time once (cProfile's
        # cumulative time already does that per function entry); sum over distinct entries.
        rows.append((label, sum(t for t, _ in matching), sum(n for _, n in matching)))
    return rows


def _event_counts(instance: Any, run_ids: list[str], partitions: int) -> dict[str, Any]:
    import dagster as dg

    records = [
        record
        for run_id in run_ids
        for record in instance.get_records_for_run(run_id, limit=1_000_000).records
    ]
    by_type: Counter[str] = Counter()
    by_asset: dict[str, Counter[str]] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        kind = event.event_type_value if event else "LOG_MESSAGE"
        by_type[kind] += 1
        if (
            event is not None
            and event.asset_key is not None
            and kind
            in {
                dg.DagsterEventType.ASSET_MATERIALIZATION.value,
                dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
            }
        ):
            by_asset.setdefault(event.asset_key.to_user_string(), Counter())[kind] += 1
    per_partition = {
        asset: {kind: round(n / partitions, 2) for kind, n in counts.items()}
        for asset, counts in sorted(by_asset.items())
    }
    return {
        "total": len(records),
        "by_type": dict(by_type.most_common()),
        "per_partition": (per_partition),
    }


def _phases(instance: Any, run_id: str) -> dict[str, float]:
    """Run start → first step start (planning), each step, last step end → run end."""
    import dagster as dg

    records = instance.get_records_for_run(run_id, limit=1_000_000).records
    first = records[0].event_log_entry.timestamp
    last = records[-1].event_log_entry.timestamp
    starts: dict[str, float] = {}
    phases: dict[str, float] = {}
    step_starts, step_ends = [], []
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
            step_starts.append(entry.timestamp)
        elif event.event_type in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            phases[f"step {event.step_key}"] = entry.timestamp - starts[event.step_key]
            step_ends.append(entry.timestamp)
    return {
        "planning (run start → first step)": min(step_starts) - first,
        **phases,
        "after the last step → run end": last - max(step_ends),
        "run (event log first → last)": last - first,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aviation.profile", description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-01-31")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--instance-yaml", type=Path, help="appended to the dagster.yaml")
    parser.add_argument(
        "--stock-storage",
        action="store_true",
        help="Dagster's own SQLite storage instead of the platform's (data_products.lib.instance)",
    )
    parser.add_argument("--no-profile", action="store_true", help="time only (no cProfile)")
    parser.add_argument(
        "--one-run",
        action="store_true",
        help="the unpartitioned assets inside the range run too (materialize_slice runs them "
        "in a run of their own first)",
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed by own time")
    args = parser.parse_args(argv)
    home = args.home.resolve()
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        os.environ[name] = value
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DATA_PRODUCTS_LINEAGE_TRANSPORT"] = "none"
    _land(home, args.start, args.end)
    partitions = (date.fromisoformat(args.end) - date.fromisoformat(args.start)).days + 1

    started = time.perf_counter()
    import dagster as dg

    from data_products.cli.runs import materialize_slice
    from data_products.definitions import defs
    from data_products.lib.instance import ensure_dagster_home, storage_yaml

    dagster_home = ensure_dagster_home()
    if args.stock_storage:
        config = dagster_home / "dagster.yaml"
        config.write_text(config.read_text().replace(storage_yaml(dagster_home), ""))
    if args.instance_yaml is not None:
        with (dagster_home / "dagster.yaml").open("a") as config:
            config.write(args.instance_yaml.read_text())
    instance = dg.DagsterInstance.get()
    loaded = time.perf_counter() - started

    profiler = cProfile.Profile()
    from bench.aviation.child import cpu_seconds

    cpu_started = cpu_seconds()
    started = time.perf_counter()
    if not args.no_profile:
        profiler.enable()
    run = materialize_slice(
        defs,
        dg.AssetSelection.groups("aviation"),
        start=args.start,
        end=args.end,
        instance=instance,
        log_level="WARNING",
        unpartitioned_first=not args.one_run,
    )
    profiler.disable()
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started

    print(
        f"\n=== {args.start}...{args.end}: {partitions} partitions, env {args.env or 'none'}"
        f"{', everything in one run' if args.one_run else ', unpartitioned assets first'}"
    )
    print(f"event log storage: {type(instance.event_log_storage).__name__}")
    print(
        f"definitions load {loaded:.1f} s; run wall {wall:.1f} s, CPU {cpu:.1f} s "
        f"(process + dbt); success {run.success}; "
        f"gate failures {len(run.gate_failures)}; profiled {not args.no_profile}"
    )
    for run_id in run.run_ids:
        print(f"\nphases from the event log of run {run_id} (s):")
        for name, seconds in _phases(instance, run_id).items():
            print(f"  {name:<70} {seconds:8.2f}")
    if not args.no_profile:
        profile = pstats.Stats(profiler)
        profile.dump_stats(str(home / "run.prof"))
        print("\ncumulative seconds in the profile (calls):")
        for label, seconds, calls in _buckets(profile):
            print(f"  {label:<70} {seconds:8.2f}  ({calls})")
        print(f"\ntop {args.top} by own time (profile in {home / 'run.prof'}):")
        profile.sort_stats("tottime").print_stats(args.top)
    counts = _event_counts(instance, run.run_ids, partitions)
    print(f"\nevents written for the {len(run.run_ids)} run(s): {counts['total']}")
    print(json.dumps(counts["by_type"], indent=1))
    print(f"per asset per partition ({partitions} partitions):")
    for asset, per in counts["per_partition"].items():
        print(f"  {asset:<45} {per}")
    return 0 if run.success and not run.gate_failures else 1


if __name__ == "__main__":
    sys.exit(main())
