"""One micro-batch of the payments stream, committed to every sink in one DuckDB transaction.

Steps: read the offset ranges from the log → bronze (every record as delivered) → deduplicate
(first delivery of an event id wins; re-sends are dropped) → watermark (admitted, or too late) →
silver and late_events → window features of the touched rows → fraud alerts → ledger → committed
offsets and stream times. A failure anywhere rolls everything back; a replay of a committed range
is trimmed away by ``resolve_ranges`` before anything is read.

Determinism: every decision depends on the log order only, never on where batch boundaries fell,
so a crash and a replay with other batch sizes give identical tables.
- Stream time of a partition = the largest event time among its earlier records (Kafka Streams'
  per-partition stream time); an event is too late when it is more than ``ALLOWED_LATENESS_S``
  behind that. Partition order is stable (key = card), so this is replay-stable.
- A re-send carries the same payload (hence event time) as its first delivery, so looking for
  earlier deliveries among stored events of the batch's event-time range finds every one of
  them while pruning the scan to a few row groups.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl

from assets.payments.alerts import recompute_alerts, store_alerts
from assets.payments.ledger import book_transactions
from assets.payments.records import (
    EVENT_TIME_RAW,
    PARSE_ERROR,
    TIME_FORMAT,
    PackedRecords,
    RecordRules,
    parse_records,
    record_rules,
)
from assets.payments.reference import ALLOWED_LATENESS_S
from assets.payments.tables import (
    BRONZE,
    LATE,
    QUARANTINE,
    SILVER,
    ensure_tables,
    silver_contract,
)
from assets.payments.windows import (
    delete_rewritten_features,
    prune_card_events,
    recompute_features,
    store_features,
)
from data_products.lib.contracts import Contract
from data_products.lib.eventlog import EventLog, OffsetRange
from data_products.lib.microbatch import (
    STATE_SCHEMA,
    commit_ranges,
    committed_ends,
    resolve_ranges,
)
from data_products.lib.quarantine import quarantine_rows
from data_products.lib.tables import parallel_scan
from data_products.lib.timer import PhaseTimer


@dataclass
class BatchReport:
    """What a batch did: the numbers every materialisation reports."""

    batch_id: str
    ranges: list[OffsetRange] = field(default_factory=list)
    records: int = 0
    duplicates: int = 0
    quarantined: int = 0
    bronze_rows: int = 0
    published: int = 0
    """Rows inserted into silver and late_events (counted from the inserts, so the
    ``rows_reconcile`` check compares what was written, not a difference)."""
    quarantine_rules: dict[str, int] = field(default_factory=dict)
    admitted: int = 0
    late: int = 0
    feature_rows: int = 0
    alerts_standing: int = 0
    alerts_changed: int = 0
    ledger_entries: int = 0
    event_hours: list[str] = field(default_factory=list)
    stream_time: dict[int, str] = field(default_factory=dict)
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    timer: PhaseTimer = field(default_factory=PhaseTimer, repr=False)
    """Wall and CPU time per step (read, classify, silver, features, state, bronze, alerts,
    ledger, commit): where a slow batch spends its time (bench and run metadata). CPU time
    counts every thread of the process: on shared cores wall time measures the neighbours as
    much as the step."""
    _event_time_quantiles: list[float] = field(default_factory=list, repr=False)

    @property
    def replayed(self) -> bool:
        """Nothing left to do: every requested offset was already committed."""
        return not self.ranges

    @property
    def step_seconds(self) -> dict[str, float]:
        return self.timer.metadata()

    @property
    def step_cpu_seconds(self) -> dict[str, float]:
        return self.timer.cpu_metadata()


def read_ranges(
    log: EventLog, ranges: list[OffsetRange]
) -> tuple[pl.DataFrame, list[OffsetRange], PackedRecords]:
    """The records of ``ranges`` as a frame (``RAW_SCHEMA`` and ``PARSE_ERROR``), with their
    partition, offset and append time, and the raw records (for the quarantine).

    Returns the ranges actually read: a range can come back shorter if its tail is not readable
    (a torn frame): only what was read is committed, the rest is read by a later batch.
    """
    payloads: list[bytes] = []
    lengths: list[np.ndarray] = []
    partitions: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    appended: list[np.ndarray] = []
    read: list[OffsetRange] = []
    for r in ranges:
        chunks = log.read(r.partition, r.start, r.end)
        end = chunks[-1].end_offset if chunks else r.start
        if end > r.start:
            read.append(OffsetRange(r.partition, r.start, end))
        for chunk in chunks:
            payloads.append(chunk.data)
            lengths.append(chunk.lengths)
            partitions.append(np.full(chunk.count, chunk.partition, dtype=np.int32))
            offsets.append(np.arange(chunk.first_offset, chunk.end_offset, dtype=np.int64))
            appended.append(np.full(chunk.count, chunk.append_ms, dtype=np.int64))
    starts = np.concatenate(
        ([0], np.cumsum(np.concatenate(lengths) if lengths else [], dtype=np.int64))
    )
    packed = PackedRecords(b"".join(payloads), starts)
    frame = parse_records(packed)
    if not payloads:
        return frame.with_columns(log_partition=pl.lit(None, dtype=pl.Int32)), read, packed
    frame = frame.with_columns(
        log_partition=pl.Series(np.concatenate(partitions)),
        log_offset=pl.Series(np.concatenate(offsets)),
        log_appended_at=pl.Series(np.concatenate(appended)).cast(pl.Datetime("ms")),
        _record=pl.int_range(pl.len(), dtype=pl.Int64),
    )
    return frame, read, packed


def stored_ids_sql(lo: str, hi: str) -> str:
    """The event ids stored in silver and late_events with event time in [``lo``, ``hi``]
    (SQL expressions: bound parameters or literals, never a column of a joined table).

    Why the bounds must be constants of the statement: as a one-row CTE cross-joined with the
    tables (``FROM silver, span WHERE event_time BETWEEN lo AND hi``), DuckDB 1.5 still pruned
    row groups, but evaluated the bounds as a join: the dedup and the uniqueness check each
    took twice as long (0.80 and 0.98 s vs 0.38 and 0.49 s over a 5-minute span of 15.7 M
    rows, warm; 1.5 s cold for the check)."""
    return f"""SELECT event_id FROM {SILVER.table} WHERE event_time BETWEEN {lo} AND {hi}
            UNION ALL
            SELECT event_id FROM {LATE.table} WHERE event_time BETWEEN {lo} AND {hi}"""


def classify(
    frame: pl.DataFrame, prior_stream_time: dict[int, datetime], rules: RecordRules
) -> pl.DataFrame:
    """Type ``event_time`` (its delivered text kept as ``event_time__raw``), add ``stream_time``
    (of the partition before the record), the verdict ``is_valid`` of the contract's record
    rules (``rules``; the rejected rows' rules and reasons are added by ``_quarantine``),
    ``is_first`` (first delivery within the batch) and ``is_late``."""
    prior = pl.DataFrame(
        {
            "log_partition": list(prior_stream_time),
            "_prior": list(prior_stream_time.values()),
        },
        schema={"log_partition": pl.Int32, "_prior": pl.Datetime("us")},
    )
    lateness = timedelta(seconds=ALLOWED_LATENESS_S)
    return (
        frame.rename({"event_time": EVENT_TIME_RAW})
        .sort("log_partition", "log_offset")
        .with_columns(
            event_time=pl.col(EVENT_TIME_RAW)
            .str.to_datetime(TIME_FORMAT, strict=False)
            .cast(pl.Datetime("us")),
            _seq=pl.int_range(pl.len()),
        )
        .join(prior, on="log_partition", how="left")
        .with_columns(
            stream_time=pl.max_horizontal(
                pl.col("event_time").cum_max().shift(1).over("log_partition"), pl.col("_prior")
            ),
        )
        .with_columns(is_valid=rules.valid_expr())
        .with_columns(
            is_first=pl.col("_seq") == pl.col("_seq").min().over("event_id"),
            is_late=pl.col("stream_time").is_not_null()
            & (pl.col("event_time") < pl.col("stream_time") - lateness),
        )
        .drop("_prior")
    )


def process_batch(
    con: duckdb.DuckDBPyConnection,
    log: EventLog,
    requested: list[OffsetRange],
    *,
    consumer: str,
    batch_id: str,
    contract: Contract | None = None,
) -> BatchReport:
    """Run one batch to commit (or roll back). See the module docstring for the steps.

    ``contract``: the silver contract whose row rules decide what is quarantined (default: the
    repository's ``contracts/payments/transactions.yaml``, parsed once per process).

    Two phases. First everything is computed into temp tables, outside any transaction and
    writing nothing to the warehouse; then one transaction writes every sink and commits the
    offsets. Why not all in the transaction: DuckDB 1.5 sizes a table scan's parallelism by
    the table's committed rows, so a temp table created inside a running transaction is
    scanned by one thread, and every statement of the batch reads one. On two cores that made
    most of the batch single-threaded. Splitting is safe because the only writer of these
    tables is this consumer, and every one of its batches commits its offsets: if another
    batch committed between the two phases, ``commit_ranges`` finds the committed end moved
    and the transaction rolls back, so a batch computed from stale state never lands.
    """
    report = BatchReport(batch_id=batch_id)
    timer = report.timer
    with timer.phase("read"):
        ensure_tables(con)
        # Nothing here depends on the order of unordered results (every insert that wants an
        # order says ORDER BY), and keeping it costs DuckDB its parallel sinks and buffering.
        con.execute("SET preserve_insertion_order = false")
        todo = resolve_ranges(requested, committed_ends(con, consumer, log.topic, log.partitions))
        frame, report.ranges, packed = read_ranges(log, todo)
    batch: _Prepared | None = None
    try:
        if report.ranges:
            batch = _prepare(
                con,
                frame,
                report,
                record_rules(contract or silver_contract()),
                consumer=consumer,
                topic=log.topic,
            )
        con.begin()
        try:
            if batch is not None:
                _write(con, batch, packed, report, consumer=consumer, topic=log.topic)
            with timer.phase("commit"):
                if batch is not None:
                    commit_ranges(con, consumer, log.topic, report.ranges, batch_id)
                con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        if batch is not None:
            con.unregister("_batch")
    committed_at = time.time()
    if report._event_time_quantiles:
        p50, p05 = report._event_time_quantiles
        report.latency_p50_s, report.latency_p95_s = committed_at - p50, committed_at - p05
    report.seconds = timer.elapsed()
    # CPU of every thread of the process (DuckDB's included): on shared cores, wall time says
    # more about the neighbours than about the batch.
    report.cpu_seconds = timer.cpu_elapsed()
    return report


@dataclass
class _Prepared:
    """What the write phase needs besides the temp tables the prepare phase left."""

    frame: pl.DataFrame
    now: datetime
    prior: dict[int, datetime]
    rules: RecordRules


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    packed: PackedRecords,
    rules: RecordRules,
    *,
    topic: str,
    batch_id: str,
    now: datetime,
) -> tuple[int, dict[str, int]]:
    """Write the batch's rejected records to the quarantine table, in the quarantine schema every
    domain shares (``data_products.lib.quarantine``); returns the rows inserted and the count per
    rule. Only rejected rows are touched here: valid rows pay for the verdict expression alone.

    The log position is the record's lineage, as file and line are a landing file's:
    ``_source_file`` = ``<topic>/p<partition>`` (the topic keeps two streams' partitions apart),
    ``_source_line`` = its offset in that partition. ``partition_date`` is the day of the event
    time; a record without a readable event time (malformed, or failing the type rule) takes the
    day the log appended it, which the log stores, so a replay files it under the same day."""
    rejected = frame.filter(~pl.col("is_valid")).with_columns(rules.verdict_columns())
    if not rejected.height:
        return 0, {}
    records = pl.Series(packed.text(rejected["_record"].to_list()), dtype=pl.String)
    rows = quarantine_rows(
        rejected.with_columns(raw_record=records),
        rule_id=pl.col("rule_id"),
        failed_rules=pl.col("failed_rules"),
        reason=pl.col("reason"),
        raw_record=pl.col("raw_record"),
        quarantined_at=now,
        partition_date=pl.coalesce(
            pl.col("event_time").dt.date(), pl.col("log_appended_at").dt.date()
        ),
        source_file=pl.format("{}/p{}", pl.lit(topic), pl.col("log_partition")),
        source_line=pl.col("log_offset"),
        extra={"_batch_id": pl.lit(batch_id, dtype=pl.String)},
    )
    con.register("_rejected", rows.to_arrow())
    try:
        inserted = con.execute(
            f"INSERT INTO {QUARANTINE.table} BY NAME SELECT * FROM _rejected"
        ).fetchone()
    except duckdb.BinderException as exc:
        raise RuntimeError(
            f"{QUARANTINE.table} does not have the shared quarantine columns "
            f"({', '.join(rows.columns)}): it was created by a stream from before they were "
            f"shared. Drop it (DROP TABLE {QUARANTINE.table}) and replay, or start from a clean "
            f"data home: {exc}"
        ) from exc
    finally:
        con.unregister("_rejected")
    per_rule = dict(rows.group_by("rule_id").len().sort("rule_id").iter_rows())
    return (int(inserted[0]) if inserted else 0), per_rule


def _prepare(
    con: duckdb.DuckDBPyConnection,
    raw: pl.DataFrame,
    report: BatchReport,
    rules: RecordRules,
    *,
    consumer: str,
    topic: str,
) -> _Prepared:
    """The compute phase: classify the records and leave, as temp tables, the candidates
    (``_candidates``: valid first deliveries no earlier batch stored), the admitted events
    (``_admitted``) and the features to write (``_features``, ``_rewritten``, ``_new_events``).
    Reads the warehouse, writes nothing to it."""
    timer = report.timer
    now = datetime.now(UTC).replace(tzinfo=None)
    with timer.phase("classify"):
        prior = dict(
            con.execute(
                f"SELECT partition, stream_time FROM {STATE_SCHEMA}.partition_time "
                "WHERE consumer = ? AND topic = ?",
                [consumer, topic],
            ).fetchall()
        )
        frame = classify(raw, prior, rules)
        report.records = frame.height
    with timer.phase("silver"):
        con.register("_batch", parallel_scan(frame.drop(PARSE_ERROR).to_arrow()))
        # Candidates: valid first deliveries in this batch that no earlier batch stored.
        span = frame.filter(pl.col("is_valid") & pl.col("is_first")).select(
            lo=pl.col("event_time").min(), hi=pl.col("event_time").max()
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _candidates AS
            WITH firsts AS (SELECT * FROM _batch WHERE is_valid AND is_first),
            stored AS ({stored_ids_sql("$lo", "$hi")})
            SELECT event_id, user_id, merchant_id, amount::DECIMAL(18,2) AS amount, currency,
                   country, device_id, event_time,
                   date_trunc('hour', event_time) AS event_hour, log_partition, log_offset,
                   $batch_id AS _batch_id, $now::TIMESTAMP AS _ingested_at, stream_time, is_late
            FROM firsts ANTI JOIN stored USING (event_id)""",
            {"batch_id": report.batch_id, "now": now, **span.row(0, named=True)},
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _admitted AS
               SELECT event_id, user_id, event_time, amount, country
               FROM _candidates WHERE NOT is_late"""
        )
        counts = con.execute(
            """SELECT count(*) FILTER (WHERE NOT is_late), count(*) FILTER (WHERE is_late),
                      list(DISTINCT strftime(event_hour, '%Y-%m-%d-%H:00') ORDER BY 1)
               FROM _candidates"""
        ).fetchone()
        assert counts is not None
        report.admitted, report.late = int(counts[0]), int(counts[1])
        report.event_hours = counts[2]
        # A duplicate: a valid delivery that did not add a transaction (re-sent within the
        # batch, or of an event an earlier batch stored).
        valid = int(frame["is_valid"].sum())
        report.duplicates = valid - report.admitted - report.late
    with timer.phase("features"):
        report.feature_rows = recompute_features(con, batch_id=report.batch_id, computed_at=now)
    with timer.phase("state"):
        # Event-time quantiles now, latencies at commit: the 95th latency percentile is the 5th
        # event-time percentile, measured against the moment the features became visible.
        quantiles = con.execute(
            "SELECT quantile_cont(epoch(event_time), [0.5, 0.05]) FROM _admitted"
        ).fetchone()
        if quantiles and quantiles[0]:
            report._event_time_quantiles = [float(x) for x in quantiles[0]]
    return _Prepared(frame=frame, now=now, prior=prior, rules=rules)


def _write(
    con: duckdb.DuckDBPyConnection,
    batch: _Prepared,
    packed: PackedRecords,
    report: BatchReport,
    *,
    consumer: str,
    topic: str,
) -> None:
    """The write phase, inside the batch's transaction: every sink from the temp tables
    ``_prepare`` left, and the partitions' stream times."""
    frame, now, prior, timer = batch.frame, batch.now, batch.prior, report.timer
    with timer.phase("bronze"):
        bronze = con.execute(
            f"""INSERT INTO {BRONZE.table}
            SELECT event_id, user_id, merchant_id, amount, currency, country, device_id,
                   {EVENT_TIME_RAW}, date_trunc('hour', event_time), log_partition, log_offset,
                   log_appended_at, $batch_id, $now
            FROM _batch""",
            {"batch_id": report.batch_id, "now": now},
        ).fetchone()
        report.bronze_rows = int(bronze[0]) if bronze else 0
    with timer.phase("silver"):
        report.quarantined, report.quarantine_rules = _quarantine(
            con, frame, packed, batch.rules, topic=topic, batch_id=report.batch_id, now=now
        )
        columns = (
            "event_id, user_id, merchant_id, amount, currency, country, device_id, event_time, "
            "event_hour, log_partition, log_offset, _batch_id, _ingested_at"
        )
        # ORDER BY event_time: the event_time min/max of each row group (zone maps) then skip
        # older batches in the span-bounded reads of later batches (dedup, the uniqueness check).
        admitted = con.execute(
            f"""INSERT INTO {SILVER.table} SELECT {columns} FROM _candidates WHERE NOT is_late
                ORDER BY event_time"""
        ).fetchone()
        late = con.execute(
            f"""INSERT INTO {LATE.table} SELECT {columns}, stream_time,
                   epoch(stream_time - event_time) FROM _candidates WHERE is_late"""
        ).fetchone()
        report.published = (int(admitted[0]) if admitted else 0) + (int(late[0]) if late else 0)
    with timer.phase("features"):
        delete_rewritten_features(con)
        store_features(con)
    with timer.phase("alerts"):
        recompute_alerts(con, batch_id=report.batch_id, alerted_at=batch.now)
        report.alerts_standing, report.alerts_changed = store_alerts(con)
    with timer.phase("ledger"):
        report.ledger_entries = book_transactions(con, "_candidates", batch_id=report.batch_id)
    with timer.phase("state"):
        stream_times = (
            frame.filter(pl.col("event_time").is_not_null())
            .group_by("log_partition")
            .agg(pl.col("event_time").max())
            .rows()
        )
        latest = dict(prior)
        for partition, batch_max in stream_times:
            new = latest[partition] = max(batch_max, prior.get(partition, batch_max))
            con.execute(
                f"""INSERT OR REPLACE INTO {STATE_SCHEMA}.partition_time VALUES (?, ?, ?, ?)""",
                [consumer, topic, partition, new],
            )
            report.stream_time[int(partition)] = new.isoformat()
        if latest:
            # Every partition's stream time, this batch's included: the slowest bounds the state.
            prune_card_events(con, min(latest.values()))
