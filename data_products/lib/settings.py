"""One settings object and one data-home helper.

Everything the platform writes lives under a single data home so that CLI runs, `dagster dev`,
tests and benchmarks can each point at their own root with one variable. Settings are read when
called, never at import time, so tests can switch homes with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]

LineageTransport = Literal["file", "http", "console", "none"]


class Settings(BaseModel):
    """Resolved configuration; derive every path from ``home``."""

    model_config = ConfigDict(frozen=True)

    home: Path
    lineage_transport: LineageTransport = "file"
    lineage_url: str | None = None
    lineage_namespace: str = "data-products"
    alert_webhook_url: str | None = None
    chunk_rows: int = 1_000_000
    """Row budget of one chunk of a range run (see ``data_products.lib.chunks``)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("DATA_PRODUCTS_HOME") or REPO_ROOT / ".data").resolve()
        return cls(
            home=home,
            lineage_transport=os.environ.get("DATA_PRODUCTS_LINEAGE_TRANSPORT", "file"),
            lineage_url=os.environ.get("OPENLINEAGE_URL") or None,
            lineage_namespace=os.environ.get("OPENLINEAGE_NAMESPACE", "data-products"),
            alert_webhook_url=os.environ.get("DATA_PRODUCTS_ALERT_WEBHOOK_URL") or None,
            chunk_rows=int(os.environ.get("DATA_PRODUCTS_CHUNK_ROWS") or 1_000_000),
        )

    @cached_property
    def landing(self) -> Path:
        """Raw drops as delivered by sources, ``landing/<domain>/<partition>/``."""
        return self.home / "landing"

    @cached_property
    def truth(self) -> Path:
        """Ground truth written by generators, read by tests and benchmarks only."""
        return self.home / "truth"

    @cached_property
    def lake(self) -> Path:
        return self.home / "lake"

    @cached_property
    def lake_files(self) -> Path:
        """Bronze and silver partitions as Parquet (``data_products.lib.tables.files``)."""
        return self.lake / "files"

    @cached_property
    def iceberg_warehouse(self) -> Path:
        return self.lake / "iceberg"

    @cached_property
    def iceberg_catalog_uri(self) -> str:
        return f"sqlite:///{self.lake / 'iceberg_catalog.db'}"

    @cached_property
    def delta_root(self) -> Path:
        return self.lake / "delta"

    @cached_property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file: gold tables, and views over the bronze and silver files;
        schema ``<domain>_<layer>``."""
        return self.home / "warehouse.duckdb"

    @cached_property
    def lineage_dir(self) -> Path:
        return self.home / "lineage"

    @cached_property
    def features(self) -> Path:
        return self.home / "features"

    @cached_property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @cached_property
    def alerts_dir(self) -> Path:
        return self.home / "alerts"

    @cached_property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def get_settings() -> Settings:
    """Settings as of now (environment read at call time)."""
    return Settings.from_env()
