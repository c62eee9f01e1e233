"""The OpenLineage emitter applied to every asset: ``with_lineage`` attaches it,
``physical_dataset`` names datasets, ``read_events`` reads what the file transport wrote.

Modules, one job each: ``naming`` (physical dataset names), ``facets`` (Dagster metadata →
facets), ``step`` (what the instance recorded about a step), ``events`` (step → run events),
``transport`` (where events go), ``redaction`` (secrets out), ``hooks`` (the Dagster wiring).
"""

from data_products.lib.lineage.events import dagster_run_uuid, lineage_job_name, lineage_run_id
from data_products.lib.lineage.hooks import emit_step_lineage, with_lineage
from data_products.lib.lineage.naming import dataset_from_uri, physical_dataset
from data_products.lib.lineage.transport import (
    DailyFileTransport,
    LineageConfigError,
    build_transport,
    read_events,
)

__all__ = [
    "DailyFileTransport",
    "LineageConfigError",
    "build_transport",
    "dagster_run_uuid",
    "dataset_from_uri",
    "emit_step_lineage",
    "lineage_job_name",
    "lineage_run_id",
    "physical_dataset",
    "read_events",
    "with_lineage",
]
