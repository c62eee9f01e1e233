"""An append-only, partitioned event log on local disk: the broker we do not run.

- ``log``: topics of N partitions, segment files with length + CRC framed record batches,
  fsync'd appends, readers that stop at the last complete batch;
- ``producer``: key-hash partitioning and a producer that paces appends to a target rate.

The root of every topic is ``<data home>/eventlog`` (``eventlog_root``), so tests and benchmarks
switch logs with ``DATA_PRODUCTS_HOME`` like everything else.
"""

from data_products.lib.eventlog.log import (
    Chunk,
    EventLog,
    EventLogError,
    OffsetRange,
    eventlog_root,
    partition_for_key,
    partitions_for_keys,
)
from data_products.lib.eventlog.producer import Producer

__all__ = [
    "Chunk",
    "EventLog",
    "EventLogError",
    "OffsetRange",
    "Producer",
    "eventlog_root",
    "partition_for_key",
    "partitions_for_keys",
]
