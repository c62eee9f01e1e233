"""Settings derive every path from one data home; the instance config Dagster will load is valid."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from data_products.lib.instance import ensure_dagster_home
from data_products.lib.settings import REPO_ROOT, get_settings


def test_default_home_is_repo_dot_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_PRODUCTS_HOME", raising=False)
    assert get_settings().home == (REPO_ROOT / ".data").resolve()


def test_every_path_derives_from_the_home(data_home: Path) -> None:
    settings = get_settings()
    assert settings.home == data_home.resolve()
    for path in (
        settings.landing,
        settings.lake,
        settings.warehouse_path,
        settings.lineage_dir,
        settings.features,
        settings.dagster_home,
        settings.alerts_dir,
        settings.reports_dir,
    ):
        assert path.is_relative_to(settings.home)
    assert settings.iceberg_catalog_uri.startswith(f"sqlite:///{settings.home}")


def test_dagster_home_config_loads_with_freshness_and_pools(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ensure_dagster_home()
    assert home == data_home.resolve() / "dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        settings = instance.get_settings("freshness")
        assert settings.get("enabled") is True
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    # idempotent: a second call keeps the file as is
    before = (home / "dagster.yaml").stat().st_mtime_ns
    ensure_dagster_home()
    assert (home / "dagster.yaml").stat().st_mtime_ns == before
