"""The payments stream consumer: one exactly-once micro-batch run per tick with new offsets.

The protocol lives in ``data_products.lib.microbatch``; this module only binds it to the payments
topic, its batch asset and the warehouse where the committed offsets are recorded.
"""

from __future__ import annotations

import duckdb

from assets.payments.reference import CONSUMER, MAX_BATCH_RECORDS, TOPIC
from assets.payments.stream import OP_NAME, STREAM_KEYS
from data_products.lib.microbatch import committed_ends, microbatch_sensor
from data_products.lib.settings import get_settings


def read_committed(consumer: str, topic: str, partitions: int) -> dict[int, int] | None:
    """Committed ends from the warehouse, or ``None`` while another process writes it (DuckDB
    allows one writer per file; the sensor simply tries again next tick)."""
    path = get_settings().warehouse_path
    if not path.exists():
        return dict.fromkeys(range(partitions), 0)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException:
        return None
    try:
        return committed_ends(con, consumer, topic, partitions)
    finally:
        con.close()


payments_stream = microbatch_sensor(
    name="payments_stream",
    consumer=CONSUMER,
    topic=TOPIC,
    op_name=OP_NAME,
    asset_keys=STREAM_KEYS,
    read_committed=read_committed,
    max_batch_records=MAX_BATCH_RECORDS,
    minimum_interval_seconds=5,
    description="Consumes the payments_transactions event log: one run per batch of new "
    "offsets (run key = offset ranges), committed with the data; see data_products.lib."
    "microbatch.",
)
