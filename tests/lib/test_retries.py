"""Retries that know transient from permanent (``data_products.lib.retries``) and the Dagster
internal they rely on (``data_products.lib.compat.dagster_assets.with_wrapped_compute``): real
lock conflicts, real HTTP answers and real I/O errors are classified, a step that meets a DuckDB
lock held by another process retries and succeeds once the lock is gone, a contract or data
error runs once and fails as itself."""

# No `from __future__ import annotations`: dagster inspects the asset functions' annotations.
import errno
import inspect
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import requests
from dagster._core.definitions.decorators.op_decorator import DecoratedOpFunction
from dagster._core.definitions.op_definition import OpDefinition

import assets
import sensors
from data_products.lib.compat.dagster_assets import WRAPPED_MARK, with_wrapped_compute
from data_products.lib.discovery import apply_platform_policy, discover
from data_products.lib.retries import (
    TransientRetryPolicy,
    is_transient,
    transient_reason,
    with_transient_retries,
)
from resources.warehouse import WarehouseResource
from tests.conftest import Receiver

FAST = TransientRetryPolicy(max_retries=3, base_seconds=0.05, max_seconds=0.2)

_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


class LockHolder:
    """Another process holding the DuckDB file's write lock until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[tuple[Path, LockHolder]]:
    path = tmp_path / "warehouse.duckdb"
    holder = LockHolder(path)
    try:
        yield path, holder
    finally:
        holder.release()


def _raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def test_a_real_duckdb_lock_conflict_is_transient_even_wrapped(
    held_lock: tuple[Path, LockHolder],
) -> None:
    path, _ = held_lock
    conflict = _raised(lambda: duckdb.connect(str(path)))
    assert isinstance(conflict, duckdb.IOException) and "Could not set lock" in str(conflict)
    assert transient_reason(conflict) == "DuckDB lock held by another process"

    def wrapped() -> None:
        try:
            duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise RuntimeError("loading the silver partition failed") from exc

    assert is_transient(_raised(wrapped))  # found through __cause__

    def implicit() -> None:
        try:
            duckdb.connect(str(path))
        except duckdb.IOException:
            raise RuntimeError("while handling it, something else failed")  # noqa: B904

    assert is_transient(_raised(implicit))  # found through __context__

    def as_data_error() -> None:
        try:
            duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise ValueError("rows do not match the contract") from exc

    assert not is_transient(_raised(as_data_error))  # a permanent error in the chain wins


def test_sqlite_locks_and_io_errnos(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN EXCLUSIVE")
    try:
        other = sqlite3.connect(db, timeout=0)
        locked = _raised(lambda: other.execute("INSERT INTO t VALUES (1)"))
        other.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert transient_reason(locked) == "SQLite database locked"

    assert is_transient(OSError(errno.EIO, "Input/output error"))
    assert is_transient(OSError(errno.EAGAIN, "Resource temporarily unavailable"))
    assert is_transient(OSError(errno.EBUSY, "Device or resource busy"))
    assert is_transient(TimeoutError(errno.ETIMEDOUT, "timed out"))
    missing = _raised(lambda: (tmp_path / "nowhere.csv").read_text())
    assert isinstance(missing, FileNotFoundError) and not is_transient(missing)
    assert not is_transient(PermissionError(errno.EACCES, "Permission denied"))
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_transient(RuntimeError("a bug"))
    assert not is_transient(dg.Failure("contract violated"))


def test_http_5xx_429_and_connection_errors_are_transient_4xx_is_not(receiver: Receiver) -> None:
    for status, transient in ((503, True), (500, True), (429, True), (404, False), (400, False)):
        receiver.status = status
        response = requests.post(f"{receiver.url}/lineage", json={}, timeout=5)
        error = _raised(response.raise_for_status)
        assert is_transient(error) is transient, status
        if transient:
            assert transient_reason(error) == f"HTTP {status}"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = _raised(lambda: requests.post(f"http://127.0.0.1:{port}/", json={}, timeout=5))
    assert isinstance(refused, requests.ConnectionError) and is_transient(refused)


def test_a_step_blocked_by_a_lock_in_another_process_retries_and_succeeds(
    held_lock: tuple[Path, LockHolder],
) -> None:
    path, holder = held_lock
    attempts: list[int] = []

    @dg.asset(key=["commerce", "silver", "locked"])
    def locked(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> None:
        attempts.append(context.retry_number)
        if context.retry_number == 1:
            holder.release()  # the other process finishes between the attempts
        with warehouse.connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS written AS SELECT 1 AS x")

    retried = with_transient_retries(locked, FAST)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [retried], instance=instance, resources={"warehouse": WarehouseResource(path=str(path))}
        )
        assert result.success
        retries = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
        ]
    assert attempts == [0, 1] and len(retries) == 1
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT x FROM written").fetchall() == [(1,)]


def test_retries_used_up_fail_with_the_original_error(held_lock: tuple[Path, LockHolder]) -> None:
    path, _ = held_lock
    attempts: list[int] = []

    @dg.asset
    def never_free(context: dg.AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        duckdb.connect(str(path))

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [with_transient_retries(never_free, FAST)], instance=instance, raise_on_error=False
        )
    assert not result.success
    assert attempts == [0, 1, 2, 3]
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error is not None
    assert "IOException" in {error.cls_name, error.cause.cls_name if error.cause else None}


@pytest.mark.parametrize(
    "error",
    [
        dg.Failure("3 rows break the contract rule amount_positive"),
        ValueError("unparseable date '2026-13-01'"),
        FileNotFoundError(errno.ENOENT, "No such file", "landing/2026-01-01/orders.csv"),
        RuntimeError("a bug"),
    ],
)
def test_contract_and_data_errors_run_once_and_fail_as_themselves(error: Exception) -> None:
    attempts: list[int] = []

    @dg.asset
    def broken(context: dg.AssetExecutionContext) -> None:
        attempts.append(context.retry_number)
        raise error

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [with_transient_retries(broken, FAST)], instance=instance, raise_on_error=False
        )
    assert not result.success and attempts == [0]
    assert not [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    reported = failure.step_failure_data.error
    assert reported is not None
    names = {reported.cls_name, reported.cause.cls_name if reported.cause else None}
    assert type(error).__name__ in names
    with pytest.raises(type(error)):  # raised as itself, as without the wrapper
        dg.materialize([with_transient_retries(broken, FAST)])


class Limits(dg.Config):
    rows: int = 2


def test_a_generator_multi_asset_stays_a_generator_with_its_resources_and_config(
    held_lock: tuple[Path, LockHolder],
) -> None:
    path, holder = held_lock
    attempts: list[int] = []

    @dg.multi_asset(
        specs=[dg.AssetSpec(["commerce", "gold", "a"]), dg.AssetSpec(["commerce", "gold", "b"])]
    )
    def pair(
        context: dg.AssetExecutionContext, config: Limits, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        attempts.append(context.retry_number)
        yield dg.MaterializeResult(asset_key=["commerce", "gold", "a"], metadata={"rows": 1})
        if context.retry_number == 1:
            holder.release()
        with warehouse.connect() as con:  # fails on the lock after the first output
            con.execute(f"CREATE OR REPLACE TABLE b AS SELECT range AS x FROM range({config.rows})")
        yield dg.MaterializeResult(asset_key=["commerce", "gold", "b"])

    retried = with_transient_retries(pair, FAST)
    compute = retried.op.compute_fn
    assert isinstance(compute, DecoratedOpFunction)
    assert inspect.isgeneratorfunction(compute.decorated_fn)
    assert getattr(compute.decorated_fn, WRAPPED_MARK)
    assert [p.name for p in compute.get_resource_args()] == ["warehouse"]
    assert compute.has_context_arg() and compute.has_config_arg()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [retried],
            instance=instance,
            resources={"warehouse": WarehouseResource(path=str(path))},
            run_config={"ops": {"pair": {"config": {"rows": 3}}}},
        )
    assert result.success and attempts == [0, 1]
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM b").fetchone() == (3,)


def test_platform_policy_wraps_every_executable_asset_once() -> None:
    """Every decorated op of the code location retries transient errors; applying the policy
    again wraps nothing twice."""
    defs = apply_platform_policy(discover(assets, sensors), resources={})
    executable = [
        a
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition)
        and a.is_executable
        and isinstance(a.node_def, OpDefinition)
    ]
    assert executable
    for assets_def in executable:
        compute = assets_def.op.compute_fn
        assert isinstance(compute, DecoratedOpFunction), assets_def.op.name
        assert getattr(compute.decorated_fn, WRAPPED_MARK, False), assets_def.op.name
        assert with_wrapped_compute(assets_def, lambda fn: fn) is assets_def
