"""The lake resource: the Iceberg catalog and warehouse, the Delta root, and object-store access.

Embedded by default (SQLite catalog and files under the data home); the production profile
points the same fields at PostgreSQL and S3 by configuration only, with secrets passed as
``dg.EnvVar`` so they never sit in code or in run config.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field
from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy.engine import make_url

from data_products.lib.keys import validate_identifier
from data_products.lib.settings import get_settings
from data_products.lib.tables.iceberg import IcebergTables


# ConfigurableResource is generic in the value it hands to assets; a bare subclass hands itself,
# and subscripting it would make pydantic build a second class at run time.
class LakeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Iceberg (pyiceberg SQL catalog) and Delta locations, with optional S3 settings.

    Empty fields derive from ``DATA_PRODUCTS_HOME`` when used, never at import time.
    """

    catalog_name: str = Field(default="data_products", description="Iceberg catalog name.")
    catalog_uri: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URI of the Iceberg SQL catalog; empty: SQLite under the data home. "
            "Use PostgreSQL when several processes write concurrently."
        ),
    )
    warehouse: str | None = Field(
        default=None,
        description="Local path or s3://bucket/prefix; empty: <home>/lake/iceberg.",
    )
    delta_root: str | None = Field(
        default=None,
        description="Root of the Delta tables: a local path or s3://...; empty: <home>/lake/delta.",
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3-compatible endpoint URL (MinIO, moto); empty: AWS."
    )
    s3_region: str | None = Field(default=None, description="S3 region.")
    s3_access_key_id: str | None = Field(default=None, description="Pass as dg.EnvVar.")
    s3_secret_access_key: str | None = Field(default=None, description="Pass as dg.EnvVar.")
    s3_allow_http: bool = Field(
        default=False, description="Allow a plain-http endpoint (local test servers only)."
    )

    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or get_settings().iceberg_catalog_uri

    def resolved_warehouse(self) -> str:
        """An ``s3://`` URI as given, or an absolute local path.

        Local paths stay plain paths, not ``file://`` URIs: pyiceberg does not percent-decode
        those, so a home with a space in it would grow a literal ``%20`` directory.
        """
        location = self.warehouse or str(get_settings().iceberg_warehouse)
        return location if "://" in location else str(Path(location).resolve())

    def resolved_delta_root(self) -> str:
        """The Delta root: a local path, or an ``s3://`` URI kept as given."""
        location = self.delta_root or str(get_settings().delta_root)
        return location if "://" in location else str(Path(location).resolve())

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg catalog properties (uri, warehouse and the S3 FileIO settings that are set)."""
        properties = {"uri": self.resolved_catalog_uri(), "warehouse": self.resolved_warehouse()}
        s3 = {
            "s3.endpoint": self.s3_endpoint,
            "s3.region": self.s3_region,
            "s3.access-key-id": self.s3_access_key_id,
            "s3.secret-access-key": self.s3_secret_access_key,
        }
        properties.update({key: value for key, value in s3.items() if value})
        return properties

    def delta_storage_options(self) -> dict[str, str]:
        """deltalake ``storage_options`` for the S3 settings that are set (empty when local)."""
        options = {
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_REGION": self.s3_region,
            "AWS_ACCESS_KEY_ID": self.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "AWS_ALLOW_HTTP": "true" if self.s3_allow_http else None,
        }
        return {key: value for key, value in options.items() if value}

    def catalog(self) -> SqlCatalog:
        """The Iceberg SQL catalog, its local directories created on first use."""
        validate_identifier(self.catalog_name, what="Iceberg catalog name")
        properties = self.iceberg_properties()
        _ensure_local_dirs(properties["uri"], properties["warehouse"])
        # SqlCatalog directly rather than load_catalog(): load_catalog also merges
        # ~/.pyiceberg.yaml and PYICEBERG_* variables, which would let the machine's
        # environment silently redirect the platform's catalog.
        return SqlCatalog(self.catalog_name, **properties)

    def iceberg(self) -> IcebergTables:
        """Dataset-level Iceberg reads and atomic partition replaces on this catalog."""
        return IcebergTables(self.catalog())


def _ensure_local_dirs(catalog_uri: str, warehouse: str) -> None:
    url = make_url(catalog_uri)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in warehouse:
        Path(warehouse).mkdir(parents=True, exist_ok=True)
