"""Exactly-once micro-batches from an event log into the DuckDB warehouse, driven by a sensor.

The protocol (any domain can reuse it):
1. The sensor reads the log's end offsets and what the warehouse says is committed, and requests
   one run per batch: its run config carries the offset range of every partition, its run key
   names those ranges. One batch is in flight at a time (the next start depends on this commit).
2. The run reads exactly those ranges, writes its sinks and records the committed ranges
   (``commit_ranges``) in the same DuckDB transaction as the data.
3. The next tick derives the next start from the committed ranges, not from its own cursor, so a
   crash anywhere (before the commit, between the commit and the cursor, during a re-run of the
   same request) replays without duplicates: ``resolve_ranges`` trims what is already committed
   and the sinks write nothing twice.

Backpressure: at most ``max_batch_records`` per batch, and a token bucket refilled at
``max_records_per_second`` between requests, so a backlog drains at a bounded rate.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import duckdb
from pydantic import Field

from data_products.lib.eventlog import EventLog, EventLogError, OffsetRange
from data_products.lib.instance import MAX_RUNTIME_TAG, STREAM_BATCH_MAX_RUNTIME_SECONDS
from data_products.lib.keys import validate_identifier

STATE_SCHEMA = "stream_state"
TOPIC_TAG = "microbatch/topic"
RANGES_TAG = "microbatch/ranges"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
"""Statuses of a run that may still write. A run whose worker died stays STARTED until run
monitoring (the code server that started it, or the monitoring daemon) marks it failed; from
then on it is no longer in flight and the stream moves on."""

WILL_RETRY_TAG = "dagster/will_retry"
"""Set by Dagster on a failed run: ``true`` when its run retry (``run_retries`` in dagster.yaml,
crashed run workers only) will re-execute it."""
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
"""Set by Dagster on a failed run once its retry run exists."""
RETRY_GRACE_SECONDS = 120.0
"""How long a stream waits for Dagster's run retry of a crashed batch before requesting the
batch itself (the retry daemon polls every few seconds; a retry that never comes, e.g. of a run
launched in process, must not stop the stream for good)."""


def blocking_run(instance: dg.DagsterInstance, tags: Mapping[str, str]) -> str | None:
    """The id of the run that holds a stream, or ``None`` when the stream may request its next
    batch: a run with ``tags`` in flight, or the latest one failed and about to be re-executed by
    Dagster's run retry (which re-applies the same batch: requesting it as well would apply it
    twice at once; the sinks would keep it exactly once, but the work is done twice)."""
    in_flight = instance.get_run_ids(
        filters=dg.RunsFilter(tags=dict(tags), statuses=IN_FLIGHT), limit=1
    )
    if in_flight:
        return in_flight[0]
    latest = instance.get_run_records(filters=dg.RunsFilter(tags=dict(tags)), limit=1)
    if not latest:
        return None
    record = latest[0]
    run = record.dagster_run
    retry_pending = (
        run.status == dg.DagsterRunStatus.FAILURE
        and run.tags.get(WILL_RETRY_TAG) == "true"
        and AUTO_RETRY_RUN_ID_TAG not in run.tags
        and run.remote_job_origin is not None
        and record.end_time is not None
        and time.time() - record.end_time < RETRY_GRACE_SECONDS
    )
    return run.run_id if retry_pending else None


def attempt_run_key(instance: dg.DagsterInstance, key: str, tags: Mapping[str, str]) -> str:
    """``key`` for the first request of a batch, ``key#retry<n>`` after ``n`` runs with ``tags``:
    Dagster launches a run key once per sensor, so the retry of a failed batch needs a new one
    (or the request would be skipped forever)."""
    attempts = len(instance.get_run_ids(filters=dg.RunsFilter(tags=dict(tags))))
    return key + (f"#retry{attempts}" if attempts else "")


class BatchError(RuntimeError):
    """A batch that cannot be committed as requested (a gap in offsets, an unknown topic)."""


# ------------------------------------------------------------------------------------------------
# Ranges in run config and run keys


class BatchRange(dg.Config):
    partition: int
    start: int
    end: int


class BatchConfig(dg.Config):
    """Run config of one micro-batch: the offset ranges to consume and when it was requested.

    Empty ranges (a materialisation launched by hand from the UI) mean "the next batch": what
    the sensor would request now."""

    topic: str = ""
    ranges: list[BatchRange] = Field(default_factory=list)
    requested_at_ms: int = 0

    def offset_ranges(self) -> list[OffsetRange]:
        return [OffsetRange(r.partition, r.start, r.end) for r in self.ranges]


def describe_ranges(ranges: Iterable[OffsetRange]) -> str:
    """``p0:100-250,p1:90-240`` (the run key and the ``microbatch/ranges`` tag)."""
    return ",".join(str(r) for r in sorted(ranges) if r.size)


# ------------------------------------------------------------------------------------------------
# Committed offsets in the warehouse


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.committed_offsets (
            consumer VARCHAR NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
            start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL, batch_id VARCHAR NOT NULL,
            committed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (consumer, topic, partition, start_offset))"""
    )


def committed_ends(
    con: duckdb.DuckDBPyConnection, consumer: str, topic: str, partitions: int
) -> dict[int, int]:
    """Next offset to consume per partition (0 for a partition never committed)."""
    ends = dict.fromkeys(range(partitions), 0)
    # Asking the table itself (a binder lookup) rather than a query over the whole catalog.
    try:
        rows = con.execute(
            f"SELECT partition, max(end_offset) FROM {STATE_SCHEMA}.committed_offsets "
            "WHERE consumer = ? AND topic = ? GROUP BY partition",
            [consumer, topic],
        ).fetchall()
    except duckdb.CatalogException:
        return ends
    ends.update({int(p): int(e) for p, e in rows})
    return ends


def resolve_ranges(
    requested: Sequence[OffsetRange], committed: Mapping[int, int]
) -> list[OffsetRange]:
    """What of ``requested`` is still to do: committed parts are dropped (a replayed request is
    a no-op); a range that starts after the committed end is a gap, never silently skipped."""
    todo = []
    for r in requested:
        done = committed.get(r.partition, 0)
        if done >= r.end:
            continue
        if done < r.start:
            raise BatchError(
                f"partition {r.partition}: batch starts at offset {r.start} but only "
                f"{done} are committed; offsets {done}..{r.start - 1} would be skipped"
            )
        todo.append(OffsetRange(r.partition, max(r.start, done), r.end))
    return todo


def commit_ranges(
    con: duckdb.DuckDBPyConnection,
    consumer: str,
    topic: str,
    ranges: Sequence[OffsetRange],
    batch_id: str,
) -> None:
    """Record ``ranges`` as consumed; call inside the transaction that wrote the data.

    The primary key on the start offset and the contiguity check make a double commit of the
    same offsets fail the transaction instead of duplicating data.
    """
    committed = committed_ends(
        con, consumer, topic, 1 + max((r.partition for r in ranges), default=0)
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    for r in ranges:
        if r.start != committed.get(r.partition, 0):
            raise BatchError(
                f"{consumer}/{topic} partition {r.partition}: commit of {r} does not start at "
                f"the committed end {committed.get(r.partition, 0)}"
            )
    con.executemany(
        f"INSERT INTO {STATE_SCHEMA}.committed_offsets VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(consumer, topic, r.partition, r.start, r.end, batch_id, now) for r in ranges if r.size],
    )


# ------------------------------------------------------------------------------------------------
# Planning a batch


def plan_batch(
    committed: Mapping[int, int], ends: Mapping[int, int], budget: int
) -> list[OffsetRange]:
    """Up to ``budget`` records, shared fairly between partitions with a backlog (a partition
    that needs less than its share leaves the rest to the others)."""
    backlog = {p: ends[p] - committed.get(p, 0) for p in ends if ends[p] > committed.get(p, 0)}
    take = dict.fromkeys(backlog, 0)
    left = budget
    while left > 0 and any(take[p] < backlog[p] for p in backlog):
        open_partitions = [p for p in backlog if take[p] < backlog[p]]
        share = max(left // len(open_partitions), 1)
        for p in open_partitions:
            extra = min(share, backlog[p] - take[p], left)
            take[p] += extra
            left -= extra
    return [
        OffsetRange(p, committed.get(p, 0), committed.get(p, 0) + n)
        for p, n in sorted(take.items())
        if n
    ]


@dataclass(frozen=True)
class StreamLimits:
    """Backpressure and batching settings, read from the environment at tick time (never at
    import time): ``DATA_PRODUCTS_<CONSUMER>_MAX_BATCH``, ``_MAX_RATE``, ``_MIN_BATCH`` and
    ``_MAX_WAIT`` (seconds).

    ``min_batch_records``/``max_wait_seconds``: a run is requested once the backlog reaches
    ``min(min_batch_records, max_batch_records)`` records or its oldest record has waited
    ``max_wait_seconds``. Why: every run has a fixed cost (1-2 CPU s in the payments stream:
    checks, run events, the warehouse checkpoint); a consumer that runs as soon as anything
    arrived takes ever smaller batches and pays that cost per few records, trading a latency
    budget it does not need for throughput it does. 0 (the default) runs at once."""

    max_batch_records: int
    max_records_per_second: float | None
    min_batch_records: int = 0
    max_wait_seconds: float = 0.0

    @classmethod
    def from_env(
        cls,
        consumer: str,
        *,
        max_batch_records: int,
        max_records_per_second: float | None,
        min_batch_records: int = 0,
        max_wait_seconds: float = 0.0,
    ) -> StreamLimits:
        prefix = f"DATA_PRODUCTS_{consumer.upper()}_"
        batch = os.environ.get(prefix + "MAX_BATCH")
        rate = os.environ.get(prefix + "MAX_RATE")
        least = os.environ.get(prefix + "MIN_BATCH")
        wait = os.environ.get(prefix + "MAX_WAIT")
        return cls(
            max_batch_records=int(batch) if batch else max_batch_records,
            max_records_per_second=float(rate) if rate else max_records_per_second,
            min_batch_records=int(least) if least else min_batch_records,
            max_wait_seconds=float(wait) if wait else max_wait_seconds,
        )

    def waits_for(self, backlog: int, oldest_age_s: float | None) -> bool:
        """True while a backlog is too small to be worth a run and young enough to wait."""
        fill = min(self.min_batch_records, self.max_batch_records)
        if backlog >= fill or oldest_age_s is None:
            return False
        return oldest_age_s < self.max_wait_seconds


# ------------------------------------------------------------------------------------------------
# The sensor


def microbatch_sensor(
    *,
    name: str,
    consumer: str,
    topic: str,
    op_name: str,
    asset_keys: Sequence[dg.AssetKey],
    read_committed: Callable[[str, str, int], dict[int, int] | None],
    max_batch_records: int = 200_000,
    max_records_per_second: float | None = None,
    minimum_interval_seconds: int = 5,
    description: str = "",
) -> dg.SensorDefinition:
    """A sensor that requests one exactly-once micro-batch run at a time.

    ``read_committed(consumer, topic, partitions)`` returns the committed ends (``None`` when
    the warehouse is busy: the tick is skipped). The cursor is informational: what was committed
    and when the last batch was requested (for the rate limit); correctness never depends on it.
    """
    validate_identifier(consumer, what="consumer")
    validate_identifier(topic, what="topic")

    @dg.sensor(
        name=name,
        description=description,
        minimum_interval_seconds=minimum_interval_seconds,
        asset_selection=list(asset_keys),
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        limits = StreamLimits.from_env(
            consumer,
            max_batch_records=max_batch_records,
            max_records_per_second=max_records_per_second,
        )
        cursor = json.loads(context.cursor) if context.cursor else {}
        try:
            log = EventLog.open(topic)
        except EventLogError as exc:
            return dg.SkipReason(str(exc))
        in_flight = blocking_run(context.instance, {TOPIC_TAG: topic})
        if in_flight:
            return dg.SkipReason(f"batch run {in_flight} still in flight (or being retried)")
        committed = read_committed(consumer, topic, log.partitions)
        if committed is None:
            return dg.SkipReason("warehouse busy (another process holds the write lock)")
        ends = log.end_offsets()
        backlog = sum(ends[p] - committed.get(p, 0) for p in ends)
        now = time.time()
        budget = limits.max_batch_records
        last = cursor.get("requested_at")
        if limits.max_records_per_second and last is not None:
            budget = min(budget, int(limits.max_records_per_second * (now - last)))
        new_cursor = {"committed": {str(p): e for p, e in committed.items()}, "backlog": backlog}
        if backlog <= 0:
            return dg.SensorResult(
                cursor=json.dumps({**cursor, **new_cursor}), skip_reason="no new offsets"
            )
        if budget <= 0:
            return dg.SensorResult(
                cursor=json.dumps({**cursor, **new_cursor}),
                skip_reason=f"rate limit: backlog {backlog} drains at "
                f"{limits.max_records_per_second}/s",
            )
        if limits.min_batch_records:
            oldest = _oldest_append_ms(log, committed, ends)
            age = None if oldest is None else now - oldest / 1000
            if limits.waits_for(backlog, age):
                return dg.SensorResult(
                    cursor=json.dumps({**cursor, **new_cursor}),
                    skip_reason=f"batching: backlog {backlog} < {limits.min_batch_records} "
                    f"records, oldest waited {age:.1f} of {limits.max_wait_seconds} s",
                )
        ranges = plan_batch(committed, ends, budget)
        text = describe_ranges(ranges)
        run_key = attempt_run_key(context.instance, f"{topic}:{text}", {RANGES_TAG: text})
        config = BatchConfig(
            topic=topic,
            ranges=[BatchRange(partition=r.partition, start=r.start, end=r.end) for r in ranges],
            requested_at_ms=int(now * 1000),
        )
        request = dg.RunRequest(
            run_key=run_key,
            run_config={"ops": {op_name: {"config": config.model_dump()}}},
            tags={
                TOPIC_TAG: topic,
                RANGES_TAG: text,
                MAX_RUNTIME_TAG: str(STREAM_BATCH_MAX_RUNTIME_SECONDS),
            },
            asset_selection=list(asset_keys),
        )
        return dg.SensorResult(
            run_requests=[request], cursor=json.dumps({**new_cursor, "requested_at": now})
        )

    return _sensor


def _oldest_append_ms(
    log: EventLog, committed: Mapping[int, int], ends: Mapping[int, int]
) -> int | None:
    """Append time (epoch ms) of the oldest record not yet committed, over all partitions."""
    times = [
        ms
        for p, end in ends.items()
        if end > committed.get(p, 0)
        and (ms := log.append_ms_at(p, committed.get(p, 0))) is not None
    ]
    return min(times) if times else None
