"""The local Dagster instance: ``DAGSTER_HOME`` lives inside the data home so that CLI runs,
scripts and ``dagster dev`` share one instance and every run shows in the UI."""

from __future__ import annotations

import json
from pathlib import Path

from data_products.lib.compat.environment import export
from data_products.lib.settings import Settings, get_settings


def storage_yaml(dagster_home: Path) -> str:
    """The storage block of our dagster.yaml; without it Dagster uses its stock SQLite storage in
    the same folders (``bench.aviation.profile --stock-storage`` measures the difference).

    The path is written out, not ``{env: DAGSTER_HOME}``: an instance opened by its folder
    (``DagsterInstance.from_config``) from a process without ``DAGSTER_HOME`` must load too."""
    return f"""\
# Dagster's SQLite storage (same files) with an event log that keeps its connections open and
# writes event batches in one transaction: a year's single-run backfill writes ~12,000 events,
# which cost 7-10 ms of CPU each in the stock storage (see data_products.lib.compat.dagster).
storage:
  custom:
    module: data_products.lib.compat.dagster
    class: PooledSqliteStorage
    config:
      base_dir: {json.dumps(str(dagster_home))}
"""


_DAGSTER_YAML = """\
# Written by data_products.lib.instance.ensure_dagster_home; change the template there.
telemetry:
  enabled: false
{storage}# Freshness policies (our SLAs) are evaluated by the daemon of `dagster dev`.
freshness:
  enabled: true
# DuckDB has a single writer: assets that write the warehouse share the pool `warehouse`.
# And a DuckDB file is locked by the first process that opens it for writing, whichever step
# it is in: runs that the daemon launches (per-partition backfills from the UI, sensors) are
# queued and run one at a time, or the second one fails on the lock.
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 1
"""


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """Create ``DAGSTER_HOME`` with our dagster.yaml (rewritten if the template changed) and
    export it for this process and its children."""
    settings = settings or get_settings()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    text = _DAGSTER_YAML.format(storage=storage_yaml(home))
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    export("DAGSTER_HOME", str(home))
    return home
