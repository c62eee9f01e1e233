"""One CDC micro-batch, exactly once: read the slot, apply to every sink, then advance the slot.

Order of a batch, and why each step is where it is:
1. peek the slot (nothing consumed);
2. decode and type every change -- a change that cannot be represented stops the batch *before*
   it: the transactions ahead of it are applied and the slot advanced up to them, then the error
   names table, key and LSN (nothing after it is skipped or lost);
3. per table and per sink, keep the changes past that sink's own watermark, deduplicate to the
   last change per key, and commit with the batch's end LSN stamped in the same commit;
4. save the schema state, then advance the slot. A crash anywhere before the advance replays the
   batch, and every sink skips what it already holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from data_products.lib.cdc.frames import LSN_COLUMN, ChangeError, change_frames, snapshot_frame
from data_products.lib.cdc.lsn import format_lsn
from data_products.lib.cdc.pgoutput import DecodeError, Relation, Transaction, decode_transactions
from data_products.lib.cdc.schema import CdcState, TableState
from data_products.lib.cdc.sinks import DeltaMirror, IcebergHistory, IcebergMirror, mirror_frame
from data_products.lib.cdc.source import SlotError, SlotSource
from data_products.lib.timer import PhaseTimer

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

NAMESPACE = "cdc_silver"
MAX_BATCH_CHANGES = 50_000
"""The batch cap (pgoutput messages; a batch ends on a whole transaction). A batch rewrites the
data files its keys fall in, a cost that follows the table's size more than the batch's, so
bigger batches raise throughput; the cap bounds how long one batch (and so the lag) can take.
Measured on 1,000,000 rows: batches settle at 20-35k changes under ~7k changes/s of load with
a lag p95 of seconds; before the sinks were reworked, batches grew to a 100k cap and the lag p95
reached 118 s (assets/cdc/README.md)."""


@dataclass
class TableBatch:
    changes: int = 0
    keys: int = 0
    deletes: int = 0


@dataclass
class BatchResult:
    start_lsn: int
    end_lsn: int
    transactions: int = 0
    changes: int = 0
    snapshot: bool = False
    tables: dict[str, TableBatch] = field(default_factory=dict)
    schema_events: list[str] = field(default_factory=list)
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    """Wall and CPU seconds per step (snapshot_read, decode, frames, iceberg, delta, history)."""
    first_commit_time: object = None
    last_commit_time: object = None
    commit_times: list[datetime] = field(default_factory=list)

    @property
    def seconds(self) -> dict[str, float]:
        """Wall seconds per step."""
        return self.timer.wall_by_phase()

    @property
    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of this process per step (all its threads): comparable across runs on a
        shared machine, where wall times depend on what else runs."""
        return self.timer.cpu_by_phase()

    @property
    def lsn_range(self) -> str:
        return f"{format_lsn(self.start_lsn)}-{format_lsn(self.end_lsn)}"


@dataclass
class TableSinks:
    iceberg: IcebergMirror
    delta: DeltaMirror
    history: IcebergHistory


class CdcPipeline:
    """The slot, the lake sinks of every captured table, and the state file tying them."""

    def __init__(
        self,
        source: SlotSource,
        catalog: Catalog,
        delta_root: str,
        state_path: Path,
        *,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        self.source = source
        self.catalog = catalog
        self.delta_root = delta_root.rstrip("/")
        self.state_path = state_path
        self.storage_options = storage_options

    def sinks(self, table: str) -> TableSinks:
        return TableSinks(
            iceberg=IcebergMirror(self.catalog, NAMESPACE, table),
            delta=DeltaMirror(
                f"{self.delta_root}/{NAMESPACE}/{table}",
                app_id=f"cdc:{self.source.slot}:{table}",
                storage_options=self.storage_options,
            ),
            history=IcebergHistory(self.catalog, NAMESPACE, f"{table}_history"),
        )

    def state(self) -> CdcState:
        return CdcState.load(self.state_path)

    # -- bootstrap ------------------------------------------------------------------------------

    def ensure_started(self) -> BatchResult | None:
        """Create the slot and load the initial snapshot on first use; ``None`` when running."""
        if self.source.slot_exists():
            if not self.state_path.exists():
                raise SlotError(
                    f"slot {self.source.slot!r} exists but {self.state_path} does not: the lake "
                    "does not match the slot; drop the slot to re-snapshot"
                )
            return None
        self.source.prepare_tables()
        timer = PhaseTimer()
        with timer.phase("snapshot_read"):
            snapshot = self.source.create_slot_with_snapshot()
        state = CdcState(as_of_lsn=snapshot.lsn)
        result = BatchResult(snapshot.lsn, snapshot.lsn, snapshot=True, timer=timer)
        for name, table in snapshot.tables.items():
            table_state = TableState.from_relation(table.relation, table.keys)
            state.tables[name] = table_state
            frame = snapshot_frame(
                table_state, table.rows, lsn=snapshot.lsn, taken_at=snapshot.taken_at
            )
            self._apply_table(name, frame, table_state, snapshot.lsn, result, snapshot=True)
        state.save(self.state_path)
        return result

    # -- batches --------------------------------------------------------------------------------

    def pending_range(self, max_changes: int | None = None) -> tuple[int, int, int] | None:
        """(start, end, transactions) of the next batch, or ``None`` when the slot is drained."""
        start = self.source.confirmed_lsn()
        rows = self.source.peek(max_changes=max_changes)
        try:
            transactions, _ = decode_transactions(rows)
        except DecodeError:
            transactions = []
            end = self.source.current_lsn()  # a bad message: let the run report it
            return (start, end, 0) if end > start else None
        if not transactions:
            return None
        return start, transactions[-1].commit_lsn, len(transactions)

    def run_batch(
        self,
        *,
        upto_lsn: int | None = None,
        max_changes: int | None = None,
        after_sinks_commit: Callable[[BatchResult], None] | None = None,
    ) -> BatchResult:
        """Apply the slot's next transactions (up to ``upto_lsn`` / about ``max_changes``)."""
        timer = PhaseTimer()
        failure: Exception | None = None
        with timer.phase("decode"):
            start = self.source.confirmed_lsn()
            rows = self.source.peek(upto_lsn=upto_lsn, max_changes=max_changes)
            try:
                transactions, _ = decode_transactions(rows)
            except DecodeError as exc:
                transactions, failure = _decoded_before(rows, exc), exc
            if upto_lsn is not None:
                transactions = [t for t in transactions if t.commit_lsn <= upto_lsn]
            state = self.state()
            transactions = [t for t in transactions if t.commit_lsn > state.as_of_lsn]
        with timer.phase("frames"):
            while True:
                try:
                    work = state.copy()
                    frames, events = change_frames(transactions, work)
                    break
                except ChangeError as exc:  # apply what precedes it, then report it
                    transactions = [t for t in transactions if t.commit_lsn < exc.commit_lsn]
                    failure = exc
        end = transactions[-1].commit_lsn if transactions else start
        result = BatchResult(start, end, timer=timer)
        result.transactions = len(transactions)
        result.changes = sum(len(t.changes) for t in transactions)
        result.schema_events = events
        if transactions:
            result.first_commit_time = transactions[0].commit_time
            result.last_commit_time = transactions[-1].commit_time
            result.commit_times = [t.commit_time for t in transactions]
        for table, frame in frames.items():
            self._apply_table(table, frame, work.tables[table], result.end_lsn, result)
        if after_sinks_commit is not None:
            after_sinks_commit(result)
        if transactions:
            work.as_of_lsn = result.end_lsn
            work.save(self.state_path)
            self.source.advance(result.end_lsn)
        if failure is not None:
            raise failure
        return result

    def _apply_table(
        self,
        table: str,
        frame: pl.DataFrame,
        state: TableState,
        lsn: int,
        result: BatchResult,
        *,
        snapshot: bool = False,
    ) -> None:
        sinks = self.sinks(table)
        data_columns = list(state.columns)
        stats = result.tables.setdefault(table, TableBatch())
        stats.changes += frame.height
        for label, sink in (("iceberg", sinks.iceberg), ("delta", sinks.delta)):
            with result.timer.phase(label):
                if snapshot:
                    sink.replace_all(mirror_frame(frame, data_columns), lsn)
                else:
                    fresh = frame.filter(pl.col(LSN_COLUMN) > sink.watermark())
                    if fresh.height:
                        latest = mirror_frame(fresh, data_columns)
                        stats.keys = latest.height
                        stats.deletes = int((latest["_cdc_op"] == "d").sum())
                        sink.apply(latest, lsn)
        with result.timer.phase("history"):
            if snapshot:
                sinks.history.replace_all(frame, lsn)
            else:
                fresh = frame.filter(pl.col(LSN_COLUMN) > sinks.history.watermark())
                if fresh.height:
                    sinks.history.apply(fresh, lsn)


def _decoded_before(rows: list[tuple[str, int, bytes]], error: DecodeError) -> list[Transaction]:
    """The complete transactions ahead of a malformed message (decoded again, one by one)."""
    good: list[Transaction] = []
    relations: dict[int, Relation] = {}
    pending: list[tuple[str, int, bytes]] = []
    for row in rows:
        pending.append(row)
        if bytes(row[2][:1]) == b"C":
            try:
                transactions, relations = decode_transactions(pending, relations)
            except DecodeError:
                break
            good += transactions
            pending = []
    return good
