"""Assertions shared by the CDC tests: mirrors and history against the real source."""

from __future__ import annotations

import polars as pl
import psycopg

from data_products.lib.cdc.lsn import parse_lsn
from data_products.lib.cdc.pipeline import CdcPipeline
from data_products.lib.cdc.schema import KEY_COLUMN, CdcState
from data_products.lib.cdc.source import TableSnapshot
from data_products.lib.cdc.timetravel import history_as_of
from data_products.lib.cdc.verify import compare, row_hashes, source_view, typed_source


def drain(pipeline: CdcPipeline, max_changes: int = 300) -> int:
    """Run batches until the slot has nothing left; returns how many ran."""
    batches = 0
    while pipeline.pending_range(max_changes=max_changes) is not None:
        pipeline.run_batch(max_changes=max_changes)
        batches += 1
    return batches


def assert_mirrors_match_source(pipeline: CdcPipeline) -> None:
    state = pipeline.state()
    view = source_view(pipeline.source, state)
    assert view.pending_transactions == 0
    for table, table_state in state.tables.items():
        sinks = pipeline.sinks(table)
        for sink, frame in (("iceberg", sinks.iceberg.read()), ("delta", sinks.delta.read())):
            assert frame[KEY_COLUMN].is_unique().all(), f"{table}/{sink}: duplicate keys"
            result = compare(table, sink, frame, view, list(table_state.columns))
            assert result.consistency_rate == 1.0, (table, sink, result.sample())
            assert result.sink_rows == result.source_rows > 0 or table == "stock_levels"


def checkpoint(
    pipeline: CdcPipeline, conn: psycopg.Connection
) -> tuple[int, dict[str, TableSnapshot]]:
    """The WAL position right after the last commit and the source tables as text, then."""
    lsn = parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    with pipeline.source.connect() as session:
        return lsn, pipeline.source.read_tables(session)


def assert_history_replays(
    pipeline: CdcPipeline, lsn: int, tables: dict[str, TableSnapshot]
) -> None:
    state: CdcState = pipeline.state()
    for table, snapshot in tables.items():
        expected = typed_source(state, table, snapshot)
        history = pl.DataFrame(pipeline.sinks(table).history.table().scan().to_arrow())
        replayed = history_as_of(history, lsn=lsn)
        columns = list(state.tables[table].columns)
        left = row_hashes(expected, columns).sort(KEY_COLUMN)
        right = row_hashes(replayed, columns).sort(KEY_COLUMN)
        assert left[KEY_COLUMN].to_list() == right[KEY_COLUMN].to_list(), f"{table} keys @ {lsn}"
        assert left["_hash"].to_list() == right["_hash"].to_list(), f"{table} content @ {lsn}"
