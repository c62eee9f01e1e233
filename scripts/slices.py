"""Run every domain's demo slice: land its sources, then one single-run backfill per domain."""

from __future__ import annotations

import dagster as dg

from data_products.cli.runs import SliceRun, materialize_slice
from data_products.lib.domains import load_domains
from data_products.lib.instance import ensure_dagster_home


def run_all_slices(*, log: bool = True) -> list[SliceRun]:
    ensure_dagster_home()
    from data_products.definitions import defs  # after DAGSTER_HOME is set

    instance = dg.DagsterInstance.get()
    runs: list[SliceRun] = []
    for name, domain in load_domains().items():
        if domain.demo is None:
            continue
        prepared = domain.demo.run_prepare()
        if log and prepared:
            print(f"[{name}] sources: {prepared}")
        runner = domain.demo.resolve_runner()
        if runner is not None:
            if log:
                print(f"[{name}] running its micro-batches …", flush=True)
            batches: list[SliceRun] = runner(defs, instance)
            if log:
                ok = sum(run.success for run in batches)
                print(f"[{name}] {len(batches)} runs, {ok} succeeded")
            runs.extend(batches)
            continue
        assert domain.demo.start is not None and domain.demo.end is not None
        if log:
            print(
                f"[{name}] materialising {domain.demo.start}...{domain.demo.end} as one run …",
                flush=True,
            )
        run = materialize_slice(
            defs,
            dg.AssetSelection.groups(name),
            start=domain.demo.start,
            end=domain.demo.end,
            instance=instance,
        )
        if log:
            print(
                f"[{name}] run {run.run_id}: {'success' if run.success else 'FAILED'}, "
                f"{len(run.materialized)} materialisations, {len(run.checks)} check evaluations"
            )
        runs.append(run)
    return runs
