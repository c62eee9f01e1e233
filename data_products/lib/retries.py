"""Retries that know transient from permanent: a step that failed on a lock held by another
process, a flaky disk or an endpoint answering 503 is retried in the same run, with exponential
backoff and jitter; a contract failure, a data error or a bug is never retried.

Why not ``dg.RetryPolicy``: Dagster applies a retry policy to every exception the step raises
(``op_execution_error_boundary`` turns any of them into a retry request), so a policy on every
asset would re-run a contract failure five times before it fails, and delay its alert. Platform
policy instead wraps every executable asset's compute function (``with_transient_retries``): a
transient error is re-raised as ``dg.RetryRequested`` with the backoff of this attempt, every
other exception propagates unchanged (no retry, the same exception type as without the wrapper).
When the retries are used up the step fails with the original exception.

What counts as transient (the exception or anything in its ``__cause__``/``__context__`` chain):

- DuckDB: another process holds the file's lock (``IOException ... Could not set lock``, also
  when dbt quotes it in dagster-dbt's ``DagsterDbtCliRuntimeError``), a write-write transaction
  conflict (``TransactionException ... conflict``);
- SQLite (Dagster's storage, the Iceberg SQL catalog): ``database is locked`` / ``busy``;
- ``OSError`` with a transient errno only (``TRANSIENT_ERRNOS``: EIO, EAGAIN, EBUSY, ETIMEDOUT,
  connection resets...), never ``FileNotFoundError`` or ``PermissionError`` (a missing file or a
  wrong mode does not fix itself);
- Iceberg and Delta: a concurrent commit to the same table (``CommitFailedException``,
  ``CommitFailedError``); lake writes are idempotent, so the step runs again on the new snapshot;
- HTTP (lineage and webhook endpoints, through requests, urllib3 or httpx): connection errors,
  timeouts, answers 5xx and 429.

A chain that also holds a permanent error (``PERMANENT_TYPES``: a ``dg.Failure``, a type check, a
``ValueError``/``TypeError``/``LookupError``, a DuckDB data/constraint/binder error, a pandera
schema error) is permanent whatever it wraps: code that turned a lock error into a data error
said what it means.
"""

from __future__ import annotations

import errno
import functools
import inspect
import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg
import duckdb

from data_products.lib.compat.dagster_assets import with_wrapped_compute

F = TypeVar("F", bound=Callable[..., Any])

TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ETIMEDOUT,
        errno.EDEADLK,
        errno.ENOLCK,
        errno.ESTALE,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)
"""errnos of conditions that end by themselves (a busy device, a lock, a lost connection)."""

RETRYABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})

DUCKDB_LOCK_TEXT = "Could not set lock"
"""How DuckDB says another process holds the file (``IO Error: Could not set lock on file``)."""
DBT_CLI_ERROR = "DagsterDbtCliRuntimeError"
"""dagster-dbt's error for a failed dbt command (a ``dg.Failure``, named here so that lib does not
import dagster-dbt for a type check)."""

PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    dg.Failure,
    dg.DagsterTypeCheckDidNotPass,
    ValueError,  # pydantic's ValidationError too
    TypeError,
    LookupError,
    AssertionError,
    ArithmeticError,
    FileNotFoundError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.ProgrammingError,
)
"""Errors that mean the data, the contract or the code is wrong: never retried."""

_LAKE_MODULES = frozenset({"pyiceberg", "deltalake"})
_LAKE_CONFLICT_NAMES = frozenset({"CommitFailedException", "CommitFailedError"})
"""A concurrent commit to the same Iceberg or Delta table: the writes are idempotent, so the
step is simply run again on the new snapshot."""

_HTTP_MODULES = frozenset({"requests", "urllib3", "httpx"})
_HTTP_TRANSIENT_NAMES = frozenset(
    {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "TimeoutException",
        "TransportError",
        "NetworkError",
        "ProtocolError",
        "NewConnectionError",
        "MaxRetryError",
        "RemoteProtocolError",
        "ChunkedEncodingError",
    }
)


@dataclass(frozen=True)
class TransientRetryPolicy:
    """Exponential backoff with jitter: attempt ``n`` (0-based) waits a random time between half
    and all of ``min(max_seconds, base_seconds * 2**n)``.

    The defaults wait 1-2, 2-4, 4-8, 8-16 and 16-32 s (31-62 s in all): longer than the locks seen
    here (a sensor reading the warehouse holds it for well under a second, a CLI query for a few
    seconds), short enough that a run blocked for good fails within a minute. The jitter keeps
    two runs that collided from colliding again at the same instant."""

    max_retries: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 60.0

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2**retry_number)
        return (rng or _JITTER).uniform(ceiling / 2, ceiling)


_JITTER = random.Random()  # noqa: S311 - jitter, not cryptography
DEFAULT_POLICY = TransientRetryPolicy()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once (chains can loop)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "orig", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _transient_reason(exc: BaseException) -> str | None:
    """Why this one exception (not its chain) is transient, in words without its message (an
    HTTP error's message names the URL, which may carry a token)."""
    message = str(exc)
    if isinstance(exc, duckdb.IOException) and DUCKDB_LOCK_TEXT in message:
        return "DuckDB lock held by another process"
    if isinstance(exc, duckdb.TransactionException) and "onflict" in message:
        return "DuckDB transaction conflict"
    if isinstance(exc, sqlite3.OperationalError) or type(exc).__name__ == "OperationalError":
        lowered = message.lower()
        if "database is locked" in lowered or "database table is locked" in lowered:
            return "SQLite database locked"
        if "database is busy" in lowered:
            return "SQLite database busy"
    module = type(exc).__module__.split(".")[0]
    if module in _LAKE_MODULES and type(exc).__name__ in _LAKE_CONFLICT_NAMES:
        return "lake commit conflict"
    if module in _HTTP_MODULES:
        status = _http_status(exc)
        if status is not None:
            return f"HTTP {status}" if status in RETRYABLE_HTTP_STATUSES else None
        if any(k.__name__ in _HTTP_TRANSIENT_NAMES for k in type(exc).__mro__):
            return f"HTTP {type(exc).__name__}"
        return None
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return f"OSError {errno.errorcode.get(exc.errno, exc.errno)}"
    if isinstance(exc, TimeoutError | ConnectionError):  # raised without an errno
        return type(exc).__name__
    return None


def transient_reason(exc: BaseException) -> str | None:
    """Why ``exc`` is worth retrying, or ``None`` when it is permanent (see the module
    docstring): the first transient error in its chain, unless the chain holds a permanent one."""
    links = list(_chain(exc))
    for link in links:
        # dagster-dbt reports every dbt failure as a ``Failure``, a data test's as well as a
        # model that could not open the warehouse; the lock is named in the dbt error it quotes.
        if type(link).__name__ == DBT_CLI_ERROR and DUCKDB_LOCK_TEXT in str(link):
            return "DuckDB lock held by another process (dbt)"
    if any(isinstance(link, PERMANENT_TYPES) for link in links):
        return None
    for link in links:
        reason = _transient_reason(link)
        if reason is not None:
            return reason
    return None


def is_transient(exc: BaseException) -> bool:
    return transient_reason(exc) is not None


def _retry_request(exc: Exception, policy: TransientRetryPolicy) -> dg.RetryRequested | None:
    """A retry request for a transient ``exc`` raised inside a step, ``None`` otherwise (not
    transient, retries used up, or no step running)."""
    reason = transient_reason(exc)
    if reason is None:
        return None
    try:
        context = dg.OpExecutionContext.get()
    except dg.DagsterInvariantViolationError:  # called outside a step (a direct invocation)
        return None
    attempt = context.retry_number
    if attempt >= policy.max_retries:
        context.log.warning(f"{reason}: retries used up ({policy.max_retries}), failing")
        return None
    wait = policy.delay(attempt)
    context.log.warning(
        f"{reason} ({type(exc).__name__}): transient, retry {attempt + 1} of "
        f"{policy.max_retries} in {wait:.1f} s"
    )
    return dg.RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait)


def retrying(fn: F, policy: TransientRetryPolicy = DEFAULT_POLICY) -> F:
    """``fn`` (an op's decorated compute function) re-raising transient errors as retry
    requests. A generator function stays a generator function (Dagster inspects it), with the
    same signature (``functools.wraps``: Dagster reads the context, config and resource
    parameters from it). Async functions are returned unchanged."""
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return fn
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(*args, **kwargs))
            except Exception as exc:
                request = _retry_request(exc, policy)
                if request is None:
                    raise
                raise request from exc

        return generator  # type: ignore[return-value]  # same signature, via functools.wraps

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            request = _retry_request(exc, policy)
            if request is None:
                raise
            raise request from exc

    return call  # type: ignore[return-value]  # same signature, via functools.wraps


def with_transient_retries(
    assets_def: dg.AssetsDefinition, policy: TransientRetryPolicy = DEFAULT_POLICY
) -> dg.AssetsDefinition:
    """``assets_def`` whose step retries transient errors (platform policy applies it to every
    executable asset, so domains never declare retries)."""
    return with_wrapped_compute(assets_def, lambda fn: retrying(fn, policy))
