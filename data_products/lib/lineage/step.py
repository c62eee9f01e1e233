"""What the Dagster instance recorded about one step of one run.

Hooks run after the step, in the step's process, with the instance the run writes to, so the
event log already holds the step's start time, its materialisations and check results, and
its failure. Reading them there (rather than from the hook's in-memory event list) works the
same for ``dg.materialize``, the CLI and the multiprocess executor.
"""

from __future__ import annotations

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
    # repeated, so the last one stands for all of them (summing row counts would overcount).
    materialized: Mapping[dg.AssetKey, Mapping[str, Any]] = field(default_factory=dict)
    check_evaluations: tuple[dg.AssetCheckEvaluation, ...] = ()
    error: SerializableErrorInfo | None = None


def read_step_record(instance: dg.DagsterInstance, run_id: str, step_key: str) -> StepRecord:
    started_at = finished_at = None
    planned: list[dg.AssetKey] = []
    materialized: dict[dg.AssetKey, Mapping[str, Any]] = {}
    evaluations: list[dg.AssetCheckEvaluation] = []
    error = None
    for entry in instance.all_logs(run_id, of_type=_STEP_EVENT_TYPES):
        event = entry.dagster_event
        if event is None or entry.step_key != step_key:
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
