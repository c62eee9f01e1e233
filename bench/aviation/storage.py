"""What an event costs in each event log storage: a run's own events written again.

``python -m bench.aviation.storage --home H [--run-id ID]``

Reads every event of a run (default: the newest) from the instance of the data home ``H`` (for
example one ``bench.aviation.profile`` left behind), then writes them into fresh storages in
temporary folders, as Dagster hands them over: consecutive batchable events of one step
(planned materialisations and checks, one output's per-partition materialisations) as one
``store_event_batch``, every other event through ``store_event``. Prints wall and CPU seconds
per event for

- Dagster's ``SqliteEventLogStorage`` (its ``store_event_batch`` is a loop over ``store_event``);
- the platform's ``PooledSqliteEventLogStorage`` (``data_products.lib.compat.dagster``).

The storages see the same events in the same order, so the difference is the storage's own.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Dagster batches these event types when DAGSTER_EVENT_BATCH_SIZE > 0 (dagster._core.events).
_BATCHED = {
    "ASSET_MATERIALIZATION",
    "ASSET_MATERIALIZATION_PLANNED",
    "ASSET_CHECK_EVALUATION_PLANNED",
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _writes(entries: Sequence[Any]) -> list[list[Any]]:
    """The run's events grouped as Dagster writes them: batchable runs of one step together."""

    def group(entry: Any) -> tuple[bool, str | None, bool]:
        kind = entry.dagster_event_type.value if entry.dagster_event_type else None
        planned = kind in {"ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION_PLANNED"}
        return kind in _BATCHED, entry.step_key, planned

    writes: list[list[Any]] = []
    for (batched, _, _), events in itertools.groupby(entries, key=group):
        events = list(events)
        writes.extend([events] if batched and len(events) > 1 else [[e] for e in events])
    return writes


def _replay(storage: Any, writes: list[list[Any]]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), _cpu()
    for events in writes:
        if len(events) == 1:
            storage.store_event(events[0])
        else:
            storage.store_event_batch(events)
    return time.perf_counter() - started, _cpu() - cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.aviation.storage", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="a data home with runs")
    parser.add_argument("--run-id", help="default: the newest run")
    args = parser.parse_args(argv)
    os.environ["DAGSTER_HOME"] = str(args.home.resolve() / "dagster_home")

    import dagster as dg

    from data_products.lib.compat.dagster import (
        PooledSqliteEventLogStorage,
        SqliteEventLogStorage,
    )

    with dg.DagsterInstance.get() as instance:
        run_id = args.run_id or instance.get_runs(limit=1)[0].run_id
        records = instance.get_records_for_run(run_id, limit=10_000_000).records
    entries = [r.event_log_entry for r in records]
    writes = _writes(entries)
    print(f"run {run_id}: {len(entries)} events, {len(writes)} writes as Dagster batches them")
    with tempfile.TemporaryDirectory(prefix="event-storage-") as scratch:
        for name, storage_class in (
            ("Dagster SqliteEventLogStorage", SqliteEventLogStorage),
            ("platform PooledSqliteEventLogStorage", PooledSqliteEventLogStorage),
        ):
            storage = storage_class(str(Path(scratch) / name.split()[-1]))
            wall, cpu = _replay(storage, writes)
            storage.dispose()
            per = 1000 / len(entries)
            print(
                f"  {name:<38} wall {wall:7.2f} s  CPU {cpu:7.2f} s  "
                f"per event {wall * per:5.2f} ms wall, {cpu * per:5.2f} ms CPU"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
