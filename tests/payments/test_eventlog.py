"""The event log: dense monotonic offsets, stable key partitioning, torn-write and concurrency
safety. Everything runs against real segment files under ``tmp_path``."""

from __future__ import annotations

import itertools
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from data_products.lib.eventlog import (
    EventLog,
    EventLogError,
    Producer,
    partition_for_key,
    partitions_for_keys,
)
from data_products.lib.eventlog.log import HEADER_SIZE


def _records(prefix: str, n: int) -> list[bytes]:
    return [f'{{"id":"{prefix}-{i}"}}\n'.encode() for i in range(n)]


def _read_all(log: EventLog, partition: int, start: int = 0) -> list[bytes]:
    return [r for chunk in log.read(partition, start) for r in chunk.records()]


def _segment(log: EventLog, partition: int) -> Path:
    return sorted((log.directory / f"{partition:03d}").glob("*.seg"))[-1]


def test_offsets_are_dense_and_monotonic_across_segment_rolls(tmp_path: Path) -> None:
    log = EventLog.open("t", partitions=2, root=tmp_path, segment_bytes=500)
    written: list[bytes] = []
    ranges = []
    for i in range(40):
        batch = _records(f"b{i}", 1 + i % 7)
        ranges.append(log.append(1, batch, append_ms=i))
        written += batch
    assert len(list((log.directory / "001").glob("*.seg"))) > 3, "segments should have rolled"
    assert ranges[0].start == 0
    for before, after in itertools.pairwise(ranges):
        assert after.start == before.end and after.end > after.start
    assert log.end_offset(1) == len(written) and log.end_offset(0) == 0
    assert _read_all(log, 1) == written
    # Any sub-range, starting inside a frame and a later segment, is exact.
    for start, end in [(3, 9), (17, 18), (50, len(written)), (0, 1)]:
        chunks = log.read(1, start, end)
        assert chunks[0].first_offset == start
        assert [r for c in chunks for r in c.records()] == written[start:end]
    # A reopened log (another process) continues the numbering.
    again = EventLog.open("t", root=tmp_path, segment_bytes=500)
    assert again.append(1, [b"x\n"], append_ms=0).start == len(written)


def test_partition_count_is_fixed_at_creation(tmp_path: Path) -> None:
    EventLog.open("t", partitions=3, root=tmp_path)
    with pytest.raises(EventLogError, match="3 partitions"):
        EventLog.open("t", partitions=4, root=tmp_path)
    with pytest.raises(EventLogError, match="does not exist"):
        EventLog.open("other", root=tmp_path)


def test_key_hash_partitioning_is_stable_across_processes(tmp_path: Path) -> None:
    keys = [f"u{i:07d}" for i in range(200)]
    here = [partition_for_key(k, 8) for k in keys]
    code = (
        "import sys; from data_products.lib.eventlog import partition_for_key; "
        "print(','.join(str(partition_for_key(k, 8)) for k in sys.argv[1:]))"
    )
    # A different hash seed in the child: Python's hash() would differ, ours must not.
    other = subprocess.run(
        [sys.executable, "-c", code, *keys],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert [int(x) for x in other.stdout.strip().split(",")] == here
    assert len(set(here)) == 8, "200 keys should spread over all 8 partitions"
    # Every record of a key lands in the key's partition, in send order.
    log = EventLog.open("t", partitions=8, root=tmp_path)
    producer = Producer(log, linger_records=7)
    for i in range(300):
        producer.send(keys[i % 20], f"{keys[i % 20]}:{i}\n".encode())
    producer.flush()
    for p in range(8):
        for record in _read_all(log, p):
            key, _seq = record.decode().strip().split(":")
            assert partition_for_key(key, 8) == p
        seqs = [int(r.decode().split(":")[1]) for r in _read_all(log, p)]
        assert seqs == sorted(seqs)


def test_column_wise_partitioning_equals_the_key_hash() -> None:
    keys = [f"card-{i}" * (i % 5) for i in range(2_000)] + ["", "ä€𝄞", "u0000001"]
    assert partitions_for_keys(keys, 7).tolist() == [partition_for_key(k, 7) for k in keys]


def test_packed_sends_equal_record_by_record_sends(tmp_path: Path) -> None:
    """``send_packed`` (one buffer, numpy slicing) writes the same records in the same
    partitions and order as ``send`` (one object per record), whatever the frame size."""
    keys = [f"card-{i % 37}" for i in range(1_000)]
    records = [f"{k}:{i}:{'x' * (i % 13)}\n".encode() for i, k in enumerate(keys)]
    one_by_one = EventLog.open("a", partitions=4, root=tmp_path)
    producer = Producer(one_by_one, linger_records=64)
    producer.send_many(keys, records)
    producer.flush()
    packed = EventLog.open("b", partitions=4, root=tmp_path)
    producer = Producer(packed, linger_records=64)
    lengths = np.array([len(r) for r in records], dtype=np.uint32)
    producer.send_packed(partitions_for_keys(keys, 4), b"".join(records), lengths)
    assert producer.sent == len(records)
    for p in range(4):
        assert _read_all(packed, p) == _read_all(one_by_one, p)
        assert _read_all(packed, p), f"partition {p} received nothing"
    with pytest.raises(EventLogError, match="lengths add up to 5 bytes, the data has 4"):
        packed.append_packed(0, b"abcd", np.array([2, 3], dtype=np.uint32), append_ms=1)


def test_torn_tail_is_never_read_and_is_truncated_by_the_next_writer(tmp_path: Path) -> None:
    log = EventLog.open("t", partitions=1, root=tmp_path)
    first = _records("a", 5) + _records("b", 3)
    log.append(0, first[:5], append_ms=1)
    log.append(0, first[5:], append_ms=2)
    segment = _segment(log, 0)
    whole = segment.stat().st_size
    log.append(0, _records("torn", 4), append_ms=3)
    torn_size = segment.stat().st_size
    for cut in (whole + 3, whole + HEADER_SIZE, torn_size - 1):
        with segment.open("r+b") as f:  # a crash mid-write: the last frame is partial
            f.truncate(cut)
        reader = EventLog.open("t", root=tmp_path)
        assert _read_all(reader, 0) == first
        assert reader.end_offset(0) == 8
    with segment.open("ab") as f:  # a crash that left zero-filled blocks
        f.write(b"\0" * 100)
    assert _read_all(EventLog.open("t", root=tmp_path), 0) == first
    writer = EventLog.open("t", root=tmp_path)
    assert writer.append(0, _records("c", 2), append_ms=4).start == 8
    assert _read_all(writer, 0) == first + _records("c", 2)


def test_corrupt_frame_stops_the_reader_before_it(tmp_path: Path) -> None:
    log = EventLog.open("t", partitions=1, root=tmp_path)
    log.append(0, _records("a", 3), append_ms=1)
    size = _segment(log, 0).stat().st_size
    log.append(0, _records("b", 3), append_ms=2)
    with _segment(log, 0).open("r+b") as f:
        f.seek(size + HEADER_SIZE + 20)  # a flipped byte inside the second frame's records
        byte = f.read(1)
        f.seek(size + HEADER_SIZE + 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert _read_all(log, 0) == _records("a", 3)


def _append_many(root: str, worker: int, frames: int) -> None:
    log = EventLog.open("t", root=Path(root), segment_bytes=4_000)
    for i in range(frames):
        log.append(0, _records(f"w{worker}f{i}", 1 + (i % 5)), append_ms=i)


def test_concurrent_writers_in_processes_never_interleave_or_lose_records(
    tmp_path: Path,
) -> None:
    EventLog.open("t", partitions=1, root=tmp_path, segment_bytes=4_000)
    # fork: the children only append (no polars, no DuckDB), and start in milliseconds.
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    log = EventLog.open("t", root=tmp_path)
    records = _read_all(log, 0)
    expected = {r for w in range(4) for i in range(40) for r in _records(f"w{w}f{i}", 1 + i % 5)}
    assert len(records) == len(expected) == log.end_offset(0)
    assert set(records) == expected
    bases = [base for base, _, _ in log.iter_frames_meta(0)]
    assert bases == sorted(bases) and len(bases) == 160


def test_a_reader_racing_a_writer_sees_only_whole_batches(tmp_path: Path) -> None:
    log = EventLog.open("t", partitions=1, root=tmp_path, segment_bytes=3_000)
    done = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read_loop() -> None:
        reader = EventLog.open("t", root=tmp_path)
        while not done.is_set():
            records = _read_all(reader, 0)
            # Batches are 4 records: a reader never sees part of one.
            expected = [r for i in range(len(records) // 4) for r in _records(f"f{i}", 4)]
            if len(records) % 4 or records != expected:
                errors.append(f"read {len(records)} records, not a prefix of whole batches")
            seen.append(len(records))

    thread = threading.Thread(target=read_loop)
    thread.start()
    for i in range(150):
        log.append(0, _records(f"f{i}", 4), append_ms=i)
    done.set()
    thread.join()
    assert not errors, errors[:3]
    assert len(seen) > 1 and max(seen) <= 600
