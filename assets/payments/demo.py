"""The payments demo slice (``demo: {runner: ...}`` in data_products/domains/payments.yaml).

Produces a small stream (20,000 transactions plus re-sends, late events and fraud), ticks the
``payments_stream`` sensor in-process and executes each run it requests (what the daemon does
under ``dagster dev``) until the backlog is drained, then reconciles the stream's days.
Re-running it on the same data home drains what is left and produces nothing twice.
"""

from __future__ import annotations

import dagster as dg

from assets.payments.produce import open_topic, produce
from assets.payments.settlement import settlement_dir
from assets.payments.simulator import SimulationConfig
from assets.payments.tables import RECONCILIATION
from data_products.cli.runs import SliceRun, materialize_slice, tick_and_run
from data_products.lib.compat.environment import scoped

DEMO = SimulationConfig(events=20_000, users=1_000, id_prefix="demo")
DEMO_BATCH = 6_000
_MAX_TICKS = 50


MAX_BATCH_ENV = "DATA_PRODUCTS_PAYMENTS_STREAM_MAX_BATCH"
"""The sensor reads its batch cap from the environment at tick time; the demo uses a small one so
the slice shows several batches."""


def run_demo(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[SliceRun]:
    log = open_topic()
    if not any(log.end_offsets().values()):
        produce(DEMO, settlement=True, log=log)
    runs: list[SliceRun] = []
    cursor: str | None = None
    with scoped({MAX_BATCH_ENV: str(DEMO_BATCH)}):
        for _ in range(_MAX_TICKS):
            batch, cursor = tick_and_run(defs, instance, "payments_stream", cursor=cursor)
            if not batch:
                break
            runs += batch
            if not all(r.success for r in batch):
                return runs
    days = sorted(p.stem for p in settlement_dir().glob("*.csv"))
    if days:
        runs.append(
            materialize_slice(
                defs,
                dg.AssetSelection.assets(RECONCILIATION.asset_key),
                start=days[0],
                end=days[-1],
                instance=instance,
            )
        )
    return runs
