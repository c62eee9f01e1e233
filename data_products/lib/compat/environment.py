"""The only place in the platform that changes this process's environment (``os.environ``).

Settings are read from the environment, never written to it; values are passed as arguments
wherever a library takes them. These are the cases where the library reads its configuration
from the process environment and offers no argument, each named by its caller:

- ``DAGSTER_HOME`` (``data_products.lib.instance.ensure_dagster_home``): ``DagsterInstance.get()``
  and the ``dagster`` CLI find the instance only through it, and processes a run spawns inherit it;
- ``DAGSTER_EVENT_BATCH_SIZE`` (``data_products.lib.compat.dagster``): Dagster 1.13 hands events to
  the storage in batches only when it is set, and reads it nowhere else;
- ``PATH`` (``data_products.lib.dbt_project``): dagster-dbt's project preparer runs whichever
  ``dbt`` PATH finds and takes no executable;
- ``DATA_PRODUCTS_DBT_MIN_DATE`` / ``_MAX_DATE`` (``data_products.lib.dbt``): dagster-dbt 0.29's
  ``DbtCliResource.cli`` copies ``os.environ`` into the dbt process and has no per-call
  environment (a ``--vars`` value would void dbt's partial parsing);
- ``DATA_PRODUCTS_POSTGRES_PASSWORD`` (``resources.postgres.ensure_password``): the resource
  reads it as ``dg.EnvVar`` when a run starts, in this process for in-process runs;
- ``DATA_PRODUCTS_PAYMENTS_STREAM_MAX_BATCH`` (``assets.payments.demo``): the stream sensor reads
  its batch cap from the environment at tick time.

``tests/lib/test_compat.py`` fails when any other module of the project assigns to, pops from or
calls ``putenv`` on the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


def export(name: str, value: str) -> None:
    """Set ``name`` for this process and every process it starts."""
    os.environ[name] = value


def set_default(name: str, value: str) -> None:
    """Set ``name`` unless the environment already gives it (the environment wins)."""
    os.environ.setdefault(name, value)


def prepend_to_path(directory: str) -> None:
    """Put ``directory`` first on ``PATH`` (idempotent: nothing changes when it already is)."""
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != directory:
        os.environ["PATH"] = os.pathsep.join([directory, path]) if path else directory


@contextmanager
def scoped(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or unset, for ``None``) ``values`` for the duration of the block, then restore what
    was there. For a call that copies the environment when it starts a process: steps of a run
    execute one at a time, so the window is safe."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _assign(name, value)
        yield
    finally:
        for name, value in saved.items():
            _assign(name, value)


def _assign(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
