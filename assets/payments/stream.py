"""The payments micro-batch: one run per batch of log offsets, every sink in one transaction.

Why one multi-asset rather than one asset per table: exactly-once needs the data of every sink
and the committed offsets in a single DuckDB transaction. Six separate assets would be six
transactions, and a crash between two of them would leave, say, silver ahead of the features
with nothing to say which batch the features still miss. The tables remain separate assets in the
catalog and lineage (each with its own checks and metadata); they are materialised together.

Hourly partitions: the asset is unpartitioned on purpose. A batch is an offset range, and its
events span several event hours (late events reach back up to the allowed lateness and beyond),
so "one run = one hour" does not exist in a stream. Every row carries ``event_hour``, each
materialisation lists the event hours it touched (``event_hours`` metadata), and the time-sliced
view the UI can backfill is downstream: ``payments/gold/reconciliation`` is daily-partitioned
and re-runs any day range as one run from the warehouse.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from assets.payments.alerts import PRECISION_TARGET, RECALL_TARGET, evaluate_alerts
from assets.payments.batch import BatchReport, process_batch, stored_ids_sql
from assets.payments.ledger import balance_report
from assets.payments.reference import (
    ALLOWED_LATENESS_S,
    CONSUMER,
    DOMAIN,
    MAX_BATCH_RECORDS,
    TOPIC,
)
from assets.payments.tables import (
    ALERTS,
    BRONZE,
    CARD_EVENTS,
    FEATURES,
    LATE,
    LEDGER,
    QUARANTINE,
    SILVER,
    contract,
    silver_contract,
)
from data_products.lib.contracts.checks import ROWS_RECONCILE, SCHEMA, schema_check
from data_products.lib.eventlog import EventLog, OffsetRange
from data_products.lib.keys import DatasetName
from data_products.lib.microbatch import (
    STATE_SCHEMA,
    BatchConfig,
    StreamLimits,
    committed_ends,
    describe_ranges,
    plan_batch,
)
from data_products.lib.settings import get_settings
from resources.warehouse import WarehouseResource

OP_NAME = "payments_stream_batch"

# Description and the kinds only the body knows (its engine, the log's JSON records); policy
# derives the storage kind (duckdb) from the contracts and the warehouse resource.
_DESCRIPTIONS: dict[DatasetName, tuple[str, set[str]]] = {
    BRONZE: (
        "Every record read from the payments_transactions event log, as delivered (re-sends "
        "included), with its partition, offset and append time. One row per log offset.",
        {"json"},
    ),
    SILVER: (
        "Card transactions admitted by the watermark, deduplicated by event id across batches "
        "(first delivery wins), typed, amounts in DECIMAL(18,2). Keyed by event hour.",
        {"polars"},
    ),
    QUARANTINE: (
        "Records the stream could not publish: malformed (not JSON, wrong types), or failing a "
        "row rule (required fields, positive amount, ISO-8601 UTC event time, currency and "
        "country codes). One row per rejected delivery: rule, every failed rule, reason with "
        "the log partition and offset, and the raw record.",
        {"polars"},
    ),
    LATE: (
        "Transactions that arrived more than the allowed lateness (2 minutes) behind their "
        "partition's stream time: kept, booked in the ledger, excluded from window features.",
        set(),
    ),
    FEATURES: (
        "Per-card sliding windows (1m, 5m, 1h: count, sum, mean, max), z-score of the amount "
        "against the card's last hour, previous country. One row per admitted transaction; "
        "late events recompute exactly the rows whose windows they fall in.",
        {"sql"},
    ),
    ALERTS: (
        "Fraud alerts from rules over the window features (velocity, amount z-score, impossible "
        "travel). One row per alerted transaction, rules that fired listed.",
        {"sql"},
    ),
    LEDGER: (
        "Double-entry ledger: every distinct transaction (late ones too) as three balanced "
        "entries: card clearing debit, merchant payable and fee income credits.",
        {"sql"},
    ),
}


STREAM_KEYS: list[dg.AssetKey] = [name.asset_key for name in _DESCRIPTIONS]
"""The assets one batch materialises (the sensor's selection)."""


def _spec(name: DatasetName) -> dg.AssetSpec:
    description, kinds = _DESCRIPTIONS[name]
    deps = {
        SILVER: [BRONZE],
        QUARANTINE: [BRONZE],
        LATE: [BRONZE],
        FEATURES: [SILVER],
        ALERTS: [FEATURES],
        LEDGER: [SILVER, LATE],
    }.get(name, [])
    return dg.AssetSpec(
        key=name.asset_key,
        description=description,
        kinds=kinds,
        tags={"tier": "stream"},
        deps=[d.asset_key for d in deps],
        skippable=False,
    )


def _check(name: DatasetName, check: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(check, asset=name.asset_key, description=description)


def _from_contract(
    name: DatasetName, check: str, description: str | None = None
) -> dg.AssetCheckSpec:
    """The contract's spec of a platform check (name, blocking, metadata). ``description``
    says what the stream counts where it counts more than the platform's split (duplicates)."""
    spec = next(s for s in contract(name).check_specs() if s.name == check)
    return dg.AssetCheckSpec(
        spec.name,
        asset=spec.asset_key,
        description=description or spec.description,
        blocking=spec.blocking,
        metadata=spec.metadata,
    )


CHECKS = [
    _check(
        BRONZE,
        "offsets_contiguous",
        "Committed offset ranges of every partition are contiguous from 0: no gap, no overlap.",
    ),
    _from_contract(
        SILVER,
        ROWS_RECONCILE,
        "Records read = bronze rows written = rows published (silver + late_events, as "
        "inserted) + duplicates + rows quarantined (as inserted): nothing lost or doubled.",
    ),
    _check(
        SILVER,
        "event_id_unique",
        "Every event id of the batch is stored exactly once across silver and late_events.",
    ),
    _from_contract(SILVER, SCHEMA),
    _check(
        LATE,
        "beyond_allowed_lateness",
        f"Every late event is more than {ALLOWED_LATENESS_S} s behind its partition's stream time.",
    ),
    _check(
        FEATURES,
        "one_row_per_event",
        "The features hold exactly one row per admitted (silver) transaction.",
    ),
    _check(
        ALERTS,
        "precision_recall",
        f"Against the simulator's ground truth (when present): recall >= {RECALL_TARGET:.0%} and "
        f"precision >= {PRECISION_TARGET:.0%} on events whose alerts are final.",
    ),
    _check(LEDGER, "balanced", "Debits equal credits per transaction of the batch and in total."),
]


@dg.multi_asset(
    name=OP_NAME,
    specs=[_spec(n) for n in _DESCRIPTIONS],
    check_specs=CHECKS,
    description="One exactly-once micro-batch of the payments stream (requested by the "
    "payments_stream sensor with the offset ranges in its run config).",
)
def payments_stream_batch(
    context: dg.AssetExecutionContext, config: BatchConfig, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
    if config.topic not in ("", TOPIC):
        raise ValueError(f"payments_stream_batch consumes {TOPIC!r}, not {config.topic!r}")
    log = EventLog.open(TOPIC)
    batch_id = context.run.run_id
    with warehouse.connect() as con:
        requested = config.offset_ranges() or _next_batch(con, log)
        report = process_batch(con, log, requested, consumer=CONSUMER, batch_id=batch_id)
        committed = committed_ends(con, CONSUMER, TOPIC, log.partitions)
        ends = log.end_offsets()
        lag = _lag(log, committed, ends)
        finished = time.time()
        batch_meta: dict[str, Any] = {
            "ranges_requested": describe_ranges(requested),
            "ranges_committed": describe_ranges(report.ranges) or "none (replay of a commit)",
            "records": report.records,
            "lag_offsets": lag["offsets"],
            "lag_seconds": lag["seconds"],
            "batch_seconds": round(report.seconds, 3),
            "batch_cpu_seconds": round(report.cpu_seconds, 3),
            "batch_latency_s": round(finished - config.requested_at_ms / 1000, 3)
            if config.requested_at_ms
            else None,
            "event_to_feature_p50_s": _round(report.latency_p50_s),
            "event_to_feature_p95_s": _round(report.latency_p95_s),
            "event_hours": ", ".join(report.event_hours),
            "step_seconds": dict(report.step_seconds),
            "step_cpu_seconds": dict(report.step_cpu_seconds),
        }
        yield from _materializations(con, report, batch_meta)
        yield from _checks(con, report, committed)
    context.log.info(
        f"batch {report.batch_id}: {report.records} records, {report.admitted} admitted, "
        f"{report.late} late, {report.duplicates} duplicates in {report.seconds:.2f}s; "
        f"lag {lag['offsets']} offsets / {lag['seconds']} s"
    )


def _next_batch(con: duckdb.DuckDBPyConnection, log: EventLog) -> list[OffsetRange]:
    """A run launched without ranges (from the UI) takes the batch the sensor would request."""
    limits = StreamLimits.from_env(
        CONSUMER, max_batch_records=MAX_BATCH_RECORDS, max_records_per_second=None
    )
    committed = committed_ends(con, CONSUMER, TOPIC, log.partitions)
    return plan_batch(committed, log.end_offsets(), limits.max_batch_records)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _lag(log: EventLog, committed: dict[int, int], ends: dict[int, int]) -> dict[str, Any]:
    """Offsets not yet committed, and how long ago the oldest of them was appended."""
    offsets = sum(ends[p] - committed.get(p, 0) for p in ends)
    oldest = [
        ms
        for p in ends
        if ends[p] > committed.get(p, 0)
        and (ms := log.append_ms_at(p, committed.get(p, 0))) is not None
    ]
    seconds = round(time.time() - min(oldest) / 1000, 3) if oldest else 0.0
    return {"offsets": offsets, "seconds": seconds}


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> int:
    row = con.execute(sql, params or {}).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _materializations(
    con: duckdb.DuckDBPyConnection, report: BatchReport, batch_meta: dict[str, Any]
) -> Iterator[dg.MaterializeResult[Any]]:
    rows = {
        BRONZE: report.records,
        SILVER: report.admitted,
        LATE: report.late,
        QUARANTINE: report.quarantined,
        FEATURES: report.feature_rows,
        ALERTS: report.alerts_standing,
        LEDGER: report.ledger_entries,
    }
    extra: dict[DatasetName, dict[str, Any]] = {
        SILVER: {"duplicates_dropped": report.duplicates, "quarantined": report.quarantined},
        QUARANTINE: {"quarantined_by_rule": report.quarantine_rules},
        FEATURES: {
            "rows_recomputed": report.feature_rows - report.admitted,
            # Each batch scans the whole window state (the last hour of admitted events), so
            # its cost grows with it: see "Open" in assets/payments/README.md, round 4.
            "window_state_rows": _count(con, f"SELECT count(*) FROM {CARD_EVENTS}"),
        },
        ALERTS: {"alert_rows_changed": report.alerts_changed},
    }
    for name, written in rows.items():
        yield dg.MaterializeResult(
            asset_key=name.asset_key,
            metadata={
                **batch_meta,
                "rows_written": written,
                "dagster/row_count": _count(con, f"SELECT count(*) FROM {name.table}"),
                "stream_time": ", ".join(f"p{p}: {t}" for p, t in report.stream_time.items()),
                **extra.get(name, {}),
            },
        )


def _checks(
    con: duckdb.DuckDBPyConnection, report: BatchReport, committed: dict[int, int]
) -> Iterator[dg.AssetCheckResult]:
    gaps = con.execute(
        f"""SELECT partition, start_offset, prev_end FROM (
                SELECT partition, start_offset,
                       lag(end_offset, 1, 0) OVER (PARTITION BY partition ORDER BY start_offset)
                       AS prev_end
                FROM {STATE_SCHEMA}.committed_offsets WHERE consumer = ? AND topic = ?)
            WHERE start_offset <> prev_end LIMIT 10""",
        [CONSUMER, TOPIC],
    ).fetchall()
    yield dg.AssetCheckResult(
        asset_key=BRONZE.asset_key,
        check_name="offsets_contiguous",
        passed=not gaps,
        metadata={
            "committed_ends": str(committed),
            "gaps": [f"p{p}: starts {s}, previous ended {e}" for p, s, e in gaps],
        },
    )
    accounted = report.published + report.duplicates + report.quarantined
    yield dg.AssetCheckResult(
        asset_key=SILVER.asset_key,
        check_name=ROWS_RECONCILE,
        passed=accounted == report.records == report.bronze_rows,
        metadata={
            "records": report.records,
            "bronze_rows": report.bronze_rows,
            "published": report.published,
            "admitted": report.admitted,
            "late": report.late,
            "duplicates": report.duplicates,
            "quarantined": report.quarantined,
            "quarantined_by_rule": report.quarantine_rules,
        },
    )
    if report.replayed:
        # A replay of committed offsets wrote nothing: there is no batch to check.
        for name, check in (
            (SILVER, "event_id_unique"),
            (SILVER, SCHEMA),
            (LATE, "beyond_allowed_lateness"),
            (FEATURES, "one_row_per_event"),
        ):
            yield dg.AssetCheckResult(
                asset_key=name.asset_key,
                check_name=check,
                passed=True,
                metadata={"note": "replay of committed offsets: nothing written"},
            )
    else:
        yield from _batch_checks(con, report)
    yield _precision_recall(con, report)
    balance = balance_report(con, batch_id=None if report.replayed else report.batch_id)
    yield dg.AssetCheckResult(
        asset_key=LEDGER.asset_key,
        check_name="balanced",
        passed=balance["unbalanced_in_scope"] == 0 and bool(balance["total_balanced"]),
        metadata=balance,
    )


def _batch_checks(
    con: duckdb.DuckDBPyConnection, report: BatchReport
) -> Iterator[dg.AssetCheckResult]:
    """Checks of what this batch wrote, read from the batch's temp tables (``_candidates``,
    ``_admitted``, ``_features``, same connection) instead of scanning whole tables by batch
    id: a check's cost follows the batch, not the history."""
    span = con.execute("SELECT min(event_time), max(event_time) FROM _candidates").fetchone()
    lo, hi = span if span else (None, None)
    doubled = con.execute(
        f"""WITH stored AS ({stored_ids_sql("$lo", "$hi")})
            SELECT event_id, count(*) AS copies FROM stored SEMI JOIN _candidates USING (event_id)
            GROUP BY event_id HAVING count(*) > 1 ORDER BY event_id LIMIT 20""",
        {"lo": lo, "hi": hi},
    ).fetchall()
    yield dg.AssetCheckResult(
        asset_key=SILVER.asset_key,
        check_name="event_id_unique",
        passed=not doubled,
        metadata={
            "duplicated_ids": len(doubled),
            "sample": [f"{e} x{c}" for e, c in doubled],
        },
    )
    yield _schema_check(con)
    too_early = con.execute(
        f"""SELECT event_id, epoch(stream_time - event_time) AS lateness FROM _candidates
            WHERE is_late AND epoch(stream_time - event_time) <= {ALLOWED_LATENESS_S}
            LIMIT 20"""
    ).fetchall()
    yield dg.AssetCheckResult(
        asset_key=LATE.asset_key,
        check_name="beyond_allowed_lateness",
        passed=not too_early,
        metadata={"late_in_batch": report.late, "sample": [f"{e}: {s}s" for e, s in too_early]},
    )
    silver_rows = _count(con, f"SELECT count(*) FROM {SILVER.table}")
    feature_rows = _count(con, f"SELECT count(*) FROM {FEATURES.table}")
    missing = con.execute(
        "SELECT event_id FROM _admitted ANTI JOIN _features USING (event_id) LIMIT 20"
    ).fetchall()
    yield dg.AssetCheckResult(
        asset_key=FEATURES.asset_key,
        check_name="one_row_per_event",
        passed=silver_rows == feature_rows and not missing,
        metadata={
            "silver_rows": silver_rows,
            "feature_rows": feature_rows,
            "missing_sample": [m[0] for m in missing],
        },
    )


def _schema_check(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """The platform's schema check on the batch's silver rows, read from its temp table (same
    connection, same values as inserted): a filter on batch id would scan the whole silver table
    after every batch. The key is ``event_id_unique``'s (across silver and late_events)."""
    described = con.execute(f"SELECT * FROM {SILVER.table} LIMIT 0").description
    columns = ", ".join(d[0] for d in described or [])
    rows = con.execute(f"SELECT {columns} FROM _candidates WHERE NOT is_late").pl()
    return schema_check(silver_contract(), rows, asset_key=SILVER.asset_key)


def _precision_recall(con: duckdb.DuckDBPyConnection, report: BatchReport) -> dg.AssetCheckResult:
    """Alerts are final once no event can still change them: the allowed lateness plus the
    velocity rule's one-minute look-ahead behind the slowest partition's stream time."""
    from assets.payments.alerts import truth_files

    files = truth_files(get_settings().truth / DOMAIN)
    if not files or not report.stream_time:
        return dg.AssetCheckResult(
            asset_key=ALERTS.asset_key,
            check_name="precision_recall",
            passed=True,
            metadata={"note": "no ground truth under truth/payments: production stream"},
        )
    labels = pl.concat([pl.read_parquet(f) for f in files])
    slowest = min(datetime.fromisoformat(t) for t in report.stream_time.values())
    final_before = slowest - timedelta(seconds=ALLOWED_LATENESS_S + 60)
    scores = evaluate_alerts(con, labels, final_before=final_before)
    enough = scores["true_positives"] + scores["false_negatives"] >= 20
    passed = not enough or (
        scores["recall"] >= RECALL_TARGET and scores["precision"] >= PRECISION_TARGET
    )
    return dg.AssetCheckResult(
        asset_key=ALERTS.asset_key,
        check_name="precision_recall",
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()},
            "final_before": final_before.replace(tzinfo=UTC).isoformat(),
            "note": "" if enough else "fewer than 20 labelled fraud events scored yet",
        },
    )
