"""Exactly once: re-sent events, replayed batches, other batch sizes and a consumer killed between
the sink commit and the cursor all give the same tables, each transaction counted once."""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from polars.testing import assert_frame_equal

from assets.payments.batch import process_batch
from assets.payments.ledger import balance_report
from assets.payments.reference import CONSUMER
from data_products.lib.microbatch import BatchError, committed_ends, plan_batch
from data_products.lib.settings import get_settings
from tests.payments.helpers import (
    LATE_STREAM,
    drain,
    expected_late_ids,
    produce_small,
    snapshot,
)


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(get_settings().warehouse_path))


@pytest.fixture
def reference(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """The tables of one clean consumption in big batches, in a data home of their own."""
    with monkeypatch.context() as m:
        m.setenv("DATA_PRODUCTS_HOME", str(tmp_path_factory.mktemp("reference")))
        log, stream = produce_small(LATE_STREAM)
        with _connect() as con:
            drain(con, log, batch=100_000)
            tables = snapshot(con)
    return tables, stream


def test_resends_and_replays_never_double_count(data_home: Path, reference) -> None:
    expected, stream = reference
    log, _ = produce_small(LATE_STREAM)
    with _connect() as con:
        reports = drain(con, log, batch=300)
        assert sum(r.duplicates for r in reports) == stream.events["resend"].sum() > 0
        # Replaying every batch already committed changes nothing.
        for report in reports:
            again = process_batch(con, log, report.ranges, consumer=CONSUMER, batch_id="replay")
            assert again.replayed and again.records == 0
        tables = snapshot(con)
        distinct = stream.truth.height
        assert tables["bronze"].height == stream.events.height
        assert tables["silver"].height + tables["late"].height == distinct
        assert set(tables["late"]["event_id"]) == expected_late_ids(stream.events, log.partitions)
        assert tables["late"].height > 0
        assert tables["ledger"].height == 3 * distinct
        balance = balance_report(con, batch_id=None)
        assert balance["total_balanced"] and balance["unbalanced_in_scope"] == 0
    # Batches of 300 and one big batch: identical tables (decisions follow the log order only).
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=False, rel_tol=1e-9)


def test_a_gap_in_offsets_is_refused(data_home: Path) -> None:
    log, _ = produce_small(LATE_STREAM)
    with _connect() as con:
        ranges = plan_batch({}, log.end_offsets(), 100)
        skipped = [replace(r, start=r.start + 5, end=r.end + 5) for r in ranges]
        with pytest.raises(BatchError, match="would be skipped"):
            process_batch(con, log, skipped, consumer=CONSUMER, batch_id="gap")
        assert committed_ends(con, CONSUMER, log.topic, log.partitions) == dict.fromkeys(
            range(log.partitions), 0
        )


def _commit_then_die(home: str, batch: int) -> None:
    """A consumer that commits one batch and is killed before it can move any cursor."""
    os.environ["DATA_PRODUCTS_HOME"] = home
    from assets.payments.produce import open_topic

    log = open_topic()
    con = duckdb.connect(str(get_settings().warehouse_path))
    ranges = plan_batch(
        committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), batch
    )
    process_batch(con, log, ranges, consumer=CONSUMER, batch_id="killed")
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_after_sink_commit_then_restarted_gives_identical_results(
    data_home: Path, reference
) -> None:
    expected, _ = reference
    log, _ = produce_small(LATE_STREAM)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_commit_then_die, args=(str(data_home), 700))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    with _connect() as con:  # the restarted consumer: DuckDB recovers the committed batch
        committed = committed_ends(con, CONSUMER, log.topic, log.partitions)
        assert sum(committed.values()) == 700
        drain(con, log, batch=450)
        tables = snapshot(con)
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=False, rel_tol=1e-9)


def test_a_failure_before_the_commit_leaves_nothing_behind(
    data_home: Path, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, _ = reference
    log, _ = produce_small(LATE_STREAM)
    import assets.payments.batch as batch_module

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("consumer died before committing offsets")

    with _connect() as con:
        for _ in range(2):  # some batches go through
            ranges = plan_batch(
                committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 500
            )
            process_batch(con, log, ranges, consumer=CONSUMER, batch_id="ok")
        before = snapshot(con)
        with monkeypatch.context() as m:
            m.setattr(batch_module, "commit_ranges", crash)
            ranges = plan_batch(
                committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 500
            )
            with pytest.raises(RuntimeError, match="before committing"):
                process_batch(con, log, ranges, consumer=CONSUMER, batch_id="crashed")
        after_crash = snapshot(con)
        for name in before:
            assert_frame_equal(after_crash[name], before[name])
        drain(con, log, batch=500)
        tables = snapshot(con)
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=False, rel_tol=1e-9)


def test_a_batch_computed_before_another_committed_never_lands(
    data_home: Path, reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch is computed before its transaction (``batch.process_batch``). If another
    consumer commits the same offsets in between, the late one must roll back whole: its
    features and dedup came from state that has since moved."""
    expected, _ = reference
    log, _ = produce_small(LATE_STREAM)
    import assets.payments.batch as batch_module

    prepare = batch_module._prepare
    with _connect() as con:
        for n in range(2):  # some history first, so the racing batches read real state
            ranges = plan_batch(
                committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 400
            )
            process_batch(con, log, ranges, consumer=CONSUMER, batch_id=f"ok{n}")
        ranges = plan_batch(
            committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 600
        )

    raced: list[str] = []

    def prepare_then_lose_the_race(con: duckdb.DuckDBPyConnection, *args, **kwargs):
        prepared = prepare(con, *args, **kwargs)
        if not raced:  # the rival runs the real thing, once
            raced.append("rival")
            with con.cursor() as rival:  # another connection to the same warehouse
                process_batch(rival, log, ranges, consumer=CONSUMER, batch_id="rival")
        return prepared

    with _connect() as con:
        before = committed_ends(con, CONSUMER, log.topic, log.partitions)
        with monkeypatch.context() as m:
            m.setattr(batch_module, "_prepare", prepare_then_lose_the_race)
            with pytest.raises(BatchError, match="does not start at the committed end"):
                process_batch(con, log, ranges, consumer=CONSUMER, batch_id="late")
        after = committed_ends(con, CONSUMER, log.topic, log.partitions)
        assert sum(after.values()) - sum(before.values()) == sum(r.size for r in ranges)
        assert con.execute(
            "SELECT count(*) FROM payments_silver.transactions WHERE _batch_id = 'late'"
        ).fetchone() == (0,)
        drain(con, log, batch=500)
        tables = snapshot(con)
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=False, rel_tol=1e-9)


def test_the_uniqueness_check_names_an_event_stored_twice(data_home: Path) -> None:
    """``event_id_unique`` reads the stored tables, not the dedup's verdict: an event of the
    batch that also sits in late_events (a copy written behind the stream's back, or a dedup
    bug) fails it by name, whether the copy is the batch's oldest event or its newest."""
    from assets.payments.stream import _batch_checks
    from assets.payments.tables import LATE, SILVER

    log, _ = produce_small(LATE_STREAM)
    with _connect() as con:
        for batch_id in ("first", "second", "last"):  # the last one with history behind it
            ranges = plan_batch(
                committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 500
            )
            report = process_batch(con, log, ranges, consumer=CONSUMER, batch_id=batch_id)
        assert report.admitted > 0
        checks = {c.check_name: c for c in _batch_checks(con, report)}
        assert checks["event_id_unique"].passed
        edges = con.execute(
            f"""SELECT arg_min(event_id, event_time), arg_max(event_id, event_time)
                FROM {SILVER.table} WHERE _batch_id = 'last'"""
        ).fetchone()
        assert edges is not None
        con.execute(
            f"""INSERT INTO {LATE.table}
                SELECT *, event_time, 999.0 FROM {SILVER.table} WHERE event_id IN (?, ?)""",
            list(edges),
        )
        checks = {c.check_name: c for c in _batch_checks(con, report)}
    unique = checks["event_id_unique"]
    assert not unique.passed
    assert unique.metadata["duplicated_ids"].value == 2
    assert {s.split(" ")[0] for s in unique.metadata["sample"].value} == set(edges)
