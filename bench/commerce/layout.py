"""Where the benchmark keeps its files, shared by the parent process and the implementations.

One bench home holds the generated drops once (``drops/landing``, ``drops/truth``) and one fresh
folder per implementation (``runs/<name>``), so every implementation reads the same bytes and
writes its own outputs: a warehouse file for the platform and for DuckDB, parquet files for
pandas. Nothing here touches the user's data home.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from data_products.lib.keys import validate_identifier, validate_partition_key
from data_products.lib.settings import REPO_ROOT

IMPLEMENTATIONS = ("platform", "duckdb", "pandas")
"""Run order: the platform first, so a platform failure is seen before the long pandas run."""

DOMAIN = "commerce"
DATASETS = ("fx_rates", "customers", "products", "orders")
"""Delivered file families (bronze tables), in the order bronze reads them."""

SILVER = ("fx_rates", "customers", "products", "order_lines", "orders")
"""Silver datasets, each with a ``<name>_quarantine`` table."""

GOLD = (
    "dim_date",
    "dim_customer",
    "dim_product",
    "fct_orders",
    "daily_revenue",
    "top_products_daily",
    "customer_sessions",
    "monthly_retention",
    "rfm_segments",
)

DEFAULT_HOME = REPO_ROOT / ".data" / "bench"
"""Git-ignored, removed by ``make clean``, and apart from the data home's own landing/."""


@dataclass(frozen=True)
class BenchRange:
    """The partition range of the benchmark: ``days`` daily partitions from ``start``."""

    start: date
    days: int

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    @property
    def keys(self) -> list[str]:
        """Validated partition keys, oldest first."""
        return [
            validate_partition_key((self.start + timedelta(days=i)).isoformat())
            for i in range(self.days)
        ]


@dataclass(frozen=True)
class BenchLayout:
    """Paths under one bench home."""

    home: Path

    @property
    def drops(self) -> Path:
        """A data home holding only ``landing/`` and ``truth/`` (what the generator writes)."""
        return self.home / "drops"

    @property
    def landing(self) -> Path:
        return self.drops / "landing"

    @property
    def truth(self) -> Path:
        return self.drops / "truth"

    @property
    def drops_manifest(self) -> Path:
        """Parameters of the generated drops, so an unchanged re-run can reuse them."""
        return self.drops / "generated.json"

    def run_dir(self, implementation: str) -> Path:
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"unknown implementation {implementation!r}: {IMPLEMENTATIONS}")
        return self.home / "runs" / implementation

    def result_path(self, implementation: str) -> Path:
        """What the implementation's process reports about itself (timings, checks)."""
        return self.run_dir(implementation) / "result.json"

    def warehouse(self, implementation: str) -> Path:
        return self.run_dir(implementation) / "warehouse.duckdb"

    def parquet_dir(self, implementation: str) -> Path:
        """``<schema>.<table>.parquet`` files (pandas writes its tables here)."""
        return self.run_dir(implementation) / "tables"

    @property
    def report(self) -> Path:
        return self.home / "bench" / "commerce.json"

    def fresh_run_dir(self, implementation: str) -> Path:
        """An empty ``runs/<implementation>``: outputs of an earlier invocation never count."""
        folder = self.run_dir(implementation)
        if folder.is_symlink() or folder.is_file():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder


_DROP_FILE = "^{dataset}(_[a-z0-9_]+)?\\.csv$"


def drop_files(landing: Path, dataset: str, keys: list[str]) -> list[tuple[str, Path]]:
    """``(partition key, file)`` of every drop of ``dataset`` for ``keys``, as bronze reads them:
    ``<dataset>.csv`` and re-sent copies ``<dataset>_<suffix>.csv``, days in order, names in
    order within a day (the same rule as ``data_products.lib.landing.drop_files``)."""
    validate_identifier(dataset, what="dataset")
    pattern = re.compile(_DROP_FILE.format(dataset=dataset))
    found: list[tuple[str, Path]] = []
    for key in keys:
        folder = landing / DOMAIN / validate_partition_key(key)
        files = sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name))
        if not files:
            raise FileNotFoundError(f"no {dataset}*.csv drop in {folder}")
        found.extend((key, path) for path in files)
    return found
