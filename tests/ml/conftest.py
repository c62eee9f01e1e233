"""One materialised ml domain for the package: four real aviation days (2013-01-01..04) landed,
the aviation tables the ml domain reads (and what they need) as one run, then the whole ml group
as one run (exports, feast apply, online store, training set, model). Built once: the tests read
it; the few that change it say so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.aviation import drops
from assets.ml.common import AVIATION_FLIGHTS, AVIATION_PLANES, AVIATION_ROTATIONS, AVIATION_WEATHER
from data_products.cli.runs import SliceRun, materialize_slice
from data_products.lib.instance import ensure_dagster_home

START, END = "2013-01-01", "2013-01-04"
AVIATION_INPUTS = dg.AssetSelection.assets(
    *(
        name.asset_key
        for name in (AVIATION_FLIGHTS, AVIATION_WEATHER, AVIATION_PLANES, AVIATION_ROTATIONS)
    )
)
"""What the ml assets read; the other aviation marts are not needed here."""
ENV = ("DATA_PRODUCTS_HOME", "DAGSTER_HOME", "DATA_PRODUCTS_LINEAGE_TRANSPORT")


@dataclass
class MlDomain:
    home: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    aviation: SliceRun
    ml: SliceRun

    def table(self, sql: str) -> pl.DataFrame:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            return con.sql(sql).pl()

    def check(self, asset: str, name: str, run: SliceRun | None = None) -> dict[str, str]:
        found = [c for c in (run or self.ml).checks if c.asset == asset and c.check == name]
        assert found, f"no evaluation of {asset}:{name}"
        return {"passed": str(found[-1].passed), **found[-1].metadata}


@pytest.fixture(scope="package")
def ml_domain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlDomain]:
    saved = {name: os.environ.get(name) for name in ENV}
    home = tmp_path_factory.mktemp("ml")
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DATA_PRODUCTS_LINEAGE_TRANSPORT"] = "file"
    ensure_dagster_home()
    try:
        from data_products.definitions import defs

        drops.land(home / "landing", START, END)
        with dg.instance_for_test() as instance:

            def run(selection: dg.AssetSelection) -> SliceRun:
                return materialize_slice(
                    defs,
                    selection,
                    start=START,
                    end=END,
                    instance=instance,
                    log_level="WARNING",
                )

            began = time.perf_counter()
            aviation = run(AVIATION_INPUTS.upstream().required_multi_asset_neighbors())
            assert aviation.success, aviation.failed_steps
            middle = time.perf_counter()
            ml = run(dg.AssetSelection.groups("ml"))
            print(f"aviation {middle - began:.1f} s, ml {time.perf_counter() - middle:.1f} s")
            yield MlDomain(home, defs, instance, aviation, ml)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
