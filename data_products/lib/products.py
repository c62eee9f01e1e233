"""Asset factories for data products: a domain declares *what* (a landing dataset here; a
contract, inputs and a pure build function in ``data_products.lib.silver``); the factories do the
*how* once for every domain.

Every factory produces assets that follow the key grammar, carry owner/kinds/tags from the domain
descriptor or the contract, and use ``BackfillPolicy.single_run()`` so a range runs as one run.
"""

from collections.abc import Sequence
from datetime import date

import dagster as dg

from data_products.lib.domains import domain as domain_descriptor
from data_products.lib.keys import DatasetName
from data_products.lib.landing import drop_files, read_landing
from data_products.lib.partitions import SINGLE_RUN, describe_keys, run_partition_keys
from data_products.lib.settings import get_settings
from data_products.lib.tables.files import lake_files
from resources.warehouse import WarehouseResource

WAREHOUSE_POOL = "warehouse"
"""DuckDB has a single writer: every asset that writes the warehouse shares this pool."""

QUARANTINE_ROLE_TAG = "data_products/role"


def _owners(domain: str) -> list[str]:
    return [domain_descriptor(domain).owner]


def _partition_values(keys: Sequence[str]) -> list[date]:
    return [date.fromisoformat(key) for key in keys]


def bronze_landing_asset(
    domain: str,
    dataset: str,
    *,
    partitions_def: dg.PartitionsDefinition,
    description: str,
) -> dg.AssetsDefinition:
    """``<domain>/bronze/<dataset>``: every drop file of the run's days, as delivered.

    Re-ingesting a day replaces that day (idempotent); a day with no drop is an error that names
    the folder, because an empty bronze partition would silently publish an empty silver one.
    """
    name = DatasetName(domain, "bronze", dataset)

    @dg.asset(
        key=name.asset_key,
        group_name=domain,
        owners=_owners(domain),
        description=description,
        kinds={"polars", "duckdb", "csv"},
        tags={"layer": "bronze", "tier": "raw"},
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        pool=WAREHOUSE_POOL,
        metadata={"dagster/table_name": f"warehouse.{name.table}"},
    )
    def _bronze(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        keys = run_partition_keys(context)
        landing = get_settings().landing
        missing = [k for k in keys if not drop_files(landing, domain, dataset, k)]
        if missing:
            folders = ", ".join(str(landing / domain / k) for k in missing[:5])
            raise FileNotFoundError(
                f"{name}: no {dataset}*.csv drop for partition(s) "
                f"{describe_keys(missing)} (looked in {folders})"
            )
        rows = files = replaced = 0
        store = lake_files()
        with warehouse.connect() as con:
            # One day at a time: a day is the unit of atomic replacement, and a range run's
            # memory stays that of its largest day.
            for key in keys:
                read = read_landing(landing, domain, dataset, [key])
                written = store.replace_partitions(
                    con, name, read.frame, partition_values=_partition_values([key])
                )
                rows += written.rows_written
                files += len(read.files)
                replaced += written.rows_replaced
                # Dagster writes one materialisation per partition of a range, each with the
                # step's metadata: what differs per day (rows, the day's files) goes on that
                # day's event only, so a year's run does not copy the year's file list 365 times.
                context.add_asset_metadata(
                    {
                        "dagster/row_count": dg.MetadataValue.int(written.rows_written),
                        "rows_replaced": dg.MetadataValue.int(written.rows_replaced),
                        "files": dg.MetadataValue.json(read.files),
                    },
                    partition_key=key,
                )
        partitions = describe_keys(keys)
        context.log.info(f"{name} {partitions}: {files} file(s), {rows} rows")
        return dg.MaterializeResult(
            metadata={
                **written.metadata(),
                "dagster/row_count": dg.MetadataValue.int(rows),
                "rows_replaced": dg.MetadataValue.int(replaced),
                "partition_range": partitions,
                "partitions": partitions,
                "run_rows": dg.MetadataValue.int(rows),
                "run_files": dg.MetadataValue.int(files),
            }
        )

    return _bronze
