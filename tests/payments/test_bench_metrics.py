"""The stream benchmark's steady-state throughput: the slope of committed records between the
first batch after the warm-up and the last one before the producer stopped."""

from __future__ import annotations

from bench.payments.stream import steady_state


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
    assert result["steady_state_window_s"] == [12.0, 20.0]
    assert result["steady_state_batches"] == 2
    assert result["steady_state_max_lag_s"] == 4.0


def test_too_few_batches_give_no_figure() -> None:
    assert steady_state([_batch(12.0, 1)], warmup_s=10.0, until_s=60.0) == {
        "steady_state_records_per_s": None,
        "steady_state_window_s": None,
    }
