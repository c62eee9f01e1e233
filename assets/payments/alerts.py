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


_RULE_INPUTS = (  # what ``_rules_sql`` reads from its source
    "event_id, user_id, event_time, amount, country, burst_count, zscore_1h, history_mean_1h, "
    "prev_event_time, prev_country, country_seen_1h"
)


def _rules_sql(source: str) -> str:
    """The alert rows (every column but ``_alerted_at``/``_batch_id``) of the rows of ``source``
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
) -> None:
    """Re-evaluate the rules where temp table ``_features`` changed features, into temp table
    ``_alerts``, for the scope ``_alert_scope`` (every touched card from one minute before its
    earliest rewritten row: the forward look of ``velocity``). Call it in the batch's
    transaction after ``store_features``: the scope's rows, the batch's included, are then
    read from the table. (Reading the batch's rows from ``_features`` and only the older ones
    from the table was no cheaper; with ``_features`` computed before the transaction, it cost
    1.3 s per 800k-record batch against 0.8 s from the table alone.)
    ``store_alerts`` replaces the scope's alerts.

    Why the whole scope is replaced rather than only the alerts that changed: a diff against
    the stored alerts was built and measured (EXCEPT ALL over the scope, counts per window
    from the batch's context). It cost more CPU than the rewrite it saved, at 10 M cards
    (few alerts in a scope: 1.0-1.2 s vs 0.6-0.9 s per 400k-record batch) and at 1 M cards
    (where a third of the stream alerts and every new event changes the stored
    ``burst_count`` of its card's alerts, so nearly every row in scope changes anyway)."""
    _centroids(con)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _alert_scope AS
           SELECT user_id, min(event_time) - INTERVAL 1 MINUTE AS since
           FROM _features GROUP BY user_id"""
    )
    bounds = con.execute("SELECT min(since) FROM _alert_scope").fetchone()
    since = bounds[0] if bounds else None
    # Only the columns the rules read: the features table is wide (30 columns), and reading
    # every one of them for the scope's rows was most of this step.
    columns = ", ".join(
        f"f.{c}"
        for c in (
            "event_id", "user_id", "event_time", "amount", "country", "count_1m", "zscore_1h",
            "history_mean_1h", "prev_event_time", "prev_country", "country_seen_1h",
        )
    )  # fmt: skip
    scored = f"""(
        SELECT *, max(count_1m) OVER (PARTITION BY user_id ORDER BY event_time
                RANGE BETWEEN CURRENT ROW AND INTERVAL 1 MINUTE FOLLOWING) AS burst_count
        FROM (SELECT {columns}
              FROM {FEATURES.table} f JOIN _alert_scope s ON f.user_id = s.user_id
              WHERE f.event_time >= s.since AND f.event_time >= $since))"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _alerts AS
        SELECT *, $alerted_at::TIMESTAMP AS _alerted_at, $batch_id AS _batch_id
        FROM ({_rules_sql(scored)})""",
        {"since": since, "alerted_at": alerted_at, "batch_id": batch_id},
    )


def store_alerts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Replace the alerts of ``_alert_scope`` with ``_alerts`` (from ``recompute_alerts``): the
    alert writes of the batch's transaction. Returns (alerts standing in the scope, alert
    rows deleted plus inserted)."""
    bounds = con.execute("SELECT min(since) FROM _alert_scope").fetchone()
    if bounds is None or bounds[0] is None:
        return 0, 0
    deleted = con.execute(
        f"""DELETE FROM {ALERTS.table} a USING _alert_scope s
            WHERE a.user_id = s.user_id AND a.event_time >= s.since AND a.event_time >= $since""",
        {"since": bounds[0]},
    ).fetchone()
    inserted = con.execute(
        f"INSERT INTO {ALERTS.table} SELECT * FROM _alerts ORDER BY event_time"
    ).fetchone()
    standing = int(inserted[0]) if inserted else 0
    return standing, (int(deleted[0]) if deleted else 0) + standing


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
        "incident_recall": (
            incidents.filter(pl.col("alerted")).height / incidents.height
            if incidents.height
            else 1.0
        ),
    }
