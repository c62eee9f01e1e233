"""Crash recovery with the instance ``ensure_dagster_home`` writes: a run launched the way the
daemon launches it (queued, dequeued by the run coordinator's daemon loop, a run worker started
by the code server through the instance's run launcher) is SIGKILLed while its step holds the
``warehouse`` pool slot and the warehouse's lock. With no manual step, Dagster's own loops (run
monitoring, the run coordinator, run retries) mark the run failed, free its slot, re-execute the
crashed run, and the next run completes.

The daemon's loops are called one iteration at a time (``dagster._daemon`` iteration functions),
in the order the daemon threads would run them, so the test needs no daemon process and no
sleeps beyond polling for what a real process does (the worker starting, the code server
noticing its death)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb
import pytest
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import PythonFileTarget
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon
from dagster._daemon.monitoring.concurrency import execute_concurrency_slots_iteration
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from data_products.lib import microbatch
from data_products.lib.compat.dagster_launcher import MonitoredRunLauncher
from data_products.lib.instance import ensure_dagster_home
from data_products.lib.settings import REPO_ROOT, get_settings
from tests.lib.fixtures.crash_location import HOLD_TAG, MARKERS_ENV, crash_job, defs

LOCATION = "crash_test"
POOL = "warehouse"
LOG = logging.getLogger("test_crash_recovery")
T = TypeVar("T")


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180.0) -> T:
    """Poll ``probe`` until it returns something (a bound for a hung test, not a timed assert)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(0.25)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def workspace(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.DagsterInstance, WorkspaceProcessContext, Path]]:
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv(MARKERS_ENV, str(markers))  # inherited by the code server and its workers
    home = ensure_dagster_home()
    target = PythonFileTarget(
        python_file=str(Path(__file__).parent / "fixtures" / "crash_location.py"),
        attribute="defs",
        working_directory=str(REPO_ROOT),
        location_name=LOCATION,
    )
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        create_test_daemon_workspace_context(target, instance) as context,
    ):
        yield instance, context, markers


def _submit(
    instance: dg.DagsterInstance, context: WorkspaceProcessContext, tags: dict[str, str]
) -> str:
    """Create a run of ``crash_job`` with its remote origin and submit it (queued), as the UI or
    a sensor does."""
    request = context.create_request_context()
    remote_job = (
        request.get_code_location(LOCATION)
        .get_repository("__repository__")
        .get_full_job("crash_job")
    )
    run = instance.create_run_for_job(
        job_def=defs.resolve_job_def(crash_job.name),
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        tags=tags,
    )
    instance.submit_run(run.run_id, request)
    return run.run_id


def _daemon_pass(context: WorkspaceProcessContext, coordinator: QueuedRunCoordinatorDaemon) -> None:
    """One iteration of each daemon loop involved: queue, monitoring (runs, then pool slots),
    run retries."""
    list(coordinator.run_iteration(context))
    list(execute_run_monitoring_iteration(context, LOG))
    list(execute_concurrency_slots_iteration(context, LOG))
    list(EventLogConsumerDaemon().run_iteration(context))


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def _claimed(instance: dg.DagsterInstance) -> list[str]:
    return [
        slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots
    ]


def test_a_sigkilled_run_worker_heals_with_no_manual_step(
    workspace: tuple[dg.DagsterInstance, WorkspaceProcessContext, Path],
) -> None:
    instance, context, markers = workspace
    assert isinstance(instance.run_launcher, MonitoredRunLauncher)
    assert instance.run_monitoring_enabled and instance.run_retries_enabled
    coordinator = QueuedRunCoordinatorDaemon(interval_seconds=1)
    _daemon_pass(context, coordinator)  # the daemon runs all along (run retries start a cursor)

    crashed = _submit(instance, context, {HOLD_TAG: "true"})
    assert _status(instance, crashed) == dg.DagsterRunStatus.QUEUED
    list(coordinator.run_iteration(context))  # the queue launches it through the run launcher
    marker = markers / f"{crashed}.pid"
    pid = int(
        _wait_for("the step to hold the slot", lambda: marker.exists() and marker.read_text())
    )
    assert pid != os.getpid()
    assert _claimed(instance) == [crashed]
    run = instance.get_run_by_id(crashed)
    assert run is not None and run.status == dg.DagsterRunStatus.STARTED
    alive = instance.run_launcher.check_run_worker_health(run)
    assert alive.status == WorkerStatus.RUNNING and str(pid) in (alive.msg or ""), alive

    # A run queued behind the held slot is not started while the slot is claimed.
    waiting = _submit(instance, context, {})
    list(coordinator.run_iteration(context))
    assert _status(instance, waiting) == dg.DagsterRunStatus.QUEUED

    os.kill(pid, signal.SIGKILL)  # the OOM killer, a lost node
    _wait_for(
        "run monitoring to fail the run and free its slot",
        lambda: (
            _daemon_pass(context, coordinator)
            or (
                _status(instance, crashed) == dg.DagsterRunStatus.FAILURE
                and crashed not in _claimed(instance)
            )
        ),
    )
    dead = instance.get_run_by_id(crashed)
    assert dead is not None
    assert instance.run_launcher.check_run_worker_health(dead).status == WorkerStatus.FAILED
    # A dead run is not in flight: a stream sensor would move on (after Dagster's own retry).
    assert dead.status not in microbatch.IN_FLIGHT

    # No manual step: Dagster's run retry re-executes the crashed run, the queued run proceeds.
    def finished() -> bool:
        _daemon_pass(context, coordinator)
        run = instance.get_run_by_id(crashed)
        retry_id = run.tags.get(AUTO_RETRY_RUN_ID_TAG) if run else None
        return retry_id is not None and all(
            _status(instance, run_id) == dg.DagsterRunStatus.SUCCESS
            for run_id in (retry_id, waiting)
        )

    _wait_for("the retry and the queued run to complete", finished)
    dead = instance.get_run_by_id(crashed)
    assert dead is not None and dead.tags.get(WILL_RETRY_TAG) == "true"
    retry = dead.tags[AUTO_RETRY_RUN_ID_TAG]
    assert _claimed(instance) == []
    with duckdb.connect(str(get_settings().warehouse_path), read_only=True) as con:
        written = {row[0] for row in con.execute("SELECT run_id FROM probe").fetchall()}
    assert {retry, waiting} <= written  # the warehouse's lock died with the killed worker


def test_pin_the_dagster_names_recovery_relies_on() -> None:
    """Fails on a dagster upgrade that renames a tag or the worker's start message: re-check
    ``MonitoredRunLauncher`` and the stream sensors' in-flight test, then move the pin."""
    import inspect

    from dagster._core.storage import tags
    from dagster._grpc import impl

    from data_products.lib.compat import dagster_launcher
    from data_products.lib.instance import MAX_RUNTIME_TAG

    assert microbatch.WILL_RETRY_TAG == tags.WILL_RETRY_TAG
    assert microbatch.AUTO_RETRY_RUN_ID_TAG == tags.AUTO_RETRY_RUN_ID_TAG
    assert MAX_RUNTIME_TAG == tags.MAX_RUNTIME_SECONDS_TAG
    source = inspect.getsource(impl)
    assert f'f"{dagster_launcher.STARTED_MESSAGE}{{pid}}).",' in source
    assert f'f"{dagster_launcher.EXITED_MESSAGE}{{pid}}).",' in source
