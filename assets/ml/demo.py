"""The ml demo slice (``demo: {runner: ...}`` in data_products/domains/ml.yaml).

The ml assets read aviation's silver and gold tables, so the slice's range lies inside
aviation's demo range. Descriptors run in name order, so ``make demo`` has materialised
aviation's January just before; run on its own (or on a fresh data home) the slice lands and
materialises aviation's range first, so it never depends on what ran before it.
"""

from __future__ import annotations

import dagster as dg

from assets.ml.common import AVIATION_FLIGHTS, AVIATION_ROTATIONS, AVIATION_WEATHER, DOMAIN
from data_products.cli.runs import SliceRun, materialize_slice
from data_products.lib.domains import domain


def _days(start: str, end: str) -> list[str]:
    from assets.ml.common import PARTITIONS

    return list(PARTITIONS.get_partition_keys_in_range(dg.PartitionKeyRange(start, end)))


def aviation_ready(instance: dg.DagsterInstance, start: str, end: str) -> bool:
    """Whether the aviation tables the ml assets read hold every day of the range."""
    wanted = set(_days(start, end))
    return all(
        wanted <= instance.get_materialized_partitions(name.asset_key)
        for name in (AVIATION_FLIGHTS, AVIATION_WEATHER, AVIATION_ROTATIONS)
    )


def run_demo(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[SliceRun]:
    aviation, ml = domain("aviation").demo, domain(DOMAIN).demo
    assert aviation is not None and aviation.start is not None and aviation.end is not None
    assert ml is not None and ml.start is not None and ml.end is not None
    start, end = ml.start, ml.end
    runs: list[SliceRun] = []
    if not aviation_ready(instance, aviation.start, aviation.end):
        aviation.run_prepare()
        runs.append(
            materialize_slice(
                defs,
                dg.AssetSelection.groups("aviation"),
                start=aviation.start,
                end=aviation.end,
                instance=instance,
            )
        )
        if not runs[-1].success:
            return runs
    runs.append(
        materialize_slice(
            defs, dg.AssetSelection.groups(DOMAIN), start=start, end=end, instance=instance
        )
    )
    return runs
