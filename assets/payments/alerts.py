"""Fraud rules over the window features, and their precision and recall against ground truth.

Rules (an event raises an alert when any holds):
- ``velocity``: some event of the card in [t, t + 1m] has ``count_1m >= VELOCITY_COUNT``, i.e. e
  sits in a one-minute window with that many transactions. Looking forward flags the whole burst,
  not only its tail, as a card issuer does once a burst is recognised;
- ``amount_spike``: ``zscore_1h >= ZSCORE`` and the amount is at least ``SPIKE_RATIO`` times the
  card's hourly mean (the ratio guards against a near-zero spread in a short history);
- ``impossible_travel``: the previous event (within the hour) was in another country, the card has
  not been seen in this country within the hour, and the implied speed between the two countries'
  centroids exceeds ``TRAVEL_KMH``. "Not seen here" keeps the card holder's return home quiet.

A batch re-evaluates the rules for every card whose features it wrote, from one minute before its
earliest rewritten row (the forward look of ``velocity``), and replaces those cards' alerts there.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from assets.payments.reference import COUNTRIES
from assets.payments.tables import ALERTS, FEATURES

VELOCITY_COUNT = 5
ZSCORE = 4.0
SPIKE_RATIO = 5.0
TRAVEL_KMH = 1000.0
RECALL_TARGET = 0.90
PRECISION_TARGET = 0.80


def _centroids(con: duckdb.DuckDBPyConnection) -> None:
    rows = ", ".join(f"('{c}', {lat}, {lon})" for c, _, lat, lon, _ in COUNTRIES)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _centroids AS "
        f"SELECT * FROM (VALUES {rows}) AS t(country, lat, lon)"
    )


_RULE_INPUTS = (
    "event_id, user_id, event_time, amount, country, burst_count, zscore_1h, history_mean_1h, "
    "prev_event_time, prev_country, country_seen_1h"
)
_ALERT_VALUES = (
    "event_id, user_id, event_time, amount, country, velocity, amount_spike, impossible_travel, "
    "rules, burst_count, zscore_1h, speed_kmh"
)


def _rules_sql(source: str) -> str:
    """The alert rows (every column but ``alerted_at``/``batch_id``) of the rows of ``source``
    (``_RULE_INPUTS``) on which a rule fires."""
    return f"""
        WITH travel AS (
            SELECT s.*,
                CASE WHEN s.prev_country IS NOT NULL AND s.prev_country <> s.country THEN
                    2 * 6371.0 * asin(sqrt(
                        pow(sin(radians(b.lat - a.lat) / 2), 2)
                        + cos(radians(a.lat)) * cos(radians(b.lat))
                          * pow(sin(radians(b.lon - a.lon) / 2), 2)))
                    / greatest(epoch(s.event_time - s.prev_event_time), 1) * 3600
                END AS speed_kmh
            FROM {source} s
            LEFT JOIN _centroids a ON a.country = s.prev_country
            LEFT JOIN _centroids b ON b.country = s.country),
        flagged AS (
            SELECT *,
                burst_count >= {VELOCITY_COUNT} AS velocity,
                coalesce(zscore_1h >= {ZSCORE}
                         AND amount >= {SPIKE_RATIO} * history_mean_1h, false) AS amount_spike,
                coalesce(country_seen_1h = 0 AND speed_kmh > {TRAVEL_KMH}, false)
                    AS impossible_travel
            FROM travel)
        SELECT event_id, user_id, event_time, amount, country, velocity, amount_spike,
            impossible_travel,
            concat_ws(',', CASE WHEN velocity THEN 'velocity' END,
                           CASE WHEN amount_spike THEN 'amount_spike' END,
                           CASE WHEN impossible_travel THEN 'impossible_travel' END) AS rules,
            burst_count, zscore_1h, speed_kmh
        FROM flagged WHERE velocity OR amount_spike OR impossible_travel"""


def full_alerts_sql() -> str:
    """The alerts of every stored feature row at once: what the incremental path must equal."""
    return _rules_sql(
        f"""(SELECT *, max(count_1m) OVER (PARTITION BY user_id ORDER BY event_time
                    RANGE BETWEEN CURRENT ROW AND INTERVAL 1 MINUTE FOLLOWING) AS burst_count
             FROM {FEATURES.table})"""
    )


def recompute_alerts(
    con: duckdb.DuckDBPyConnection, *, batch_id: str, alerted_at: datetime
) -> tuple[int, int]:
    """Re-evaluate the rules where temp table ``_features`` changed features, and write only
    the alerts that changed.

    Scope: per touched card, its events from one minute before its earliest rewritten row (the
    forward look of ``velocity``). Every input comes from the batch's temp tables, not from the
    stored features (wide, opened cold by every run, and read over minutes of event time when a
    late event widens the scope): ``count_1m`` of every scope row from the card's events in
    ``_context``; the other rules' inputs from ``_features`` for rewritten rows. A scope row
    that was not rewritten keeps its features, so its ``amount_spike``/``impossible_travel``
    verdicts stand as stored (no alert row: both false); only ``velocity`` can change there.

    Returns (alerts standing in the scope, alert rows deleted or inserted)."""
    _centroids(con)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _alert_scope AS
           SELECT user_id, min(event_time) - INTERVAL 1 MINUTE AS since
           FROM _features GROUP BY user_id"""
    )
    bounds = con.execute("SELECT min(since) FROM _alert_scope").fetchone()
    if bounds is None or bounds[0] is None:
        return 0, 0
    # count_1m of every scope row (the frame needs the minute before the scope), then the
    # burst: the largest count_1m in the minute from each row on.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _bursts AS
        WITH recent AS (
            SELECT c.event_id, c.user_id, c.event_time, s.since
            FROM _context c JOIN _alert_scope s ON c.user_id = s.user_id
            WHERE c.event_time >= s.since - INTERVAL 1 MINUTE),
        counted AS (
            SELECT *, count(*) OVER (PARTITION BY user_id ORDER BY event_time
                RANGE BETWEEN INTERVAL 1 MINUTE PRECEDING AND CURRENT ROW) AS count_1m
            FROM recent),
        scoped AS (SELECT * FROM counted WHERE event_time >= since)
        SELECT event_id, user_id, event_time,
            max(count_1m) OVER (PARTITION BY user_id ORDER BY event_time
                RANGE BETWEEN CURRENT ROW AND INTERVAL 1 MINUTE FOLLOWING) AS burst_count
        FROM scoped"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _stored_alerts AS
        SELECT a.* FROM {ALERTS.table} a JOIN _alert_scope s ON a.user_id = s.user_id
        WHERE a.event_time >= s.since AND a.event_time >= $since""",
        {"since": bounds[0]},
    )
    # Scope rows whose features were not rewritten and that had no alert: only a burst can
    # alert them now, and their stored z-score and previous event are then needed.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _burst_only AS
        SELECT b.event_id, b.event_time FROM _bursts b
        WHERE b.burst_count >= {VELOCITY_COUNT}
          AND NOT EXISTS (SELECT 1 FROM _features f WHERE f.event_id = b.event_id)
          AND NOT EXISTS (SELECT 1 FROM _stored_alerts a WHERE a.event_id = b.event_id)"""
    )
    extra = con.execute("SELECT min(event_time), max(event_time) FROM _burst_only").fetchone()
    stored_inputs = "SELECT * FROM _features LIMIT 0"
    if extra is not None and extra[0] is not None:
        stored_inputs = f"""SELECT f.* FROM {FEATURES.table} f SEMI JOIN _burst_only o
                                USING (event_id)
                            WHERE f.event_time BETWEEN $lo AND $hi"""
    params = {} if extra is None or extra[0] is None else {"lo": extra[0], "hi": extra[1]}
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _alerts AS
        WITH rewritten AS (
            SELECT f.event_id, f.user_id, f.event_time, f.amount, f.country, b.burst_count,
                   f.zscore_1h, f.history_mean_1h, f.prev_event_time, f.prev_country,
                   f.country_seen_1h
            FROM _features f JOIN _bursts b USING (event_id)),
        burst_only AS (
            SELECT f.event_id, f.user_id, f.event_time, f.amount, f.country, b.burst_count,
                   f.zscore_1h, f.history_mean_1h, f.prev_event_time, f.prev_country,
                   f.country_seen_1h
            FROM ({stored_inputs}) f JOIN _bursts b USING (event_id)),
        kept AS (
            -- Stored alerts of rows not rewritten: the other rules stand, the burst is new.
            SELECT a.event_id, a.user_id, a.event_time, a.amount, a.country,
                   b.burst_count >= {VELOCITY_COUNT} AS velocity, a.amount_spike,
                   a.impossible_travel, b.burst_count, a.zscore_1h, a.speed_kmh
            FROM _stored_alerts a JOIN _bursts b USING (event_id)
            WHERE NOT EXISTS (SELECT 1 FROM _features f WHERE f.event_id = a.event_id))
        SELECT * FROM ({
            _rules_sql("(SELECT * FROM rewritten UNION ALL BY NAME SELECT * FROM burst_only)")
        })
        UNION ALL
        SELECT event_id, user_id, event_time, amount, country, velocity, amount_spike,
            impossible_travel,
            concat_ws(',', CASE WHEN velocity THEN 'velocity' END,
                           CASE WHEN amount_spike THEN 'amount_spike' END,
                           CASE WHEN impossible_travel THEN 'impossible_travel' END),
            burst_count, zscore_1h, speed_kmh
        FROM kept WHERE velocity OR amount_spike OR impossible_travel""",
        params,
    )
    # Rewrite only what changed: an alert identical to the stored one stays as it is (with
    # the time it was first raised).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _alert_changes AS
        SELECT event_id FROM (
            (SELECT {_ALERT_VALUES} FROM _stored_alerts EXCEPT ALL
             SELECT {_ALERT_VALUES} FROM _alerts)
            UNION ALL
            (SELECT {_ALERT_VALUES} FROM _alerts EXCEPT ALL
             SELECT {_ALERT_VALUES} FROM _stored_alerts))"""
    )
    deleted = con.execute(
        f"""DELETE FROM {ALERTS.table} a USING _alert_changes c
            WHERE a.event_id = c.event_id AND a.event_time >= $since""",
        {"since": bounds[0]},
    ).fetchone()
    inserted = con.execute(
        f"""INSERT INTO {ALERTS.table}
            SELECT *, $alerted_at::TIMESTAMP, $batch_id FROM _alerts
            SEMI JOIN _alert_changes USING (event_id)""",
        {"alerted_at": alerted_at, "batch_id": batch_id},
    ).fetchone()
    standing = con.execute("SELECT count(*) FROM _alerts").fetchone()
    changed = (int(deleted[0]) if deleted else 0) + (int(inserted[0]) if inserted else 0)
    return (int(standing[0]) if standing else 0), changed


def truth_files(truth_dir: Path) -> list[Path]:
    return sorted(truth_dir.glob("labels-*.parquet"))


def evaluate_alerts(
    con: duckdb.DuckDBPyConnection, labels: pl.DataFrame, *, final_before: datetime | None
) -> dict[str, float | int]:
    """Precision and recall of the standing alerts over the admitted events that are final
    (event time before ``final_before``: later events may still change their alerts).

    Event level: precision = alerted fraud / alerted; recall = alerted fraud / fraud.
    Incident level: an incident is caught when any of its fraud events raised an alert.
    """
    scope = "" if final_before is None else "WHERE f.event_time < $final_before"
    params = {} if final_before is None else {"final_before": final_before}
    scored = con.execute(
        f"""SELECT f.event_id, a.event_id IS NOT NULL AS alerted
                FROM {FEATURES.table} f LEFT JOIN {ALERTS.table} a USING (event_id) {scope}""",
        params,
    ).pl()
    assert isinstance(scored, pl.DataFrame)
    joined = scored.join(
        labels.select("event_id", "is_fraud", "incident_id"), on="event_id", how="left"
    ).with_columns(pl.col("is_fraud").fill_null(False))
    tp = joined.filter(pl.col("alerted") & pl.col("is_fraud")).height
    fp = joined.filter(pl.col("alerted") & ~pl.col("is_fraud")).height
    fn = joined.filter(~pl.col("alerted") & pl.col("is_fraud")).height
    incidents = (
        joined.filter(pl.col("is_fraud")).group_by("incident_id").agg(pl.col("alerted").any())
    )
    return {
        "events_scored": joined.height,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "incidents": incidents.height,
        "incident_recall": float(incidents["alerted"].mean()) if incidents.height else 1.0,
    }
