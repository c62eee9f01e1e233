"""What the Dagster instance recorded about one step of one run.

Hooks run after the step, in the step's process, with the instance the run writes to, so the
event log already holds the step's start time, its materialisations and check results, and
its failure. Reading them there (rather than from the hook's in-memory event list) works the
same for ``dg.materialize``, the CLI and the multiprocess executor.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

_STEP_EVENT_TYPES = {
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
_CACHED_RUNS = 4
"""Runs whose step events one process keeps (a process runs one run at a time; a few spare)."""
# Dagster wraps user exceptions in this; the cause is what the asset author raised.
_WRAPPER_ERRORS = frozenset({dg.DagsterExecutionStepExecutionError.__name__})


@dataclass(frozen=True)
class StepRecord:
    """One step's events, reduced to what lineage needs."""

    run_id: str
    step_key: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    planned_keys: tuple[dg.AssetKey, ...] = ()
    # Last materialisation metadata per asset, in materialisation order. A single-run
    # partition range records one materialisation per partition with the run's metadata
    # repeated, so the last one stands for all of them (summing row counts would overcount);
    # where each partition carries its own count, the run total is ``run_rows``.
    materialized: Mapping[dg.AssetKey, Mapping[str, Any]] = field(default_factory=dict)
    check_evaluations: tuple[dg.AssetCheckEvaluation, ...] = ()
    error: SerializableErrorInfo | None = None


def read_step_record(instance: dg.DagsterInstance, run_id: str, step_key: str) -> StepRecord:
    started_at = finished_at = None
    planned: list[dg.AssetKey] = []
    materialized: dict[dg.AssetKey, Mapping[str, Any]] = {}
    evaluations: list[dg.AssetCheckEvaluation] = []
    error = None
    for entry in _run_events(instance, run_id).step_entries(step_key):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            # A retried step starts again; the last attempt is the one that finished.
            started_at = _utc(entry.timestamp)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            key = event.asset_materialization_planned_data.asset_key
            if key not in planned:
                planned.append(key)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            materialized.pop(materialization.asset_key, None)
            materialized[materialization.asset_key] = materialization.metadata
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluations.append(event.asset_check_evaluation_data)
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            finished_at = _utc(entry.timestamp)
        elif kind == dg.DagsterEventType.STEP_FAILURE:
            finished_at = _utc(entry.timestamp)
            error = event.step_failure_data.error
    return StepRecord(
        run_id=run_id,
        step_key=step_key,
        started_at=started_at,
        finished_at=finished_at,
        planned_keys=tuple(planned),
        materialized=materialized,
        check_evaluations=tuple(evaluations),
        error=error,
    )


class _RunEvents:
    """A run's step events read so far, by step, and where reading stopped.

    The lineage hook runs after every step; reading the whole run each time made it quadratic
    (2.3 s of CPU per step over a year's backfill). Each call now reads only events recorded
    since the previous one.
    """

    def __init__(self, instance: dg.DagsterInstance, run_id: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.cursor: str | None = None
        self.by_step: dict[str, list[dg.EventLogEntry]] = {}

    def step_entries(self, step_key: str) -> list[dg.EventLogEntry]:
        connection = self.instance.get_records_for_run(
            self.run_id, cursor=self.cursor, of_type=_STEP_EVENT_TYPES
        )
        for record in connection.records:
            entry = record.event_log_entry
            if entry.step_key is not None:
                self.by_step.setdefault(entry.step_key, []).append(entry)
        self.cursor = connection.cursor or self.cursor
        return self.by_step.get(step_key, [])


_runs: OrderedDict[tuple[int, str], _RunEvents] = OrderedDict()


def _run_events(instance: dg.DagsterInstance, run_id: str) -> _RunEvents:
    key = (id(instance), run_id)
    cached = _runs.get(key)
    if cached is None or cached.instance is not instance:
        cached = _runs[key] = _RunEvents(instance, run_id)
    _runs.move_to_end(key)
    while len(_runs) > _CACHED_RUNS:
        _runs.popitem(last=False)
    return cached


def latest_materialization_metadata(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetKey]
) -> dict[dg.AssetKey, Mapping[str, Any]]:
    """Metadata of each key's latest materialisation: how an upstream asset last reported its
    physical location, so an input is named exactly as its producer named its output."""
    keys = list(keys)
    if not keys:  # get_asset_records treats "no keys" as "all keys"
        return {}
    metadata: dict[dg.AssetKey, Mapping[str, Any]] = {}
    for record in instance.get_asset_records(keys):
        entry = record.asset_entry.last_materialization
        if entry is not None and entry.asset_materialization is not None:
            metadata[record.asset_entry.asset_key] = entry.asset_materialization.metadata
    return metadata


def user_error(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The exception the asset raised, under Dagster's step-execution wrapper."""
    while error.cls_name in _WRAPPER_ERRORS and error.cause is not None:
        error = error.cause
    return error


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
