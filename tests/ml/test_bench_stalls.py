"""The HTTP benchmark's stall attribution: a slow request is blamed on a GC pause of either
process that overlaps it, else on its longest phase; fast requests and start-up pauses are not
counted; the recorder sees real collections."""

from __future__ import annotations

import gc

from bench.ml.stalls import Pause, PauseRecorder, RequestTimes, attribute, parse_handled


def _request(due: float, sent: float, start: float, end: float, done: float) -> RequestTimes:
    return RequestTimes(due=due, sent=sent, done=done, handler_start=start, handler_end=end)


def test_slow_requests_are_attributed_to_overlapping_pauses_or_their_longest_phase() -> None:
    requests = [
        _request(10.000, 10.000, 10.001, 10.004, 10.005),  # fast
        _request(11.000, 11.000, 11.090, 11.093, 11.094),  # queued behind a server collection
        _request(12.000, 12.080, 12.081, 12.084, 12.085),  # client sent late, its collection
        _request(13.000, 13.000, 13.001, 13.070, 13.071),  # a slow handler, no collection
        _request(14.000, 14.000, 14.001, 14.003, 14.090),  # read late, no collection
    ]
    pauses = [
        Pause("server", 2, 10.990, 11.088, 1000),
        Pause("client", 2, 11.995, 12.079, 10),
        Pause("server", 0, 13.010, 13.012, 5),  # too short to explain 70 ms
        Pause("server", 2, 1.0, 2.0, 0),  # start-up: before the run
    ]
    result = attribute(requests, pauses, threshold_ms=50)
    assert result["slow_requests"] == 4
    assert result["by_cause"] == {
        "server gc gen2": 1,
        "client gc gen2": 1,
        "handler": 1,
        "after_handler": 1,
    }
    assert result["gc_pauses_during_run"]["server gen2"]["count"] == 1
    assert result["examples"][0]["gc_pause"]["process"] == "server"


def test_the_recorder_sees_a_full_collection_and_can_be_removed() -> None:
    recorder = PauseRecorder("test", keep_ms=0.0).install()
    try:
        garbage = [[i] for i in range(10_000)]
        del garbage
        gc.collect()
    finally:
        recorder.remove()
    assert recorder.counts[2] >= 1
    assert any(p.generation == 2 and p.end >= p.start for p in recorder.pauses)
    before = sum(recorder.counts.values())
    gc.collect()
    assert sum(recorder.counts.values()) == before


def test_the_handled_header_is_parsed() -> None:
    assert parse_handled("12.5 12.75") == (12.5, 12.75)
    assert parse_handled(None) == (None, None)
