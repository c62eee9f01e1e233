"""The stream benchmark's steady-state throughput (the slope of committed records between the
first batch after the warm-up and the last one before the producer stopped), and the batching
rule that lets a small backlog wait for a fuller run."""

from __future__ import annotations

from bench.payments.stream import steady_state
from data_products.lib.microbatch import StreamLimits


def _batch(at_s: float, records: int, lag_s: float = 1.0) -> dict[str, float]:
    return {"at_s": at_s, "records": records, "lag_seconds": lag_s, "lag_offsets": records}


def test_slope_excludes_warm_up_and_drain() -> None:
    batches = [
        _batch(5.0, 8_000),  # warm-up: the first run pays the imports
        _batch(12.0, 300_000),  # first batch in the window: its records came before it
        _batch(16.0, 200_000, lag_s=4.0),
        _batch(20.0, 200_000),
        _batch(64.0, 400_000, lag_s=9.0),  # drain after the producer stopped at 61 s
    ]
    result = steady_state(batches, warmup_s=10.0, until_s=61.0)
    assert result["steady_state_records_per_s"] == 400_000 // 8
    # Appended = committed + lag at each end: (708,000 + 200,000) - (308,000 + 300,000).
    assert result["steady_state_offered_records_per_s"] == 300_000 // 8
    assert result["steady_state_window_s"] == [12.0, 20.0]
    assert result["steady_state_batches"] == 2
    assert result["steady_state_max_lag_s"] == 4.0


def test_too_few_batches_give_no_figure() -> None:
    assert steady_state([_batch(12.0, 1)], warmup_s=10.0, until_s=60.0) == {
        "steady_state_records_per_s": None,
        "steady_state_window_s": None,
    }


def test_a_small_backlog_waits_until_full_or_old() -> None:
    limits = StreamLimits(
        max_batch_records=800_000,
        max_records_per_second=None,
        min_batch_records=400_000,
        max_wait_seconds=10.0,
    )
    assert limits.waits_for(backlog=100_000, oldest_age_s=3.0)
    assert not limits.waits_for(backlog=400_000, oldest_age_s=3.0)  # full enough
    assert not limits.waits_for(backlog=100_000, oldest_age_s=10.0)  # waited long enough
    assert not limits.waits_for(backlog=100_000, oldest_age_s=None)
    # A maximum below the minimum wins: a batch never has to exceed what a run may take.
    small = StreamLimits(600, None, min_batch_records=400_000, max_wait_seconds=10.0)
    assert not small.waits_for(backlog=600, oldest_age_s=0.0)
    # Off by default: every backlog runs at once.
    assert not StreamLimits(800_000, None).waits_for(backlog=1, oldest_age_s=0.0)
