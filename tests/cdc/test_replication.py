"""CDC against a real PostgreSQL: random workloads end with both mirrors equal to the source and
the SCD2 history replaying to the source's state at every checkpoint LSN; crashes between the
sink commits and the slot advance change nothing; bad changes stop the slot before them."""

from __future__ import annotations

import pytest

from data_products.lib.cdc.frames import ChangeError
from data_products.lib.cdc.lsn import format_lsn
from data_products.lib.cdc.pgoutput import DecodeError
from data_products.lib.cdc.schema import KEY_COLUMN
from data_products.lib.cdc.sinks import DeltaMirror
from tests.cdc.helpers import (
    assert_history_replays,
    assert_mirrors_match_source,
    checkpoint,
    drain,
)
from tests.snapshots import assert_same_snapshot


@pytest.mark.parametrize("seed", [11, 23, 37])
def test_random_workload_mirrors_and_history_follow_the_source(make_env, seed: int) -> None:
    env = make_env(seed)
    pipeline = env.pipeline()
    pipeline.ensure_started()
    checkpoints = [checkpoint(pipeline, env.conn)]
    for round_ in range(5):
        if round_ == 2:
            env.workload.add_column()
        if round_ == 3:
            env.workload.rename_column()
        for _ in range(4):
            env.workload.run(55, per_transaction=env.workload.rng.randint(1, 12))
            checkpoints.append(checkpoint(pipeline, env.conn))
        assert drain(pipeline, max_changes=env.workload.rng.choice([120, 400, 1000])) >= 1
        assert_mirrors_match_source(pipeline)
    assert env.workload.ops >= 1000
    state = pipeline.state()
    assert "weight_kg" in state.tables["products"].columns
    assert state.tables["customers"].column_map["display_name"] == "full_name"
    for lsn, tables in checkpoints:
        assert_history_replays(pipeline, lsn, tables)


def test_crash_between_sink_commit_and_slot_advance_replays_to_identical_mirrors(
    make_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(5)
    pipeline = env.pipeline()
    pipeline.ensure_started()
    env.workload.run(300, per_transaction=6)
    slot_before = pipeline.source.confirmed_lsn()

    def crash(_result: object) -> None:
        raise KeyboardInterrupt("killed after the sinks committed")

    with pytest.raises(KeyboardInterrupt):
        pipeline.run_batch(after_sinks_commit=crash)
    assert pipeline.source.confirmed_lsn() == slot_before  # the slot did not move
    applied = {t: pipeline.sinks(t).iceberg.read() for t in pipeline.state().tables}
    # What a restart does first: the crashed batch again. Every Iceberg table (mirrors and
    # histories) and Delta table stays as the crashed run committed it.
    committed = env.snapshot()
    assert {f"delta:cdc_silver/{table}" for table in applied} <= committed.keys()
    env.pipeline().run_batch()
    assert_same_snapshot(committed, env.snapshot())

    # A second crash mid-way: Iceberg applied, Delta killed before its merge.
    env.workload.run(120, per_transaction=4)
    real_apply = DeltaMirror.apply
    monkeypatch.setattr(DeltaMirror, "apply", lambda *a: (_ for _ in ()).throw(OSError("kill")))
    with pytest.raises(OSError):
        env.pipeline().run_batch()
    monkeypatch.setattr(DeltaMirror, "apply", real_apply)

    restarted = env.pipeline()  # a new process: state from disk, positions from the sinks
    drain(restarted)
    assert restarted.source.confirmed_lsn() > slot_before
    assert_mirrors_match_source(restarted)
    for table in applied:
        history = restarted.sinks(table).history.table().scan().to_arrow()
        versions = history.group_by([KEY_COLUMN, "change_lsn", "change_seq"]).aggregate([])
        assert versions.num_rows == history.num_rows, f"{table}: duplicated history versions"


def test_value_the_sink_cannot_hold_stops_the_slot_before_it(make_env) -> None:
    env = make_env(7)
    pipeline = env.pipeline()
    pipeline.ensure_started()
    env.workload.run(40, per_transaction=5)
    good_end = pipeline.pending_range()[1]  # type: ignore[index]
    env.conn.execute(
        "INSERT INTO products VALUES (990001, 'SKU-X', 'bad', 'toys', 1.00, 'infinity')"
    )
    env.workload.run(20, per_transaction=5)  # changes after the bad one must not be lost

    with pytest.raises(ChangeError) as error:
        pipeline.run_batch()
    message = str(error.value)
    assert "table products" in message and "990001" in message and "updated_at" in message
    assert error.value.key == "990001"
    assert f"LSN {format_lsn(error.value.commit_lsn)}" in message
    # Everything before the bad transaction is applied; the slot stops right before it.
    assert pipeline.source.confirmed_lsn() == good_end
    assert pipeline.state().as_of_lsn == good_end
    with pytest.raises(ChangeError):  # and stays there: nothing is skipped
        pipeline.run_batch()
    assert pipeline.source.confirmed_lsn() == good_end
    remaining = pipeline.source.peek()
    assert any(b"990001" in bytes(row[2]) for row in remaining)


def test_malformed_message_names_the_lsn_and_keeps_the_slot(make_env, monkeypatch) -> None:
    env = make_env(9)
    pipeline = env.pipeline()
    pipeline.ensure_started()
    env.workload.run(30, per_transaction=10)
    start = pipeline.source.confirmed_lsn()
    assert start > 0
    rows = pipeline.source.peek()
    # Cut the first insert message short, as a corrupted frame would be.
    broken = next(i for i, row in enumerate(rows) if bytes(row[2])[:1] == b"I")
    rows[broken] = (rows[broken][0], rows[broken][1], bytes(rows[broken][2])[:9])
    monkeypatch.setattr(pipeline.source, "peek", lambda **_: rows)
    with pytest.raises(DecodeError, match=f"LSN {rows[broken][0]}"):
        pipeline.run_batch()
    assert pipeline.source.confirmed_lsn() < _commit_after(rows, broken)
    monkeypatch.undo()
    drain(pipeline)
    assert_mirrors_match_source(pipeline)


def _commit_after(rows, index: int) -> int:  # type: ignore[no-untyped-def]
    from data_products.lib.cdc.lsn import parse_lsn

    return next(parse_lsn(r[0]) for r in rows[index:] if bytes(r[2])[:1] == b"C")
