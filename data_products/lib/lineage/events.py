"""Turn one Dagster step into OpenLineage run events.

One OpenLineage job per step: a single-asset step is the job ``<asset key joined by '.'>``, a
multi-asset (a dbt project, say) is one job named after its op whose outputs are all assets
the step materialised, and a step that only runs asset checks is a job whose inputs carry the
check results. The run id is derived from (Dagster run id, step key), so START and
COMPLETE/FAIL, emitted from different hooks or re-emitted, always agree, and anyone holding the
Dagster ids can compute it.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import BaseFacet, InputDatasetFacet, OutputDatasetFacet, RunFacet

from data_products.lib.lineage import facets
from data_products.lib.lineage.naming import REPLICAS_KEY, dataset_from_uri, metadata_value
from data_products.lib.lineage.redaction import redact
from data_products.lib.lineage.step import StepRecord, user_error

# Fixed forever: changing it would re-key every run id already emitted.
_RUN_ID_NAMESPACE = uuid.UUID("6f1d5c8e-3b7a-4c2e-9a41-0d2b8e7f5a13")

JOB_TYPE_ASSET = "ASSET"
JOB_TYPE_ASSET_CHECK = "ASSET_CHECK"


def lineage_run_id(dagster_run_id: str, step_key: str) -> str:
    """The OpenLineage run id of one step of one Dagster run (a name-based UUID)."""
    return str(uuid.uuid5(_RUN_ID_NAMESPACE, f"{dagster_run_id}/{step_key}"))


def dagster_run_uuid(dagster_run_id: str) -> str:
    """Dagster run ids are UUIDs already; keep them so lineage and Dagster share the id."""
    try:
        return str(uuid.UUID(dagster_run_id))
    except ValueError:
        return str(uuid.uuid5(_RUN_ID_NAMESPACE, dagster_run_id))


def lineage_job_name(assets_def: dg.AssetsDefinition, step_key: str) -> str:
    """``commerce.silver.orders`` for a single-asset op, ``<asset>.<check>`` for a lone
    ``@asset_check``, else the step key (the op name of a multi-asset)."""
    specs = list(assets_def.specs)
    if len(specs) == 1 and step_key == assets_def.node_def.name:
        return ".".join(specs[0].key.path)
    check_specs = list(assets_def.check_specs)
    if not specs and len(check_specs) == 1:
        return ".".join([*check_specs[0].asset_key.path, check_specs[0].name])
    return step_key


@dataclass(frozen=True)
class StepContext:
    """Everything about a step that does not come from its event log."""

    assets_def: dg.AssetsDefinition
    job_namespace: str
    dagster_job_name: str
    run_tags: Mapping[str, str]
    # How assets this step did not write are named: spec metadata from the job's asset graph,
    # and the metadata of their latest materialisation (which wins, as it does for outputs),
    # loaded in one batch for all of them.
    graph_metadata: Callable[[dg.AssetKey], Mapping[str, Any]]
    load_latest_metadata: Callable[[list[dg.AssetKey]], Mapping[dg.AssetKey, Mapping[str, Any]]]
    name_dataset: Callable[[dg.AssetKey, Mapping[str, Any]], tuple[str, str]]


def step_output_keys(record: StepRecord) -> list[dg.AssetKey]:
    """What the step was asked to write (its subset, for a multi-asset), then anything else it
    reported writing."""
    return list(dict.fromkeys([*record.planned_keys, *record.materialized]))


def upstream_keys(
    assets_def: dg.AssetsDefinition, step_keys: Iterable[dg.AssetKey]
) -> list[dg.AssetKey]:
    """Deps of the step's asset specs and of its checks, minus the step's own assets.

    A checks-only step reads the asset it checks, so that asset is an input too.
    """
    own = list(step_keys)
    checks_only = not assets_def.specs_by_key
    found: list[dg.AssetKey] = []
    for key in own:
        spec = assets_def.specs_by_key.get(key)
        if spec is not None:
            found.extend(dep.asset_key for dep in spec.deps)
    for check in assets_def.check_specs:
        if checks_only:
            found.append(check.asset_key)
        if checks_only or check.asset_key in own:
            found.extend(dep.asset_key for dep in check.additional_deps)
    return [key for key in dict.fromkeys(found) if key not in own]


class StepLineage:
    """Builds the START and COMPLETE/FAIL events of one step."""

    def __init__(self, record: StepRecord, context: StepContext) -> None:
        self.record = record
        self.ctx = context
        self.assets_def = context.assets_def
        self.output_keys = step_output_keys(record)
        self.input_keys = upstream_keys(self.assets_def, self.output_keys)
        checked = [evaluation.asset_key for evaluation in record.check_evaluations]
        elsewhere = [
            key
            for key in dict.fromkeys([*self.input_keys, *self.output_keys, *checked])
            if key not in record.materialized
        ]
        self._latest = context.load_latest_metadata(elsewhere) if elsewhere else {}
        self._names: dict[dg.AssetKey, tuple[str, str]] = {}

    # -- naming ---------------------------------------------------------------------------

    def spec_metadata(self, key: dg.AssetKey) -> Mapping[str, Any]:
        spec = self.assets_def.specs_by_key.get(key)
        return spec.metadata if spec is not None else self.ctx.graph_metadata(key)

    def metadata(self, key: dg.AssetKey) -> dict[str, Any]:
        """Spec metadata overlaid by what the materialisation reported (it knows best)."""
        reported = self.record.materialized.get(key)
        if reported is None:
            reported = self._latest.get(key, {})
        return {**self.spec_metadata(key), **reported}

    def name_of(self, key: dg.AssetKey) -> tuple[str, str]:
        if key not in self._names:
            self._names[key] = self.ctx.name_dataset(key, self.metadata(key))
        return self._names[key]

    # -- datasets ---------------------------------------------------------------------------

    def _assertions_by_key(self) -> dict[dg.AssetKey, list[dg.AssetCheckEvaluation]]:
        grouped: dict[dg.AssetKey, list[dg.AssetCheckEvaluation]] = {}
        for evaluation in self.record.check_evaluations:
            grouped.setdefault(evaluation.asset_key, []).append(evaluation)
        return grouped

    def _check_metadata(self) -> dict[str, Mapping[str, Any]]:
        return {check.name: check.metadata or {} for check in self.assets_def.check_specs}

    def inputs(self, *, with_assertions: bool) -> list[InputDataset]:
        assertions = self._assertions_by_key() if with_assertions else {}
        keys = list(self.input_keys)
        keys += [key for key in assertions if key not in keys and key not in self.output_keys]
        datasets = []
        for key in keys:
            namespace, name = self.name_of(key)
            input_facets: dict[str, InputDatasetFacet] = {}
            facet = facets.assertions_facet(assertions.get(key, []), self._check_metadata())
            if facet is not None:
                input_facets["dataQualityAssertions"] = facet
            datasets.append(InputDataset(namespace=namespace, name=name, inputFacets=input_facets))
        return datasets

    def planned_outputs(self) -> list[OutputDataset]:
        return [OutputDataset(*self.name_of(key)) for key in self.output_keys]

    def materialized_outputs(self) -> list[OutputDataset]:
        assertions = self._assertions_by_key()
        check_metadata = self._check_metadata()
        datasets: list[OutputDataset] = []
        for key in self.record.materialized:
            metadata = self.metadata(key)
            spec = self.assets_def.specs_by_key.get(key)
            dataset_facets: dict[str, BaseFacet | None] = {
                "schema": facets.schema_facet(metadata),
                "columnLineage": facets.column_lineage_facet(metadata, self.name_of),
                # The spec types this facet for inputs (a test reads a dataset); Dagster checks
                # run on what the step just wrote, so it sits on that output's dataset facets.
                "dataQualityAssertions": facets.assertions_facet(
                    assertions.get(key, []), check_metadata
                ),
                "documentation": facets.documentation_facet(spec.description if spec else None),
                "ownership": facets.ownership_facet(list(spec.owners) if spec else []),
            }
            output_facets: dict[str, OutputDatasetFacet | None] = {
                "outputStatistics": facets.output_statistics_facet(metadata),
                "dataProducts_quarantine": facets.quarantine_facet(metadata),
            }
            # The asset's main table first, then every replica it also published (an Iceberg
            # copy of a DuckDB table, say): same data, so the same facets.
            names = [self.name_of(key)] + [
                dataset_from_uri(uri) for uri in metadata_value(metadata.get(REPLICAS_KEY)) or []
            ]
            datasets.extend(
                OutputDataset(
                    namespace=namespace,
                    name=name,
                    facets=_present(dataset_facets),
                    outputFacets=_present(output_facets),
                )
                for namespace, name in names
            )
        return datasets

    # -- run and job --------------------------------------------------------------------------

    def job(self) -> Job:
        job_type = JOB_TYPE_ASSET if self.assets_def.specs_by_key else JOB_TYPE_ASSET_CHECK
        return Job(
            namespace=self.ctx.job_namespace,
            name=lineage_job_name(self.assets_def, self.record.step_key),
            facets={"jobType": facets.job_type_facet(job_type)},
        )

    def run(self, *, error: tuple[str, str | None] | None = None) -> Run:
        dagster_run = dagster_run_uuid(self.record.run_id)
        run_facets: dict[str, RunFacet | None] = {
            "parent": facets.parent_facet(
                run_id=dagster_run,
                job_namespace=self.ctx.job_namespace,
                job_name=self.ctx.dagster_job_name,
            ),
            "processing_engine": facets.processing_engine_facet(),
            "dataProducts_dagsterStep": facets.DagsterStepRunFacet(
                dagsterRunId=self.record.run_id,
                stepKey=self.record.step_key,
                jobName=self.ctx.dagster_job_name,
                assetKeys=[key.to_user_string() for key in self.output_keys],
                producer=facets.PRODUCER,
            ),
            "dataProducts_partition": facets.partition_facet(self.ctx.run_tags),
            "errorMessage": facets.error_facet(*error) if error else None,
        }
        return Run(
            runId=lineage_run_id(self.record.run_id, self.record.step_key),
            facets=_present(run_facets),
        )

    # -- events -------------------------------------------------------------------------------

    def start_event(self) -> RunEvent:
        return RunEvent(
            eventType=RunState.START,
            eventTime=_iso(self.record.started_at),
            run=self.run(),
            job=self.job(),
            inputs=self.inputs(with_assertions=False),
            outputs=self.planned_outputs(),
            producer=facets.PRODUCER,
        )

    def complete_event(self) -> RunEvent:
        return RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=_iso(self.record.finished_at),
            run=self.run(),
            job=self.job(),
            inputs=self.inputs(with_assertions=True),
            outputs=self.materialized_outputs(),
            producer=facets.PRODUCER,
        )

    def fail_event(self, fallback_error: BaseException | None = None) -> RunEvent:
        """FAIL lists only what the step did write before failing (a blocking check fails the
        step after its asset was written), never the assets it did not get to."""
        return RunEvent(
            eventType=RunState.FAIL,
            eventTime=_iso(self.record.finished_at),
            run=self.run(error=self.error_message(fallback_error)),
            job=self.job(),
            inputs=self.inputs(with_assertions=True),
            outputs=self.materialized_outputs(),
            producer=facets.PRODUCER,
        )

    def error_message(self, fallback: BaseException | None) -> tuple[str, str | None]:
        if self.record.error is not None:
            cause = user_error(self.record.error)
            message = cause.message.strip() or cause.cls_name or "step failed"
            return redact(message), redact(self.record.error.to_string())
        if fallback is not None:
            stack = "".join(traceback.format_exception(fallback))
            return redact(f"{type(fallback).__name__}: {fallback}"), redact(stack)
        return "step failed (no error recorded)", None


def _present(items: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in items.items() if value is not None}


def _iso(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).isoformat()
