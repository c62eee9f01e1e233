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


MAX_RUNTIME_SECONDS = 4 * 3600
"""Instance-wide ceiling on a run's duration (``run_monitoring.max_runtime_seconds``): the longest
legitimate run here is a whole-history range or a CDC snapshot (minutes on this machine), so four
hours only ever stops a run that hangs (a lock waited on forever, a stuck subprocess).
Instance-wide rather than a tag because runs come from the UI, sensors, schedules, backfills and
Dagster's own run retries, and a tag would have to be set on every one of them; a run that needs
less (a stream micro-batch) sets ``MAX_RUNTIME_TAG``."""

MAX_RUNTIME_TAG = "dagster/max_runtime"
"""Per-run maximum runtime in seconds, which run monitoring prefers over the instance setting."""

STREAM_BATCH_MAX_RUNTIME_SECONDS = 30 * 60
"""A micro-batch takes seconds; one that hangs holds its stream, so it is stopped much sooner."""

STREAM_TAG_LIMITS = ("microbatch/topic", "cdc/slot")
"""Run tags of the stream consumers (``data_products.lib.microbatch.TOPIC_TAG``,
``sensors.cdc.SLOT_TAG``): at most one run per tag value at a time, so a crashed batch's automatic
retry and the sensor's own resume can never apply the same range concurrently."""

MAX_CONCURRENT_RUNS = 3
"""Runs in progress at once (see the template below for why 3)."""

_DAGSTER_YAML = """\
# Written by data_products.lib.instance.ensure_dagster_home; change the template there.
telemetry:
  enabled: false
{storage}# Freshness policies (our SLAs) are evaluated by the daemon of `dagster dev`.
freshness:
  enabled: true
# DuckDB has a single writer: every asset that uses the warehouse runs in the pool `warehouse`
# (limit 1), so at most one step of any run writes the file at a time. The warehouse resource
# opens its connection per block and closes it (dbt's per step, released when the step ends),
# so the file lock is held inside a step, never for a whole run: runs can overlap, and only
# their warehouse steps take turns. 3 runs: a warehouse run, a CDC batch (lake and PostgreSQL,
# no warehouse) and one more (a stream batch waiting for the pool, a retry) on 2 cores; the
# queue holds runs whose first steps the pool would block, instead of starting run workers
# that only wait. Stream consumers run one batch at a time (tag limits below).
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: {max_concurrent_runs}
    tag_concurrency_limits:
{tag_limits}# Runs launch as subprocesses of a code server (Dagster's default launcher), with a
# worker health check for run monitoring: a worker that dies (SIGKILL, the OOM killer) is noticed
# by its code server, or by the monitoring daemon when that server is gone too, and its run is
# marked failed; the daemon then frees the pool slots the dead run still held
# (free_slots_after_run_end_seconds: without it they stay claimed for good), fails runs that
# never start or never finish cancelling, and stops runs past their maximum runtime. The default
# launcher cannot resume a run worker: max_resume_run_attempts must be 0.
run_launcher:
  module: data_products.lib.compat.dagster_launcher
  class: MonitoredRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 120
  cancel_timeout_seconds: 120
  max_runtime_seconds: {max_runtime}
  max_resume_run_attempts: 0
  poll_interval_seconds: 15
  free_slots_after_run_end_seconds: 5
# A run whose worker crashed is re-executed once from its failure; a run that failed because an
# asset or check failed is not (transient step errors are retried inside the run, see
# data_products.lib.retries; a contract failure must not be retried at all).
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
"""


def dagster_yaml(dagster_home: Path) -> str:
    """The whole dagster.yaml of the instance under ``dagster_home``."""
    tag_limits = "".join(
        f"      - key: {json.dumps(key)}\n"
        "        value:\n"
        "          applyLimitPerUniqueValue: true\n"
        "        limit: 1\n"
        for key in STREAM_TAG_LIMITS
    )
    return _DAGSTER_YAML.format(
        storage=storage_yaml(dagster_home),
        max_concurrent_runs=MAX_CONCURRENT_RUNS,
        tag_limits=tag_limits,
        max_runtime=MAX_RUNTIME_SECONDS,
    )


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """Create ``DAGSTER_HOME`` with our dagster.yaml (rewritten if the template changed) and
    export it for this process and its children."""
    settings = settings or get_settings()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    text = dagster_yaml(home)
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    export("DAGSTER_HOME", str(home))
    return home
