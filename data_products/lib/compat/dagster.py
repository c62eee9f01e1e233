"""Dagster internals (written against dagster 1.13.27): the local instance's storage, and one
enum Dagster does not re-export.

``tests/lib/test_compat.py`` fails when the installed dagster is not the version below, and when
a private name used here has moved or changed its signature: re-check this module then.

1. ``PooledSqliteStorage``: Dagster's SQLite storage with an event log that keeps its
connections and writes batches in one transaction (about fifteen private imports: the storage
classes, their schema tables and helpers are not public API).

Why: a single-run backfill writes one ``ASSET_MATERIALIZATION`` per asset per partition and, by
default, one ``ASSET_MATERIALIZATION_PLANNED`` per asset per partition (the aviation year: about
12,500 events). Dagster 1.13's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for
every statement group (``NullPool``), so each event pays for an engine, a connection, a cold
statement compile, a commit with a full fsync and a close that checkpoints the WAL, twice for an
asset event (run shard, then index shard): 7-10 ms of CPU per event here, most of a year's run.
Its ``store_event_batch`` is the base class's loop, so ``DAGSTER_EVENT_BATCH_SIZE`` changed
nothing. PostgreSQL (dagster-postgres) is the production answer; this is the embedded default.

What changes (the files, tables and rows are Dagster's own, so the UI, the daemon and existing
instances read them unchanged):

- one engine per shard, kept open (per process, a few shards at most), so statements stay
  compiled and connections stay open;
- ``PRAGMA synchronous=NORMAL``: in WAL mode a commit no longer waits for an fsync; the database
  cannot be corrupted, only the last commits before a power loss (not a process crash) can be
  lost, which is acceptable for a development instance;
- after every transaction that changed a run shard, the run's ``.db`` file is marked modified:
  the UI follows a running run by watching that file (``SqliteEventLogStorageWatchdog``), and a
  kept-open WAL connection writes to the ``-wal`` file until SQLite's own checkpoint;
- a planned partitioned check writes its per-partition rows with one statement and the event
  serialised once (Dagster serialises it again for each of a year's 365 rows);
- ``store_event_batch`` writes consecutive asset events (materialisations, planned
  materialisations) of a batch in one run-shard and one index transaction, with the same rows
  and index updates ``store_event`` writes; other events go through ``store_event``;
- Dagster hands batches to the storage only when ``DAGSTER_EVENT_BATCH_SIZE`` > 0: the storage
  sets it (unless the environment already does) when it is built, so every process that loads
  this instance, CLI runs and daemon-launched runs alike, batches.

2. ``AssetCheckExecutionRecordStatus``: the status of the records the public
``event_log_storage.get_latest_asset_check_execution_by_key`` returns, not re-exported at the
top level in 1.13 (``sensors/ml_drift.py`` compares against it).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster._config import StringSource
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

from data_products.lib.compat.environment import set_default

WRITTEN_AGAINST = "1.13.27"
"""The dagster version this module's private names were read from."""

__all__ = [
    "WRITTEN_AGAINST",
    "AssetCheckExecutionRecordStatus",
    "PooledSqliteEventLogStorage",
    "PooledSqliteStorage",
    "SqliteEventLogStorage",
]

EVENT_BATCH_SIZE = "1000"
"""Events Dagster buffers per batch (one step output's partitions, a run's planned events)."""

_KEPT_ENGINES = 4
"""Shards kept open per process: the index and the running run's shard, plus a few the UI reads
(an engine per run ever opened would leak file handles in a long-lived webserver)."""


def _is_plain_asset_event(event: EventLogEntry) -> bool:
    """An asset event that ``store_event`` mirrors into the index and nothing else."""
    dagster_event = event.dagster_event
    return (
        dagster_event is not None
        and dagster_event.event_type in ASSET_EVENTS
        and dagster_event.asset_key is not None
        and dagster_event.event_type not in ASSET_CHECK_EVENTS
        and dagster_event.event_type not in EVENT_TYPE_TO_PIPELINE_RUN_STATUS
    )


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with kept-open connections and one-transaction batches."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._known_tables: set[str] = set()
        self._known_asset_key_columns: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)
        set_default("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)

    def _engine(self, shard: str) -> Engine:
        """The kept engine of ``shard`` (called under ``_db_lock``, so no connection is out)."""
        if self._engines_pid != os.getpid():
            # A forked child must not share its parent's SQLite connections.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._engines_pid = os.getpid()
        kept = self._engines.get(shard)
        if kept is not None:
            self._engines.move_to_end(shard)
            return kept
        if shard not in self._initialized_dbs:
            # Dagster's schema set-up opens connections of its own: give it a throw-away engine.
            setup = db.create_engine(
                self.conn_string_for_shard(shard),
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            self._initdb(setup)
            setup.dispose()
            self._initialized_dbs.add(shard)
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        db.event.listen(engine, "connect", _set_pragmas)
        self._engines[shard] = engine
        while len(self._engines) > _KEPT_ENGINES:
            _, oldest = self._engines.popitem(last=False)
            oldest.dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn:
                raw = conn.connection.driver_connection
                changes = raw.total_changes if raw is not None else 0
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and raw is not None and raw.total_changes > changes:
                    # The UI follows a running run by watching its .db file, which a kept-open
                    # WAL connection leaves untouched until a checkpoint: mark it modified
                    # (a checkpoint would do it too, at the cost of an fsync per event).
                    os.utime(self.path_for_shard(shard))

    # Dagster asks the schema once per asset event (a fresh engine for has_table, a reflection
    # per connection for the column). Tables and columns only ever appear (migrations), so a
    # positive answer is kept for the life of the process; a negative one is asked again.
    def has_table(self, table_name: str) -> bool:
        if table_name not in self._known_tables and super().has_table(table_name):
            self._known_tables.add(table_name)
        return table_name in self._known_tables

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        if column_name not in self._known_asset_key_columns and (
            super()._has_asset_key_col_on_connection(conn, column_name)
        ):
            self._known_asset_key_columns.add(column_name)
        return column_name in self._known_asset_key_columns

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Consecutive plain asset events in one transaction per shard; others one by one."""
        pending: list[EventLogEntry] = []
        for event in events:
            if _is_plain_asset_event(event):
                pending.append(event)
                continue
            self._store_asset_events(pending)
            pending = []
            self.store_event(event)
        self._store_asset_events(pending)

    def _store_asset_events(self, events: Sequence[EventLogEntry]) -> None:
        """What ``SqliteEventLogStorage.store_event`` writes for each asset event, in one run-shard
        transaction and one index transaction per run, each row kind as one executemany of one
        compiled statement (Dagster builds and compiles an ``insert().values(...)`` per event).

        The asset-key row (latest materialisation, last run, timestamp) is written from the last
        event of each type per asset key only, as dagster-postgres's batch writer does: an
        earlier event's update would be overwritten in the same transaction, and serialising
        each materialisation a second time for it was a third of a batch's cost.
        """
        by_run: dict[str, list[EventLogEntry]] = {}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        for run_id, run_events in by_run.items():
            rows = [self._event_to_row(event) for event in run_events]
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), rows)
            with self.index_transaction() as conn:
                inserted = conn.execute(
                    SqlEventLogStorageTable.insert().returning(
                        SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                    ),
                    rows,
                )
                event_ids = [int(event_id) for event_id in inserted.scalars()]
                self._store_asset_event_tags(conn, run_events, event_ids)
                latest: dict[tuple[str, str], tuple[int, EventLogEntry, int]] = {}
                for position, (event, event_id) in enumerate(
                    zip(run_events, event_ids, strict=True)
                ):
                    dagster_event = event.get_dagster_event()
                    key = (str(dagster_event.asset_key), dagster_event.event_type_value)
                    latest[key] = (position, event, event_id)
                for _, event, event_id in sorted(latest.values(), key=lambda item: item[0]):
                    self._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """The rows Dagster writes for a planned check (one per partition of the run), with the
        event serialised once instead of once per partition and one compiled statement run for
        every row instead of a new multi-row statement per event: for a year's range this was
        60 ms per check (138 checks) and most of the run's planning phase."""
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        partition_keys: list[str | None] = (
            list(planned.partitions_subset.get_partition_keys())
            if planned.partitions_subset
            else [None]
        )
        shared = dict(
            asset_key=planned.asset_key.to_string(),
            check_name=planned.check_name,
            run_id=event.run_id,
            execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
            evaluation_event=serialize_value(event),
            # A private Dagster helper without annotations.
            evaluation_event_timestamp=self._event_insert_timestamp(event),  # type: ignore[no-untyped-call]
            evaluation_event_storage_id=event_id,
        )
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert(),
                [{**shared, "partition": key} for key in partition_keys],
            )

    def dispose(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (same folders under ``base_dir``: ``history/``,
    ``history/runs/``, ``schedules/``) with :class:`PooledSqliteEventLogStorage` as event log.

    Configured in dagster.yaml as ``storage: custom:`` with ``base_dir: {env: DAGSTER_HOME}``,
    so the file names no absolute path."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        Path(base_dir).mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        # Skips DagsterSqliteStorage.__init__ (it builds the stock event log); the base class's
        # __init__ carries no annotations.
        super(DagsterSqliteStorage, self).__init__()  # type: ignore[no-untyped-call]

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        return {"base_dir": StringSource}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> PooledSqliteStorage:
        return cls(str(config_value["base_dir"]), inst_data=inst_data)
