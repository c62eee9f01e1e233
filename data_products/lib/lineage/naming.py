"""Physical OpenLineage dataset names for Dagster assets.

Lineage only joins across tools (dbt-ol, Spark, DuckDB's own extension, Marquez) when every
producer names a dataset after where its bytes live, not after our asset key. So an asset is
named from what it reports about its location, in this order:

1. ``dagster/uri`` metadata (``file:///…``, ``s3://bucket/key``, ``postgres://host:port/db.schema.table``)
   → the OpenLineage naming for that scheme;
2. otherwise the DuckDB warehouse: ``duckdb://<absolute warehouse path>`` and
   ``<db>.<schema>.<table>`` (from ``dagster/table_name`` metadata, else from the key grammar);
3. keys outside the ``[domain, layer, name]`` grammar with neither: namespace ``dagster``.

The OpenLineage naming spec has no DuckDB entry. We follow OpenLineage's own dbt integration
(``openlineage-integration-common``, ``DbtArtifactProcessor.extract_namespace`` for the ``duckdb``
adapter, added in 1.26.0): namespace ``duckdb://{path of the database file}``, name
``{database}.{schema}.{table}``, where the database is DuckDB's catalog name for the file, its stem.
That is also what dbt-duckdb reports, so dbt-ol events and ours name the same table the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import dagster as dg

from data_products.lib.keys import DatasetName, InvalidIdentifierError
from data_products.lib.settings import Settings, get_settings

URI_METADATA_KEY = "dagster/uri"
TABLE_NAME_METADATA_KEY = "dagster/table_name"
REPLICAS_KEY = "data_products/replicas"
"""Materialisation metadata: URIs of copies the asset also published (e.g. its Iceberg table)."""
DAGSTER_NAMESPACE = "dagster"

# Object stores name a dataset by its object key, which has no leading slash; file systems keep
# the absolute path. Matches the Java client's FilesystemDatasetUtils and the Spark integration.
_OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "wasbs", "abfss"})
_FILE_SYSTEM_SCHEMES = frozenset({"file", "hdfs", "dbfs"})
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "postgresql": "postgres"}
# Database URIs carry the table in the path; OpenLineage joins the parts with dots and always
# includes the port in the namespace, so a missing port gets the engine's default.
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "trino": 8080}


def metadata_value(value: Any) -> Any:
    """The plain Python value of a metadata entry (materialisation metadata is wrapped in
    ``MetadataValue``; spec metadata may be either)."""
    return value.value if isinstance(value, dg.MetadataValue) else value


def dataset_from_uri(uri: str) -> tuple[str, str]:
    """(namespace, name) for a storage URI, following the OpenLineage naming spec.

    Credentials (``user:password@``), query strings and fragments are dropped: they identify a
    session, not a dataset, and must never reach a lineage event.
    """
    parts = urlsplit(uri.strip())
    port = parts.port  # raises ValueError on a malformed port
    scheme = _SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if not scheme:
        # A bare path: a local file.
        return "file", str(Path(unquote(parts.path)).resolve())
    host = parts.hostname or ""
    path = unquote(parts.path)
    if scheme == "file":
        namespace = "file" if host in ("", "localhost") else f"file://{host}"
        return namespace, path or "/"
    port = port or _DEFAULT_PORTS.get(scheme)
    authority = f"{host}:{port}" if port else host
    namespace = f"{scheme}://{authority}"
    if scheme in _OBJECT_STORE_SCHEMES:
        return namespace, path.lstrip("/") or "/"
    if scheme in _FILE_SYSTEM_SCHEMES:
        return namespace, path or "/"
    if scheme in _DEFAULT_PORTS:
        # postgres://host:port/db.schema.table, or with slashes: db/schema/table
        return namespace, ".".join(part for part in path.split("/") if part)
    return namespace, path.lstrip("/") or "/"


def redact_uri(uri: str) -> str:
    """The URI without credentials, query or fragment, safe to show in an error message."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def duckdb_namespace(warehouse_path: Path) -> str:
    """``duckdb://`` + the absolute path of the database file (so ``duckdb:///abs/file.duckdb``)."""
    return f"duckdb://{warehouse_path.resolve()}"


def physical_dataset(
    asset_key: dg.AssetKey,
    metadata: Mapping[str, Any] | None,
    *,
    settings: Settings | None = None,
) -> tuple[str, str]:
    """(namespace, name) of the dataset an asset writes, from its (spec or materialisation)
    metadata; see the module docstring for the rules."""
    metadata = metadata or {}
    uri = metadata_value(metadata.get(URI_METADATA_KEY))
    if uri:
        try:
            return dataset_from_uri(str(uri))
        except ValueError as exc:
            raise ValueError(
                f"asset {asset_key.to_user_string()!r}: cannot name a dataset from "
                f"{URI_METADATA_KEY} {redact_uri(str(uri))!r}: {exc}"
            ) from exc

    warehouse_path = (settings or get_settings()).warehouse_path
    try:
        dataset = DatasetName.from_key(asset_key)
    except InvalidIdentifierError:
        dataset = None

    database = warehouse_path.stem
    table_name = metadata_value(metadata.get(TABLE_NAME_METADATA_KEY))
    if table_name:
        parts = str(table_name).split(".")
        if len(parts) == 2:
            parts = [database, *parts]
        elif len(parts) == 1:
            parts = [database, dataset.schema if dataset else "main", parts[0]]
        return duckdb_namespace(warehouse_path), ".".join(parts)
    if dataset is not None:
        return duckdb_namespace(warehouse_path), f"{database}.{dataset.table}"
    return DAGSTER_NAMESPACE, asset_key.to_user_string()
