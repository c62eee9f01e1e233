"""What the platform's factories need from the warehouse and the lake, as Protocols.

``data_products.lib`` must not import ``resources`` (the resources depend on lib, not the other
way round). The factories declare ``required_resource_keys`` and read
``context.resources.warehouse`` / ``context.resources.lake``; Dagster injects whatever the code
location binds under those keys (``resources.WarehouseResource`` and ``resources.LakeResource``
in this project), and these Protocols say which methods lib calls on them, so a type checker
verifies the binding without an import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb

if TYPE_CHECKING:
    from data_products.lib.tables.iceberg import IcebergTables

WAREHOUSE_KEY = "warehouse"
"""The resource key of the DuckDB warehouse."""
LAKE_KEY = "lake"
"""The resource key of the lake (Iceberg catalog, Delta root)."""


class Warehouse(Protocol):
    """The DuckDB warehouse: one connection per step, one writer at a time (the pool)."""

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def database_path(self) -> Path: ...


class Lake(Protocol):
    """The lake: the Iceberg tables the silver factory replicates to."""

    def iceberg(self) -> IcebergTables: ...
