"""The platform's event log storage records exactly what Dagster's stock SQLite storage records
(the same events, per-partition materialisations, tags, asset records, failed partitions), writes
Dagster's event batches through its one-transaction path, and still wakes the UI's run watcher."""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from data_products.lib.compat.dagster import PooledSqliteEventLogStorage
from data_products.lib.instance import ensure_dagster_home

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-11")
START, END = "2024-01-01", "2024-01-10"
SINGLE_RUN = dg.BackfillPolicy.single_run()
FAIL_TAG = "test/fail"


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN)
def drops(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for key in context.partition_keys:
        context.add_asset_metadata({"dagster/row_count": int(key[-2:])}, partition_key=key)
    return dg.MaterializeResult(metadata={"run_rows": len(context.partition_keys)})


@dg.asset(
    partitions_def=DAYS,
    backfill_policy=SINGLE_RUN,
    deps=[drops],
    check_specs=[dg.AssetCheckSpec("has_rows", asset="summary")],
)
def summary(context: dg.AssetExecutionContext) -> Iterator[Any]:
    yield dg.MaterializeResult(metadata={"days": len(context.partition_keys)})
    yield dg.AssetCheckResult(passed=True, metadata={"rows": 1})


@dg.asset(backfill_policy=SINGLE_RUN)
def snapshot() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN, deps=[drops])
def fragile(context: dg.AssetExecutionContext) -> None:
    if context.run.tags.get(FAIL_TAG):
        raise ValueError("broken on purpose")


ASSETS = [drops, summary, snapshot, fragile]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": START,
    "dagster/asset_partition_range_end": END,
}


def _stock_instance(root: Path) -> dg.DagsterInstance:
    """Dagster's default storage: a dagster.yaml that names none."""
    root.mkdir(parents=True)
    (root / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(root))


def _platform_instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(ensure_dagster_home()))


def _run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    result = dg.materialize(ASSETS, instance=instance, tags=tags, raise_on_error=False)
    return result.run_id


def _observed(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> dict[str, Any]:
    """What the UI reads back, with ids and timestamps left out."""
    seen: dict[str, Any] = {}
    for run_id in run_ids:
        records = instance.get_records_for_run(run_id, limit=100_000).records
        seen[f"events {len(seen)}"] = Counter(
            r.event_log_entry.dagster_event_type.value
            if r.event_log_entry.dagster_event_type
            else "LOG"
            for r in records
        )
    for key in (drops.key, summary.key, fragile.key):
        seen[f"{key} materialised"] = sorted(instance.get_materialized_partitions(key))
        status = get_and_update_asset_status_cache_value(instance, key, DAYS)
        assert status is not None
        seen[f"{key} failed"] = sorted(
            status.deserialize_failed_partition_subsets(DAYS).get_partition_keys()
        )
        record = instance.get_asset_records([key])[0].asset_entry
        seen[f"{key} last partition"] = record.last_materialization_record.partition_key
        seen[f"{key} tag rows"] = len(instance.event_log_storage.get_event_tags_for_asset(key))
    seen["drops rows by day"] = {
        day: instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=drops.key, asset_partitions=[day]), limit=1
        )
        .records[0]
        .asset_materialization.metadata["dagster/row_count"]
        .value
        for day in DAYS.get_partition_keys()
    }
    check_key = dg.AssetCheckKey(summary.key, "has_rows")
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])
    seen["check"] = {k.name: v.status.value for k, v in latest.items()}
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1000)
    seen["check rows"] = sorted(
        (str(r.partition), r.status.value, r.event.dagster_event_type.value if r.event else None)
        for r in history
    )
    seen["snapshot rows"] = (
        instance.get_latest_materialization_event(snapshot.key)
        .asset_materialization.metadata["dagster/row_count"]
        .value
    )
    return seen


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batches Dagster hands to the platform storage."""
    sizes: list[int] = []
    original = PooledSqliteEventLogStorage.store_event_batch

    def counting(self: PooledSqliteEventLogStorage, events: Sequence[Any]) -> None:
        sizes.append(len(events))
        original(self, events)

    monkeypatch.setattr(PooledSqliteEventLogStorage, "store_event_batch", counting)
    return sizes


def test_the_platform_storage_records_what_the_stock_storage_records(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches: list[int]
) -> None:
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    with _platform_instance() as platform:
        assert isinstance(platform.event_log_storage, PooledSqliteEventLogStorage)
        # building the storage turned Dagster's batching on, or the batch path would be idle
        assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 0
        ours = [_run(platform, RANGE_TAGS), _run(platform, {**RANGE_TAGS, FAIL_TAG: "1"})]
        observed = _observed(platform, ours)
    with _stock_instance(tmp_path / "stock") as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        theirs = [_run(stock, RANGE_TAGS), _run(stock, {**RANGE_TAGS, FAIL_TAG: "1"})]
        expected = _observed(stock, theirs)

    assert observed == expected
    every_day = DAYS.get_partition_keys()
    assert observed["AssetKey(['drops']) materialised"] == every_day
    assert observed["AssetKey(['fragile']) failed"] == every_day
    assert observed["drops rows by day"] == {day: int(day[-2:]) for day in every_day}
    # planned events (4 assets x 10 days + the check) and each output's 10 partitions
    assert max(batches) >= 40 and batches.count(len(every_day)) >= 2, batches


def test_a_run_watcher_sees_events_written_on_a_kept_open_connection(data_home: Path) -> None:
    """The UI follows a running run through ``watch`` (a file watcher on the run's .db)."""
    with _platform_instance() as instance:
        run_id = _run(instance, RANGE_TAGS)
        storage = instance.event_log_storage
        last = instance.get_records_for_run(run_id, limit=100_000).cursor
        seen = threading.Event()
        messages: list[str] = []

        def callback(entry: Any, _cursor: str) -> None:
            messages.append(entry.message)
            seen.set()

        storage.watch(run_id, last, callback)
        try:
            run = instance.get_run_by_id(run_id)
            instance.report_engine_event("written after the watch began", run)
            assert seen.wait(timeout=30), "the watcher was not woken"
        finally:
            storage.end_watch(run_id, callback)
        assert messages == ["written after the watch began"]


def test_the_instance_opens_by_its_folder_without_dagster_home(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripts and the UI-backfill check open the instance by folder from a plain process."""
    home = ensure_dagster_home()
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert Path(instance.event_log_storage._base_dir).is_relative_to(home)
