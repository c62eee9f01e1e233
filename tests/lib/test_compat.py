"""Every workaround on library internals lives in ``data_products.lib.compat`` and fails here when
its pinned library changes: the installed version must be the one each module was written
against, the private names it uses must still exist with the signatures it relies on, and no
other module may change the process environment."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

from data_products.lib.compat import dagster as compat_dagster
from data_products.lib.compat import dagster_dbt as compat_dagster_dbt
from data_products.lib.compat import dagster_launcher as compat_dagster_launcher
from data_products.lib.compat import dbt_duckdb as compat_dbt_duckdb
from data_products.lib.compat import feast as compat_feast
from data_products.lib.domains import load_domains
from data_products.lib.settings import REPO_ROOT

PINS = [
    ("dagster", compat_dagster.WRITTEN_AGAINST),
    ("dagster", compat_dagster_launcher.WRITTEN_AGAINST),
    ("dagster-dbt", compat_dagster_dbt.WRITTEN_AGAINST),
    ("dbt-duckdb", compat_dbt_duckdb.WRITTEN_AGAINST),
    ("feast", compat_feast.WRITTEN_AGAINST),
]


@pytest.mark.parametrize(("package", "written_against"), PINS)
def test_installed_version_is_the_one_the_workaround_was_written_against(
    package: str, written_against: str
) -> None:
    installed = importlib.metadata.version(package)
    assert installed == written_against, (
        f"{package} is {installed}, data_products/lib/compat was written against "
        f"{written_against}: re-check the workaround, then update WRITTEN_AGAINST"
    )


def test_dagster_dbt_private_methods_still_exist_with_their_signatures() -> None:
    from dagster_dbt import DbtCliResource

    assert "_cli_version" in DbtCliResource.__dict__, "DbtCliResource._cli_version is gone"
    parameters = list(inspect.signature(DbtCliResource._initialize_dbt_core_adapter).parameters)
    assert parameters == ["self", "args"]
    # Still no per-call environment: the run's days must travel through os.environ.
    assert "env" not in inspect.signature(DbtCliResource.cli).parameters


def test_dbt_duckdb_still_caches_its_database_handle_at_class_level() -> None:
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    assert hasattr(DuckDBConnectionManager, compat_dbt_duckdb.CACHED_ENVIRONMENT)


def test_feast_offline_store_factory_still_takes_the_store_config() -> None:
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    assert list(inspect.signature(get_offline_store_from_config).parameters) == [
        "offline_store_config"
    ]


def test_dagster_storage_private_base_still_has_the_overridden_methods() -> None:
    base = compat_dagster.SqliteEventLogStorage
    for name in ("_connect", "has_table", "_has_asset_key_col_on_connection", "_initdb"):
        assert hasattr(base, name), f"SqliteEventLogStorage.{name} is gone"


_MUTATION = re.compile(
    r"os\.environ\[[^\]]+\]\s*=|os\.environ\.(pop|setdefault|update|clear)\(|os\.putenv\("
)


def test_only_the_compat_environment_module_changes_the_process_environment() -> None:
    allowed = REPO_ROOT / "data_products" / "lib" / "compat" / "environment.py"
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("data_products", "assets", "resources", "sensors", "scripts")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        if path != allowed and _MUTATION.search(path.read_text())
    ]
    assert offenders == []


def test_every_demo_reference_in_a_descriptor_resolves_to_a_callable() -> None:
    """Descriptors name code as ``module:function``: a rename must fail here, not in `make demo`."""
    import importlib

    checked = 0
    for name, domain in load_domains().items():
        if domain.demo is None:
            continue
        for reference in (domain.demo.prepare, domain.demo.runner):
            if reference is None:
                continue
            module_name, _, attribute = reference.partition(":")
            assert Path(REPO_ROOT, *module_name.split(".")).with_suffix(".py").exists(), name
            target = getattr(importlib.import_module(module_name), attribute, None)
            assert callable(target), f"{name}: {reference} is not a callable"
            checked += 1
    assert checked >= 5
