"""Dagster internals (written against dagster 1.13.27): a run worker health check for the
default run launcher, so that run monitoring notices a dead run worker by itself.

Why: run monitoring (the daemon's ``MONITORING`` loop) asks the run launcher whether a STARTED
run's worker is alive, but Dagster's ``DefaultRunLauncher`` (run workers are subprocesses of a
code server) answers nothing (``supports_check_run_worker_health`` is false), so the daemon only
enforces the start timeout and the maximum runtime. The code server that started a worker notices
when that subprocess dies and fails its run; when the code server is gone too (the host or the
``dagster dev`` process restarted, the code server was killed or replaced), nobody does, and the
run stays STARTED with its pool slots claimed until its maximum runtime, hours later.

``MonitoredRunLauncher`` is ``DefaultRunLauncher`` plus ``check_run_worker_health``: the worker's
pid comes from the run's own event log (the code server's "Started process for run (pid: N)"
engine event); the worker is alive while that process exists, is not a zombie, and started before
the event was written (a later process with a recycled pid is not it). Only workers of code
servers on this host are checked (``localhost``, a unix socket): a remote worker's pid means
nothing here, so it is reported RUNNING and left to the remote side and the maximum runtime.

``tests/lib/test_compat.py`` pins the dagster version; ``tests/lib/test_crash_recovery.py``
checks a real worker before and after a SIGKILL, through the instance's launcher.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

WRITTEN_AGAINST = "1.13.27"
"""The dagster version this module's private names were read from."""

STARTED_MESSAGE = "Started process for run (pid: "
"""How the code server's run worker announces itself (``dagster._grpc.impl``)."""
EXITED_MESSAGE = "Process for run exited (pid: "
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})  # noqa: S104 - names, no bind
_CLOCK_SLACK_SECONDS = 1.0


def _is_local(grpc_info: str | None) -> bool:
    if not grpc_info:
        return False
    info = json.loads(grpc_info)
    if info.get("socket"):
        return True
    host = str(info.get("host") or "")
    return host in LOCAL_HOSTS or host == socket.gethostname()


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, *, started_by: float) -> bool:
    """Whether ``pid`` is a live process that already existed at ``started_by`` (epoch s)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS): the signal check is all there is
        return True
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (command)": field 3 onwards
    if fields[0] in {"Z", "X"}:  # a zombie: dead, not yet reaped by its code server
        return False
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    return started <= started_by + _CLOCK_SLACK_SECONDS


class MonitoredRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` whose run workers run monitoring can check (see the module)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not _is_local(run.tags.get(GRPC_INFO_TAG)):
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, "not launched on a code server of this host: not checked"
            )
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ENGINE_EVENT
        ).records
        pid, started_at, exited = None, 0.0, False
        for record in records:
            entry = record.event_log_entry
            event = entry.dagster_event
            message = (event.message if event is not None else None) or entry.user_message or ""
            if message.startswith(STARTED_MESSAGE):
                pid = int(message[len(STARTED_MESSAGE) :].split(")")[0])
                started_at, exited = entry.timestamp, False
            elif message.startswith(EXITED_MESSAGE):
                exited = True
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        if not exited and process_alive(pid, started_by=started_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker pid {pid} is gone (killed or crashed)"
        )
