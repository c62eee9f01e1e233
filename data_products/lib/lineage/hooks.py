"""``with_lineage``: attach the OpenLineage emitter to an AssetsDefinition as step hooks.

Hooks (not a sensor or a run-status daemon) because they run in the step's own process right
after the step, under ``dg.materialize``, the CLI and ``dagster dev`` alike, with nothing extra
to start. The success hook emits START then COMPLETE, the failure hook START then FAIL; START is
back-dated to the step's STEP_START. Emission never fails or retries the run: any error becomes
one warning in the run's log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from openlineage.client.client import OpenLineageClient
from openlineage.client.transport.noop import NoopTransport

from data_products.lib.lineage.events import StepContext, StepLineage
from data_products.lib.lineage.naming import physical_dataset
from data_products.lib.lineage.redaction import redact
from data_products.lib.lineage.step import latest_materialization_metadata, read_step_record
from data_products.lib.lineage.transport import build_transport
from data_products.lib.settings import Settings, get_settings

SUCCESS_HOOK_PREFIX = "openlineage_success__"
FAILURE_HOOK_PREFIX = "openlineage_failure__"
# The client would add a sourceCodeLocation facet from .git/config, whose remote URL can embed
# a token; we leave it out rather than risk a credential in every event.
_CLIENT_CONFIG: dict[str, Any] = {"facets": {"source_code_location": {"disabled": True}}}


def with_lineage(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """``assets_def`` with OpenLineage success and failure hooks on its step.

    Definitions without a computation (external assets) are returned unchanged, and so is a
    definition that already has the hooks, so applying the policy twice emits once.
    """
    if not assets_def.is_executable:
        return assets_def
    node_name = assets_def.node_def.name
    if any(hook.name.startswith(SUCCESS_HOOK_PREFIX) for hook in assets_def.hook_defs):
        return assets_def

    # Named after the node, which is unique in a code location: distinct HookDefinitions
    # sharing a name would be ambiguous in the run's hook events.
    @dg.success_hook(name=f"{SUCCESS_HOOK_PREFIX}{node_name}")
    def _on_success(context: dg.HookContext) -> None:
        _emit_safely(context, assets_def, failed=False)

    @dg.failure_hook(name=f"{FAILURE_HOOK_PREFIX}{node_name}")
    def _on_failure(context: dg.HookContext) -> None:
        _emit_safely(context, assets_def, failed=True)

    return assets_def.with_hooks({_on_success, _on_failure})


def _emit_safely(context: dg.HookContext, assets_def: dg.AssetsDefinition, *, failed: bool) -> None:
    try:
        emit_step_lineage(context, assets_def, failed=failed)
    except Exception as exc:  # lineage must never fail or retry a run
        context.log.warning(
            redact(
                f"OpenLineage: no lineage emitted for step {context.step_key!r} of run "
                f"{context.run_id}: {type(exc).__name__}: {exc}"
            )
        )


def emit_step_lineage(
    context: dg.HookContext,
    assets_def: dg.AssetsDefinition,
    *,
    failed: bool,
    settings: Settings | None = None,
) -> None:
    """Emit START and COMPLETE (or FAIL) for the hook's step; raises on any error."""
    settings = settings or get_settings()
    transport = build_transport(settings)
    if isinstance(transport, NoopTransport):
        return
    instance = context.instance
    record = read_step_record(instance, context.run_id, context.step_key)
    run = instance.get_run_by_id(context.run_id)

    def name_dataset(key: dg.AssetKey, metadata: Mapping[str, Any]) -> tuple[str, str]:
        return physical_dataset(key, metadata, settings=settings)

    lineage = StepLineage(
        record,
        StepContext(
            assets_def=assets_def,
            job_namespace=settings.lineage_namespace,
            dagster_job_name=context.job_name,
            run_tags=dict(run.tags) if run is not None else {},
            graph_metadata=_asset_graph_metadata(context),
            load_latest_metadata=lambda keys: latest_materialization_metadata(instance, keys),
            name_dataset=name_dataset,
        ),
    )
    client = OpenLineageClient(transport=transport, config=_CLIENT_CONFIG)
    client.emit(lineage.start_event())
    client.emit(lineage.fail_event(context.op_exception) if failed else lineage.complete_event())


def _asset_graph_metadata(context: dg.HookContext) -> Callable[[dg.AssetKey], Mapping[str, Any]]:
    """Spec metadata of any asset in the job, for naming upstream assets defined elsewhere.

    HookContext has no public handle on the job's asset graph; this reads it through the step
    context (dagster is pinned exactly). If that ever breaks, names fall back to the upstream
    asset's latest materialisation metadata and then to the key grammar.
    """
    try:
        graph = context._step_execution_context.job_def.asset_layer.asset_graph
    except AttributeError:
        return lambda _key: {}

    def lookup(key: dg.AssetKey) -> Mapping[str, Any]:
        return graph.get(key).metadata if graph.has(key) else {}

    return lookup
