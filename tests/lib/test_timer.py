"""The platform timer: phases accumulate, survive errors and are thread-safe."""

from __future__ import annotations

import threading
import time

import pytest

from data_products.lib.timer import PhaseTimer


def test_phases_accumulate_in_first_entered_order() -> None:
    timer = PhaseTimer()
    with timer.phase("read"):
        time.sleep(0.02)
    with timer.phase("write"):
        pass
    with timer.phase("read"):
        time.sleep(0.02)
    assert list(timer.metadata()) == ["read", "write"]
    assert timer.seconds("read") >= 0.04
    assert timer.metadata()["read"] == round(timer.seconds("read"), 3)
    assert timer.elapsed() >= timer.seconds("read") + timer.seconds("write")
    assert set(timer.cpu_metadata()) == {"read", "write"}
    assert timer.seconds("never") == 0.0


def test_cpu_seconds_count_work_not_sleep() -> None:
    timer = PhaseTimer()
    with timer.phase("sleep"):
        time.sleep(0.05)
    with timer.phase("spin"):
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    cpu = timer.cpu_metadata()
    assert cpu["spin"] >= 0.05
    assert cpu["sleep"] < 0.03


def test_a_failed_phase_is_still_timed() -> None:
    timer = PhaseTimer()
    with pytest.raises(RuntimeError), timer.phase("boom"):
        time.sleep(0.01)
        raise RuntimeError("fails")
    assert timer.seconds("boom") >= 0.01


def test_phases_on_threads_all_count() -> None:
    timer = PhaseTimer(digits=6)

    def work() -> None:
        for _ in range(200):
            with timer.phase("replica"):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with timer.phase("replica"):
        time.sleep(0.01)
    assert timer.seconds("replica") >= 0.01
    assert timer.metadata()["replica"] == round(timer.seconds("replica"), 6)


def test_unrounded_figures_per_phase_for_rates() -> None:
    """What the CDC pipeline reports per step (rates are computed from these, not rounded)."""
    timer = PhaseTimer()
    with timer.phase("decode"):
        sum(range(200_000))
    with timer.phase("iceberg"):
        time.sleep(0.01)
    wall, cpu = timer.wall_by_phase(), timer.cpu_by_phase()
    assert list(wall) == list(cpu) == ["decode", "iceberg"]
    assert wall["iceberg"] == timer.seconds("iceberg") >= 0.01
    assert cpu["decode"] > 0
    wall["decode"] = -1.0  # a copy: the timer's own figures stay
    assert timer.seconds("decode") > 0
