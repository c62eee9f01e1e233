"""dbt-duckdb internals (written against dbt-duckdb 1.11.1).

``tests/lib/test_compat.py`` fails when the installed dbt-duckdb is not the version below or
when the private class attribute used here is gone: re-check this module then.

``release_warehouse``: close the DuckDB connection dagster-dbt's in-process adapter keeps after a
run. Row counts and column metadata are read through a dbt adapter opened read-only in *this*
process, and dbt-duckdb caches that database handle at class level (``_ENV`` of its connection
manager) for the life of the process. Left open, it locks every other process out of writing
the warehouse and makes any differently configured connection in this one (the next asset's
write) fail with "Can't open a connection to same database file with a different
configuration". dbt-duckdb has no public close.
"""

from __future__ import annotations

from dagster_dbt import DbtCliInvocation

WRITTEN_AGAINST = "1.11.1"
"""The dbt-duckdb version this module's private name was read from."""

CACHED_ENVIRONMENT = "_ENV"
"""The class attribute of ``dbt.adapters.duckdb.connections.DuckDBConnectionManager`` that holds
the process-wide database handle."""


def release_warehouse(invocation: DbtCliInvocation) -> None:
    """Close the adapter's connections and dbt-duckdb's cached database handle, if any."""
    adapter = invocation.adapter
    if adapter is None:
        return
    adapter.cleanup_connections()
    manager = type(adapter.connections)
    environment = getattr(manager, CACHED_ENVIRONMENT, None)
    if environment is not None:
        environment.close()
        manager.close_all_connections()  # type: ignore[attr-defined]  # defined by the adapter subclass dbt-duckdb registers, not on the base type
