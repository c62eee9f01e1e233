"""A producer that partitions records by key and paces appends to a target rate.

Records are buffered per partition and appended as one frame (one fsync) per ``linger_records``
records or per ``flush``: an fsync per record would cap a disk at a few hundred records per
second, a frame per batch keeps durability per batch and the rate in the tens of thousands.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from data_products.lib.eventlog.log import EventLog


@dataclass
class Producer:
    """Send ``(key, record)`` pairs; ``rate`` in records per second (``None``: as fast as the
    disk allows). Pacing is against the producer's start, so a slow append is caught up."""

    log: EventLog
    rate: float | None = None
    linger_records: int = 2_000
    linger_s: float = 0.05
    """A partial frame is appended once it is this old, so a slow stream is not held back."""
    sent: int = 0
    appends: int = 0
    _buffers: dict[int, list[bytes]] = field(default_factory=dict, repr=False)
    _started: float | None = field(default=None, repr=False)
    _partition_cache: dict[str, int] = field(default_factory=dict, repr=False)
    _last_flush: float = field(default_factory=time.monotonic, repr=False)

    def send(self, key: str, record: bytes) -> None:
        partition = self._partition_cache.get(key)
        if partition is None:
            partition = self._partition_cache[key] = self.log.partition_for(key)
        buffer = self._buffers.setdefault(partition, [])
        buffer.append(record)
        if len(buffer) >= self.linger_records:
            self._append(partition)
        elif time.monotonic() - self._last_flush > self.linger_s:
            self.flush()

    def send_many(self, keys: Sequence[str], records: Sequence[bytes]) -> None:
        for key, record in zip(keys, records, strict=True):
            self.send(key, record)

    def send_packed(self, partitions: np.ndarray, data: bytes, lengths: np.ndarray) -> None:
        """Send records packed back to back in ``data`` (record i: ``lengths[i]`` bytes, for
        partition ``partitions[i]``), in order, one frame per partition every
        ``linger_records`` records, paced like ``send``.

        Why: at tens of thousands of records per second a Python call and a ``bytes`` object
        per record cost the producer a good part of a core, and it shares the machine with the
        consumer. Here records are only touched by numpy, a slice of frames at a time.
        """
        self.flush()
        if len(lengths) != len(partitions):
            raise ValueError(f"{len(lengths)} record lengths for {len(partitions)} partitions")
        payload = np.frombuffer(data, dtype=np.uint8)
        ends = np.cumsum(lengths, dtype=np.int64)
        starts = ends - lengths
        for first in range(0, len(lengths), self.linger_records):
            rows = slice(first, first + self.linger_records)
            part, start, size = partitions[rows], starts[rows], lengths[rows].astype(np.int64)
            self._pace()
            for p in np.unique(part).tolist():
                mine = part == p
                own_sizes = size[mine]
                # Byte positions of the partition's records, in order: each record's start,
                # repeated over its length, plus the position within it.
                within = np.arange(int(own_sizes.sum())) - np.repeat(
                    np.cumsum(own_sizes) - own_sizes, own_sizes
                )
                body = payload[np.repeat(start[mine], own_sizes) + within].tobytes()
                self.log.append_packed(
                    p, body, own_sizes.astype("<u4"), append_ms=time.time_ns() // 1_000_000
                )
                self.appends += 1
            self.sent += len(part)
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        for partition in list(self._buffers):
            if self._buffers[partition]:
                self._append(partition)
        self._last_flush = time.monotonic()

    def _pace(self) -> None:
        """Wait until the records sent so far are "due"; sleeping before an append (not after)
        keeps the first records of a run on time."""
        if self._started is None:
            self._started = time.monotonic()
        if self.rate:
            delay = self._started + self.sent / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def _append(self, partition: int) -> None:
        records = self._buffers.pop(partition)
        self._pace()
        self.log.append(partition, records, append_ms=time.time_ns() // 1_000_000)
        self.sent += len(records)
        self.appends += 1
