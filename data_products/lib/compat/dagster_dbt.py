"""dagster-dbt internals (written against dagster-dbt 0.29.27 with dbt-core 1.11).

``tests/lib/test_compat.py`` fails when the installed dagster-dbt is not the version below, when
a private method overridden here is gone or changed its signature, and when dagster-dbt's own
behaviour that made a workaround necessary has changed: re-check this module then.

1. ``PlatformDbtCliResource``: dagster-dbt's CLI resource with two start-up costs taken off the
   run's critical path. Before it starts dbt, ``DbtCliResource.cli`` runs ``dbt --version`` in a
   subprocess (2.0 s, private ``_cli_version``) and builds an in-process dbt adapter (3.7 s, most
   of it loading every macro; private ``_initialize_dbt_core_adapter``), which it needs only
   after the run, to read row counts and column schemas. Profiled on the 7-day commerce
   benchmark, that was 5.6 s of serial wall time in every gold step. Here the version is read
   from the installed dbt-core when the executable is this environment's own, and
   :meth:`PlatformDbtCliResource.cli_overlapped` builds the adapter while the dbt process runs.
2. ``finished_events``: the run's events with row counts and column metadata, without
   ``invocation.stream().fetch_row_counts().fetch_column_metadata()``: those wrap the stream in
   dagster's ``imap``, whose consumer loop polls ``Future.done()`` without waiting while the
   queue is empty, i.e. it spins a CPU core for the whole dbt run (8 million polls in one 7-day
   benchmark run); on two cores that halves DuckDB's speed inside dbt. ``DbtEventIterator`` is
   not exported at dagster-dbt's top level.
"""

# No `from __future__ import annotations`: Dagster's config system inspects the resource's
# annotations at class creation.
import importlib.metadata
import logging
from collections.abc import Iterator, Sequence
from contextlib import chdir
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource
from dagster_dbt.compat import BaseAdapter
from dagster_dbt.core.dbt_event_iterator import DbtEventIterator
from packaging import version

from data_products.lib.dbt_project import ENVIRONMENT_BIN

WRITTEN_AGAINST = "0.29.27"
"""The dagster-dbt version this module's private names were read from."""

_log = logging.getLogger(__name__)


class PlatformDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without ``dbt --version`` and with the metadata adapter built while dbt
    runs (see the module docstring)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if self.dbt_executable == str(ENVIRONMENT_BIN / "dbt"):
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> BaseAdapter | None:  # type: ignore[override]  # None: no adapter in a fresh process (see docstring)
        return None  # built by cli_overlapped once the dbt process has started

    def cli_overlapped(
        self, args: Sequence[str], *, context: dg.AssetExecutionContext, target_path: Path
    ) -> DbtCliInvocation:
        """``cli(args)``, then the metadata adapter, built while dbt parses and runs."""
        invocation = self.cli(args, context=context, target_path=target_path)
        with chdir(str(self.project_dir)):
            try:
                invocation.adapter = DbtCliResource._initialize_dbt_core_adapter(self, args)
            except Exception:  # as dagster-dbt does: the run goes on without row counts
                _log.warning("could not create the dbt adapter for metadata", exc_info=True)
        return invocation


def finished_events(invocation: DbtCliInvocation) -> Iterator[Any]:
    """The run's events once dbt has exited, with row counts and column metadata attached.

    For DuckDB, dagster-dbt waits for the process to exit before fetching anything anyway (the
    warehouse has a single writer), so nothing is lost by draining the stream first: the fetches
    then run over a finished list and return at once. Events produced before a failure are still
    reported, then the failure is raised, as dagster-dbt does.
    """
    events: list[Any] = []
    failure: Exception | None = None
    try:
        events.extend(invocation.stream())
    except Exception as exc:
        failure = exc
    enriched = DbtEventIterator(iter(events), invocation)
    yield from enriched.fetch_row_counts().fetch_column_metadata()
    if failure is not None:
        raise failure
