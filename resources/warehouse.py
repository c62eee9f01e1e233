"""The DuckDB warehouse resource: one file under the data home, opened per use.

Connections are opened and closed per ``connect()`` block rather than held for the life of the
resource: DuckDB allows one writing process per file, so a connection kept open by one run
would lock every other run (and the CLI) out of the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from data_products.lib.settings import get_settings
from data_products.lib.tables import load_extensions


# ConfigurableResource is generic in the value it hands to assets; a bare subclass hands itself,
# and subscripting it would make pydantic build a second class at run time.
class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """DuckDB warehouse: silver and gold tables in schemas ``<domain>_<layer>``.

    Every field may stay empty; the defaults come from the data home at call time (never at
    import time), so tests and CLI runs switch warehouses with ``DATA_PRODUCTS_HOME``.
    """

    path: str | None = Field(
        default=None,
        description="DuckDB database file; empty: <DATA_PRODUCTS_HOME>/warehouse.duckdb.",
    )
    read_only: bool = Field(
        default=False,
        description="Open read-only: several readers may share the file, no writer may.",
    )
    threads: int | None = Field(
        default=None, ge=1, description="Worker threads; empty: one per core (DuckDB default)."
    )
    memory_limit: str | None = Field(
        default=None,
        description="e.g. '4GB'; empty: DuckDB's default (80% of RAM). Spills to disk beyond it.",
    )
    extensions: list[str] = Field(
        default_factory=list,
        description="Extensions to LOAD from the duckdb-extension-* wheels (httpfs, iceberg...)",
    )

    def database_path(self) -> Path:
        return Path(self.path) if self.path else get_settings().warehouse_path

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for the duration of the block, closed afterwards even on error."""
        path = self.database_path()
        if self.read_only and not path.exists():
            raise FileNotFoundError(
                f"warehouse {path} does not exist: nothing has been materialised into it yet"
            )
        if not self.read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {
            # Offline platform: an unloaded extension must fail at once, not try the network.
            "autoinstall_known_extensions": False,
        }
        if self.threads is not None:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        con = duckdb.connect(str(path), read_only=self.read_only, config=config)
        try:
            if self.extensions:
                load_extensions(con, *self.extensions)
            yield con
        finally:
            con.close()
