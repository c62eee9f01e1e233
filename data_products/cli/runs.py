"""Materialising a slice of the mesh in-process and collecting what every check said.

Shared by ``make demo`` (human summary), ``make checks`` (JUnit for CI gates, see
``data_products.cli.junit``), the domains' demo runners, tests and benchmarks, so all of them
judge a run the same way: a run fails when any ERROR-severity check fails or any step fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg

from data_products.lib.microbatch import RANGES_TAG


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    severity: str
    blocking: bool
    description: str
    metadata: dict[str, str]

    @property
    def is_gate_failure(self) -> bool:
        return not self.passed and self.severity == "ERROR"


@dataclass
class SliceRun:
    run_id: str
    """The run of the slice's partition range (the last run; see :attr:`run_ids`)."""
    success: bool
    partitions: str
    materialized: list[str] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    skipped_assets: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    """Every run of the slice in order: the unpartitioned assets' run first when there is one
    (see :func:`materialize_slice`)."""

    @property
    def gate_failures(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.is_gate_failure]


def materialize_slice(
    defs: dg.Definitions,
    selection: dg.AssetSelection,
    *,
    start: str,
    end: str,
    instance: dg.DagsterInstance,
    log_level: str = "INFO",
    unpartitioned_first: bool = True,
) -> SliceRun:
    """One run over the partition range ``start...end`` (a single-run backfill), in-process.

    Unpartitioned assets of the selection with no partitioned upstream (reference snapshots)
    run first, in a run of their own, as the daemon does for a backfill from the UI: in a range
    run Dagster writes one ``ASSET_MATERIALIZATION_PLANNED`` event per partition for them too
    (9 x 365 of the 7,300 of the aviation year), for assets that are materialised once. The
    range run starts only if that run succeeded and no blocking check failed, as its steps would
    have been skipped in one run. ``unpartitioned_first=False`` runs everything as one run.
    """
    graph = defs.resolve_asset_graph()
    keys = sorted(selection.resolve(graph), key=lambda k: k.to_user_string())
    label = f"{start}...{end}"
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    # An unpartitioned asset fed by a partitioned one (a model trained on a range) runs after
    # the range, in the range run; only those with no partitioned upstream go first.
    after_range = (
        dg.AssetSelection.assets(*partitioned).downstream().resolve(graph) if partitioned else set()
    )
    references = [k for k in keys if graph.get(k).partitions_def is None and k not in after_range]
    ranged = [k for k in keys if k not in references]
    first: SliceRun | None = None
    if unpartitioned_first and references and ranged:
        first = materialize_batch(
            defs, references, instance=instance, label=label, log_level=log_level
        )
        blocked = [c for c in first.checks if c.blocking and not c.passed]
        if not first.success or blocked:
            first.skipped_assets += [k.to_user_string() for k in ranged]
            return first
        keys = ranged
    run = materialize_batch(
        defs,
        keys,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        },
        label=label,
        log_level=log_level,
    )
    if first is None:
        return run
    return SliceRun(
        run_id=run.run_id,
        success=run.success,
        partitions=label,
        materialized=first.materialized + run.materialized,
        checks=first.checks + run.checks,
        failed_steps=first.failed_steps + run.failed_steps,
        skipped_assets=run.skipped_assets,
        run_ids=[first.run_id, run.run_id],
    )


def materialize_batch(
    defs: dg.Definitions,
    keys: Sequence[dg.AssetKey],
    *,
    instance: dg.DagsterInstance,
    tags: Mapping[str, str] | None = None,
    label: str = "batch",
    log_level: str = "INFO",
) -> SliceRun:
    """One in-process run of ``keys`` with ``tags``, judged like a slice run.

    Micro-batch domains (CDC, streams) have no partition range: a batch is identified by its run
    tags (an LSN or offset range), and ``label`` names it in :attr:`SliceRun.partitions`.
    """
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=list(keys),
        tags=dict(tags or {}),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    return collect_run(result, keys, label=label)


def collect_run(
    result: dg.ExecuteInProcessResult, keys: Sequence[dg.AssetKey], *, label: str
) -> SliceRun:
    """What a finished in-process run materialised, which steps failed, what every check said,
    and which selected assets were not materialised (upstream failed or a check blocked)."""
    run = SliceRun(
        run_id=result.run_id, success=result.success, partitions=label, run_ids=[result.run_id]
    )
    for event in result.all_events:
        # ``event_specific_data`` is a union of every event's payload: narrowed by type, not by
        # ``event_type``, so the fields read below are the check evaluation's.
        evaluation = event.event_specific_data
        if event.is_step_materialization and event.asset_key is not None:
            run.materialized.append(event.asset_key.to_user_string())
        elif event.is_step_failure:
            run.failed_steps.append(event.step_key or "?")
        elif isinstance(evaluation, dg.AssetCheckEvaluation):
            run.checks.append(
                CheckOutcome(
                    asset=evaluation.asset_key.to_user_string(),
                    check=evaluation.check_name,
                    passed=evaluation.passed,
                    severity=evaluation.severity.value,
                    blocking=bool(evaluation.blocking),
                    description=evaluation.description or "",
                    metadata={k: _text(v) for k, v in evaluation.metadata.items()},
                )
            )
    done = set(run.materialized)
    run.skipped_assets = sorted(k.to_user_string() for k in keys if k.to_user_string() not in done)
    return run


def _text(value: dg.MetadataValue) -> str:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, str) else str(raw)


def tick_and_run(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    sensor_name: str,
    *,
    cursor: str | None = None,
) -> tuple[list[SliceRun], str | None]:
    """One tick of the sensor ``sensor_name``, then every run it requested executed in-process
    (what the daemon and a run launcher do in production). Returns the runs and the sensor's new
    cursor. A request without an asset selection runs the sensor's own selection, as the daemon
    does; a run is labelled by its micro-batch ranges (``microbatch/ranges``), else its run key.
    """
    sensor = defs.resolve_sensor_def(sensor_name)
    # The sensor gets the code location's resources, as under the daemon (cdc_slot reads the
    # replication slot through the postgres and lake resources).
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        sensor_name=sensor_name,
        resources=defs.resources,
    )
    result = sensor.evaluate_tick(context)
    job = defs.resolve_implicit_global_asset_job_def()
    default_selection: list[dg.AssetKey] = []
    if sensor.asset_selection is not None:
        default_selection = sorted(
            sensor.asset_selection.resolve(defs.resolve_asset_graph()),
            key=lambda key: key.to_user_string(),
        )
    runs = []
    for request in result.run_requests or []:
        selection = (
            list(request.asset_selection)
            if request.asset_selection is not None
            else default_selection
        )
        outcome = job.execute_in_process(
            instance=instance,
            run_config=request.run_config,
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
            asset_selection=selection,
            raise_on_error=False,
        )
        label = request.tags.get(RANGES_TAG) or f"run key {request.run_key}"
        runs.append(collect_run(outcome, selection, label=label))
    return runs, result.cursor if result.cursor is not None else cursor
