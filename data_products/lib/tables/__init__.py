"""The table writers: atomic, idempotent partition (and range) replaces in DuckDB, in Parquet
files under the lake (bronze and silver, with warehouse views; see ``files``) and in Iceberg.

Every dataset write in the platform goes through here, so the rules are enforced once:
identifiers and partition keys validated before any SQL or path, every row inside the partitions
being replaced, one transaction (DuckDB) or one commit (Iceberg) per write, additive schema
evolution with lossless widening only, and a :class:`WriteResult` whose ``metadata()`` is what the
asset reports.

``IcebergTables`` is imported lazily: pyiceberg costs about a second to import and most assets
only write DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data_products.lib.tables._common import (
    PartitionMismatchError,
    PartitionValue,
    SchemaEvolutionError,
    TableNotFoundError,
    TableWriteError,
    WriteResult,
    column_schema,
)
from data_products.lib.tables.duckdb import (
    parallel_scan,
    partition_row_counts,
    read_partitions,
    read_table,
    replace_partitions,
    replace_table,
    table_exists,
)
from data_products.lib.tables.extensions import KNOWN_EXTENSIONS, extension_path, load_extensions
from data_products.lib.tables.files import PartitionedFiles

if TYPE_CHECKING:
    from data_products.lib.tables.iceberg import IcebergTables

__all__ = [
    "KNOWN_EXTENSIONS",
    "IcebergTables",
    "PartitionMismatchError",
    "PartitionValue",
    "PartitionedFiles",
    "SchemaEvolutionError",
    "TableNotFoundError",
    "TableWriteError",
    "WriteResult",
    "column_schema",
    "extension_path",
    "load_extensions",
    "parallel_scan",
    "partition_row_counts",
    "read_partitions",
    "read_table",
    "replace_partitions",
    "replace_table",
    "table_exists",
]


def __getattr__(name: str) -> Any:
    if name == "IcebergTables":
        from data_products.lib.tables.iceberg import IcebergTables

        return IcebergTables
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
