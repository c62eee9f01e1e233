"""One measured process: ``python -m bench.aviation.child <mode> --home H [--day D]``.

Modes: ``single`` (the year as one single-run backfill), ``references`` (the unpartitioned
reference snapshots once), ``partition`` (one day's partitioned assets as one run),
``unpartitioned`` (the baseline of ``bench.aviation.unpartitioned``). The child times its own
phases (definitions load, run) and writes ``result.json`` next to its data home.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.commerce.clock import Clock
from bench.commerce.measure import PROGRESS_MARK

FIRST, LAST = "2013-01-01", "2013-12-31"
REFERENCES = ("airports", "airlines", "planes")


def _progress(message: str) -> None:
    print(f"{PROGRESS_MARK}{message}", flush=True)


def _partitioned() -> object:
    import dagster as dg

    references = [
        dg.AssetKey(["aviation", layer, name])
        for layer in ("bronze", "silver")
        for name in REFERENCES
    ]
    quarantines = [dg.AssetKey(["aviation", "silver", f"{name}_quarantine"]) for name in REFERENCES]
    return dg.AssetSelection.groups("aviation") - dg.AssetSelection.assets(
        *references, *quarantines
    )


def run(mode: str, home: Path, day: str | None) -> dict[str, object]:
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DATA_PRODUCTS_LINEAGE_TRANSPORT"] = "none"
    clock = Clock(_progress)
    with clock.phase("load_definitions"):
        import dagster as dg

        from data_products.cli.runs import materialize_slice
        from data_products.lib.instance import ensure_dagster_home

        ensure_dagster_home()
        if mode == "unpartitioned":
            from bench.aviation.unpartitioned import definitions

            defs = definitions()
        else:
            from data_products.definitions import defs
        instance = dg.DagsterInstance.get()
    with clock.phase("run"):
        if mode == "unpartitioned":
            job = defs.resolve_implicit_global_asset_job_def()
            success = job.execute_in_process(instance=instance, raise_on_error=False).success
        else:
            if mode == "single":
                selection, start, end = dg.AssetSelection.groups("aviation"), FIRST, LAST
            elif mode == "references":
                keys = [
                    dg.AssetKey(["aviation", layer, n])
                    for layer in ("bronze", "silver")
                    for n in REFERENCES
                ]
                selection = dg.AssetSelection.assets(*keys).required_multi_asset_neighbors()
                start, end = FIRST, FIRST
            else:
                assert day is not None
                selection, start, end = _partitioned(), day, day
            slice_run = materialize_slice(
                defs, selection, start=start, end=end, instance=instance, log_level="WARNING"
            )
            success = slice_run.success and not slice_run.gate_failures
    return {
        "mode": mode,
        "day": day,
        "success": success,
        "phases": clock.phases,
        "cpu_s": cpu_seconds(),
    }


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the dbt processes): on a
    shared machine wall time is distorted by the others, CPU time is not."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aviation.child")
    parser.add_argument("mode", choices=("single", "references", "partition", "unpartitioned"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--day")
    args = parser.parse_args(argv)
    result = run(args.mode, args.home.resolve(), args.day)
    name = f"result-{args.mode}{'-' + args.day if args.day else ''}.json"
    (args.home / name).write_text(json.dumps(result, indent=2))
    return 0 if result["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
