"""OpenLineage facets built from Dagster metadata, and the few custom facets we add.

Standard facets are used wherever the spec has one, because that is what Marquez and other
consumers render; custom facets (prefixed ``dataProducts_``, as the spec asks of custom facets)
carry only what the spec has no home for: partitions, the Dagster step, quarantined rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attr
import dagster as dg
from openlineage.client.facet_v2 import (
    OutputDatasetFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    documentation_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)

from data_products.lib.lineage.naming import metadata_value


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "0+unknown"


# The producer and custom-facet schema URLs must be URIs that identify this code. Change
# PROJECT_URL when the repository gets its public home; consumers only compare them as strings.
PROJECT_URL = "https://github.com/data-products/data-products"
PRODUCER = f"{PROJECT_URL}/tree/v{_package_version('data-products')}/data_products/lib/lineage"
_FACET_SCHEMA_BASE = f"{PROJECT_URL}/blob/main/data_products/lib/lineage/facets.py"

ROW_COUNT_KEY = "dagster/row_count"
RUN_ROWS_KEY = "run_rows"
"""A range run's total rows, where each partition's event carries that partition's own
``dagster/row_count`` (bronze); lineage describes the run, so the total wins."""
COLUMN_SCHEMA_KEY = "dagster/column_schema"
COLUMN_LINEAGE_KEY = "dagster/column_lineage"
QUARANTINED_ROWS_KEY = "quarantined_rows"
# Check metadata entries that name the column a check is about (contract checks set one).
CHECK_COLUMN_KEYS = ("column", "column_name")


@attr.define
class PartitionRunFacet(RunFacet):
    """The Dagster partition (or single-run partition range) this run covered."""

    partitionKey: str | None = attr.field(default=None)
    partitionRangeStart: str | None = attr.field(default=None)
    partitionRangeEnd: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{_FACET_SCHEMA_BASE}#PartitionRunFacet"


@attr.define
class DagsterStepRunFacet(RunFacet):
    """Where this OpenLineage run came from in Dagster, to link back from a lineage view."""

    dagsterRunId: str
    stepKey: str
    jobName: str
    assetKeys: list[str] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return f"{_FACET_SCHEMA_BASE}#DagsterStepRunFacet"


@attr.define
class QuarantineOutputDatasetFacet(OutputDatasetFacet):
    """Rows this run rejected into the quarantine table instead of publishing."""

    quarantinedRowCount: int

    @staticmethod
    def _get_schema() -> str:
        return f"{_FACET_SCHEMA_BASE}#QuarantineOutputDatasetFacet"


def job_type_facet(job_type: str) -> job_type_job.JobTypeJobFacet:
    return job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration="DAGSTER", jobType=job_type, producer=PRODUCER
    )


def processing_engine_facet() -> processing_engine_run.ProcessingEngineRunFacet:
    return processing_engine_run.ProcessingEngineRunFacet(
        name="Dagster",
        version=dg.__version__,
        openlineageAdapterVersion=_package_version("openlineage-python"),
        producer=PRODUCER,
    )


def parent_facet(*, run_id: str, job_namespace: str, job_name: str) -> parent_run.ParentRunFacet:
    """The Dagster run is both parent and root: asset steps are its only children."""
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_id),
        job=parent_run.Job(namespace=job_namespace, name=job_name),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=run_id),
            job=parent_run.RootJob(namespace=job_namespace, name=job_name),
        ),
        producer=PRODUCER,
    )


def partition_facet(tags: Mapping[str, str]) -> PartitionRunFacet | None:
    """From the run's tags: ``dagster/partition`` or the single-run range tags."""
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return PartitionRunFacet(
            partitionRangeStart=start, partitionRangeEnd=end, producer=PRODUCER
        )
    key = tags.get("dagster/partition")
    if key:
        return PartitionRunFacet(partitionKey=key, producer=PRODUCER)
    return None


def error_facet(message: str, stack_trace: str | None) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="python", stackTrace=stack_trace, producer=PRODUCER
    )


def schema_facet(metadata: Mapping[str, Any]) -> schema_dataset.SchemaDatasetFacet | None:
    schema = metadata_value(metadata.get(COLUMN_SCHEMA_KEY))
    if not isinstance(schema, dg.TableSchema):
        return None
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(
                name=column.name,
                type=column.type,
                description=column.description,
                ordinal_position=position,
            )
            for position, column in enumerate(schema.columns, start=1)
        ],
        producer=PRODUCER,
    )


def output_statistics_facet(
    metadata: Mapping[str, Any],
) -> output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet | None:
    row_count = metadata_value(metadata.get(RUN_ROWS_KEY, metadata.get(ROW_COUNT_KEY)))
    if row_count is None:
        return None
    return output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=int(row_count), producer=PRODUCER
    )


def quarantine_facet(metadata: Mapping[str, Any]) -> QuarantineOutputDatasetFacet | None:
    quarantined = metadata_value(metadata.get(QUARANTINED_ROWS_KEY))
    if quarantined is None:
        return None
    return QuarantineOutputDatasetFacet(quarantinedRowCount=int(quarantined), producer=PRODUCER)


def column_lineage_facet(
    metadata: Mapping[str, Any],
    name_of: Callable[[dg.AssetKey], tuple[str, str]],
) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
    """Each output column → the input fields it was computed from, with inputs named
    physically by ``name_of`` so the facet joins with the event's input datasets."""
    lineage = metadata_value(metadata.get(COLUMN_LINEAGE_KEY))
    if not isinstance(lineage, dg.TableColumnLineage):
        return None
    fields: dict[str, column_lineage_dataset.Fields] = {}
    for column, deps in lineage.deps_by_column.items():
        input_fields = []
        for dep in deps:
            namespace, name = name_of(dep.asset_key)
            input_fields.append(
                column_lineage_dataset.InputField(
                    namespace=namespace, name=name, field=dep.column_name
                )
            )
        fields[column] = column_lineage_dataset.Fields(inputFields=input_fields)
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def assertions_facet(
    evaluations: Sequence[dg.AssetCheckEvaluation],
    check_metadata: Mapping[str, Mapping[str, Any]],
) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet | None:
    """One assertion per check evaluation. The column comes from the evaluation's metadata, else
    from the check spec's (``check_metadata`` by check name)."""
    if not evaluations:
        return None
    assertions = []
    for evaluation in evaluations:
        column = _check_column(evaluation.metadata) or _check_column(
            check_metadata.get(evaluation.check_name, {})
        )
        assertions.append(
            data_quality_assertions_dataset.Assertion(
                assertion=evaluation.check_name,
                success=evaluation.passed,
                column=column,
                severity=evaluation.severity.value.lower(),
                name=evaluation.check_name,
                description=evaluation.description,
            )
        )
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=assertions, producer=PRODUCER
    )


def _check_column(metadata: Mapping[str, Any]) -> str | None:
    for key in CHECK_COLUMN_KEYS:
        value = metadata_value(metadata.get(key))
        if value:
            return str(value)
    return None


def documentation_facet(
    description: str | None,
) -> documentation_dataset.DocumentationDatasetFacet | None:
    if not description:
        return None
    return documentation_dataset.DocumentationDatasetFacet(
        description=description, producer=PRODUCER
    )


def ownership_facet(owners: Sequence[str]) -> ownership_dataset.OwnershipDatasetFacet | None:
    if not owners:
        return None
    return ownership_dataset.OwnershipDatasetFacet(
        owners=[ownership_dataset.Owner(name=owner) for owner in owners], producer=PRODUCER
    )
