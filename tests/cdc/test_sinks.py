"""The Iceberg sinks' copy-on-write, on real tables: only files that may hold a batch's keys are
rewritten, and the history closes superseded versions physically while closed versions are
written once and never read again by later batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from pyiceberg.catalog.sql import SqlCatalog

from data_products.lib.cdc.frames import META_SCHEMA
from data_products.lib.cdc.schema import KEY_COLUMN
from data_products.lib.cdc.sinks import IcebergHistory, IcebergMirror, mirror_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def changes(rows: list[tuple[str, int, str, int, int]]) -> pl.DataFrame:
    """(key, qty, op, commit LSN, seq) rows as a change frame."""
    return pl.DataFrame(
        {
            KEY_COLUMN: [r[0] for r in rows],
            "qty": [r[1] for r in rows],
            "_cdc_op": [r[2] for r in rows],
            "_cdc_lsn": [r[3] for r in rows],
            "_cdc_change_lsn": [r[3] for r in rows],
            "_cdc_seq": [r[4] for r in rows],
            "_cdc_commit_time": [T0 + timedelta(seconds=r[3]) for r in rows],
            "_cdc_xid": [r[3] for r in rows],
        },
        schema={KEY_COLUMN: pl.String(), "qty": pl.Int64(), **META_SCHEMA},
    )


def catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=str(tmp_path / "w"))


def files(table) -> set[str]:  # type: ignore[no-untyped-def]
    return {task.file.file_path for task in table.scan().plan_files()}


def test_history_closes_versions_in_place_and_never_rewrites_closed_ones(tmp_path: Path) -> None:
    history = IcebergHistory(catalog(tmp_path), "ns", "items_history")
    history.replace_all(changes([(k, 1, "r", 10, i) for i, k in enumerate("abc")]), 10)
    history.apply(changes([("a", 2, "u", 20, 1), ("a", 3, "u", 20, 2), ("b", 0, "d", 20, 3)]), 20)
    after_first = files(history.table())
    history.apply(changes([("a", 4, "u", 30, 1), ("d", 9, "c", 30, 2)]), 30)

    rows = pl.DataFrame(history.table().scan().to_arrow()).sort(
        KEY_COLUMN, "valid_from_lsn", "change_seq"
    )
    a = rows.filter(pl.col(KEY_COLUMN) == "a")
    assert a["qty"].to_list() == [1, 2, 3, 4]
    assert a["valid_to_lsn"].to_list() == [20, 20, 30, None]  # closed physically, not at read
    assert a["is_current"].to_list() == [False, False, False, True]
    assert rows.filter(pl.col("is_current"))[KEY_COLUMN].to_list() == ["a", "b", "c", "d"]
    tombstone = rows.filter((pl.col(KEY_COLUMN) == "b") & pl.col("is_current"))
    assert tombstone["operation"].to_list() == ["d"]
    # The first batch's closed versions sit in a file the second batch did not rewrite.
    closed_files = {
        task.file.file_path
        for task in history.table().scan().plan_files()
        if task.file.record_count and not _may_be_current(history, task.file)
    }
    assert closed_files & after_first


def test_mirror_rewrites_only_files_that_may_hold_the_batch_keys(tmp_path: Path) -> None:
    mirror = IcebergMirror(catalog(tmp_path), "ns", "items")
    columns = ["qty"]
    mirror.replace_all(mirror_frame(changes([("k1", 1, "r", 10, 0)]), columns), 10)
    mirror.apply(mirror_frame(changes([("m1", 5, "c", 20, 1)]), columns), 20)
    before = files(mirror.table())
    # "z1" lies outside both files' key bounds: nothing is read or rewritten, one file added.
    mirror.apply(mirror_frame(changes([("z1", 7, "c", 30, 1)]), columns), 30)
    assert before < files(mirror.table())
    # "m1" is in one file: that file alone is replaced.
    mirror.apply(mirror_frame(changes([("m1", 6, "u", 40, 1), ("k1", 0, "d", 40, 2)]), columns), 40)
    current = mirror.read().sort(KEY_COLUMN)
    assert current.select(KEY_COLUMN, "qty").rows() == [("m1", 6), ("z1", 7)]
    assert mirror.table().current_snapshot().summary["cdc.lsn"] == "40"  # type: ignore[union-attr]


def _may_be_current(history: IcebergHistory, file) -> bool:  # type: ignore[no-untyped-def]
    field_id = history.table().schema().find_field("is_current").field_id  # type: ignore[union-attr]
    return file.upper_bounds.get(field_id) != b"\x00"
