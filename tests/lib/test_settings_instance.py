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


def test_dagster_home_config_monitors_runs_retries_crashes_and_queues(data_home: Path) -> None:
    from data_products.lib.compat.dagster_launcher import MonitoredRunLauncher
    from data_products.lib.instance import (
        MAX_CONCURRENT_RUNS,
        MAX_RUNTIME_SECONDS,
        STREAM_TAG_LIMITS,
    )
    from data_products.lib.microbatch import TOPIC_TAG
    from sensors.cdc import SLOT_TAG

    with dg.DagsterInstance.from_config(str(ensure_dagster_home())) as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == MAX_RUNTIME_SECONDS
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == MAX_CONCURRENT_RUNS
        assert {limit["key"] for limit in queue.tag_concurrency_limits} == set(STREAM_TAG_LIMITS)
        assert "MONITORING" in instance.get_required_daemon_types()
        assert "QUEUED_RUN_COORDINATOR" in instance.get_required_daemon_types()
    assert set(STREAM_TAG_LIMITS) == {TOPIC_TAG, SLOT_TAG}
