"""Everything a run leaves in the lake and the warehouse, captured so that two runs can be compared.

Re-run tests (a partition materialised again, a batch replayed after a crash) must see every place
a run writes: DuckDB base tables *and* views (bronze and silver are Parquet files behind views),
every Iceberg table of the catalog and every Delta table under the Delta root. Comparing only
``duckdb_tables()`` left the Parquet, Iceberg and Delta data unchecked.

Two things legitimately differ between two clean runs and are left out:

- load-time columns: by the platform's convention their names start with ``_`` and end with
  ``_at`` (``_ingested_at``, ``_quarantined_at``, ``_trained_at``, ...). Other ``_`` columns
  (``_source_file``, ``_row_hash``, ``_cdc_key``, ``_extra_columns``) are data and are compared;
- row order: rows are sorted on every column, then on a row hash for the columns that cannot be
  sorted (lists, structs).

``assert_same_snapshot`` names every dataset that appeared, vanished or changed, with a sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl
from deltalake import DeltaTable
from pyiceberg.catalog import Catalog

from data_products.lib.settings import Settings
from resources.lake import LakeResource

Snapshot = dict[str, pl.DataFrame]
"""Dataset name (``duckdb:schema.name``, ``iceberg:namespace.name``, ``delta:relative/path``) →
its rows, load-time columns dropped, sorted."""

_UNSORTABLE = (pl.List, pl.Array, pl.Struct, pl.Object)
_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")


def is_load_time_column(name: str) -> bool:
    """``_<event>_at``: when the platform loaded, quarantined or trained; differs on every run."""
    return name.startswith("_") and name.endswith("_at")


def normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` without load-time columns, its rows in one deterministic order."""
    frame = frame.drop([c for c in frame.columns if is_load_time_column(c)])
    if not frame.columns:
        return frame
    sortable = [c for c, t in frame.schema.items() if not isinstance(t, _UNSORTABLE)]
    keyed = frame.with_columns(frame.hash_rows(seed=0).alias("__row_hash"))
    return keyed.sort([*sortable, "__row_hash"], nulls_last=True).drop("__row_hash")


def warehouse_datasets(path: Path, *, schema_prefix: str = "") -> Snapshot:
    """Every base table and view of the DuckDB file at ``path`` (none if it does not exist)."""
    if not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            """
            SELECT schema_name, table_name FROM duckdb_tables()
             WHERE database_name = current_database() AND NOT internal
            UNION ALL
            SELECT schema_name, view_name FROM duckdb_views()
             WHERE database_name = current_database() AND NOT internal
            ORDER BY 1, 2
            """
        ).fetchall()
        return {
            f"duckdb:{schema}.{name}": normalised(
                con.sql(f'SELECT * FROM "{schema}"."{name}"').pl()
            )
            for schema, name in names
            if schema not in _SYSTEM_SCHEMAS and schema.startswith(schema_prefix)
        }


def iceberg_datasets(catalog: Catalog) -> Snapshot:
    """Every table of every namespace of ``catalog``, as of its current snapshot."""
    found: Snapshot = {}
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            rows = pl.from_arrow(catalog.load_table(identifier).scan().to_arrow())
            assert isinstance(rows, pl.DataFrame)
            found["iceberg:" + ".".join(identifier)] = normalised(rows)
    return found


def delta_datasets(root: Path) -> Snapshot:
    """Every Delta table (a folder holding ``_delta_log``) under ``root``."""
    if not root.exists():
        return {}
    found: Snapshot = {}
    for log in sorted(root.rglob("_delta_log")):
        rows = pl.from_arrow(DeltaTable(str(log.parent)).to_pyarrow_table())
        assert isinstance(rows, pl.DataFrame)
        found["delta:" + log.parent.relative_to(root).as_posix()] = normalised(rows)
    return found


def capture(
    *,
    warehouse: Path | None = None,
    catalog: Catalog | None = None,
    delta_root: Path | None = None,
    schema_prefix: str = "",
) -> Snapshot:
    """The datasets of whichever stores are given, keyed by store and name."""
    snapshot: Snapshot = {}
    if warehouse is not None:
        snapshot |= warehouse_datasets(warehouse, schema_prefix=schema_prefix)
    if catalog is not None:
        snapshot |= iceberg_datasets(catalog)
    if delta_root is not None:
        snapshot |= delta_datasets(delta_root)
    return snapshot


def capture_home(home: Path, *, schema_prefix: str = "") -> Snapshot:
    """Every dataset under a data home: its warehouse, its Iceberg catalog and its Delta root.

    The paths come from :class:`Settings` and the catalog from :class:`LakeResource`, as the
    platform's own runs open them (the SQL catalog scopes tables by catalog name). The catalog is
    opened only if its database exists, so capturing never creates one.
    """
    settings = Settings(home=home)
    lake = LakeResource(
        catalog_uri=settings.iceberg_catalog_uri,
        warehouse=str(settings.iceberg_warehouse),
        delta_root=str(settings.delta_root),
    )
    catalog_db = settings.lake / "iceberg_catalog.db"
    catalog = lake.catalog() if catalog_db.exists() else None
    return capture(
        warehouse=settings.warehouse_path,
        catalog=catalog,
        delta_root=settings.delta_root,
        schema_prefix=schema_prefix,
    )


def differences(before: Mapping[str, pl.DataFrame], after: Mapping[str, pl.DataFrame]) -> list[str]:
    """One line per dataset that appeared, vanished or changed (schema or rows)."""
    lines = [f"{name}: appeared" for name in sorted(after.keys() - before.keys())]
    lines += [f"{name}: vanished" for name in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if old.schema != new.schema:
            lines.append(f"{name}: schema {dict(old.schema)} -> {dict(new.schema)}")
        elif not old.equals(new):
            gone = old.join(new, on=old.columns, how="anti", nulls_equal=True)
            came = new.join(old, on=old.columns, how="anti", nulls_equal=True)
            lines.append(
                f"{name}: {old.height} -> {new.height} rows; "
                f"first gone {gone.head(1).to_dicts()}, first new {came.head(1).to_dicts()}"
            )
    return lines


def assert_same_snapshot(
    before: Mapping[str, pl.DataFrame], after: Mapping[str, pl.DataFrame]
) -> None:
    """Fail naming every dataset that differs between ``before`` and ``after``."""
    assert before, "the snapshot holds no dataset: nothing was compared"
    found = differences(before, after)
    assert not found, "re-run changed:\n" + "\n".join(found)
