"""Sliding-window features per card, recomputed exactly where a batch changed them.

Definitions (the brute-force test in ``tests/payments`` implements the same sentences):
- for every admitted event e of card u and each window w in 1m, 5m, 1h: count, sum, mean and max
  of the amounts of u's admitted events with event time in [t(e) - w, t(e)] (e itself included);
- history: u's events in [t(e) - 1h, t(e)] other than e; ``zscore_1h`` = (amount - mean) /
  population std of the history when it has >= 3 events and a non-zero spread, else null;
- ``prev_event_time``/``prev_country``: u's latest event before e (order: time, event id) when
  it is at most an hour older; ``country_seen_1h``: history events in e's country.

Every frame looks back at most one hour, so an event admitted at time t changes exactly the rows
of its card with event time in [t, t + 1h]: those ("touched") rows are recomputed and replaced,
nothing else. A late event inside the allowed lateness thus updates every window it falls in.

Two exact evaluation strategies give the same numbers (tested against each other and against the
brute force): window functions over the touched cards' recent events (cheap when cards have many
events within an hour of each other: a backfill, the window job), or a range join of the touched
rows with their frames (cheap when each card has few: a stream batch over millions of cards). The
choice follows the number of (row, frame event) pairs the join would aggregate, counted per card
before either runs. History statistics are computed from integer cents (exact sums of amounts
and of their squares), so both strategies produce bit-identical results.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from assets.payments.reference import ALLOWED_LATENESS_S, HISTORY_MIN_EVENTS, WINDOWS
from assets.payments.tables import CARD_EVENTS, CARD_KEY, FEATURES

JOIN_PAIRS_PER_CONTEXT_ROW = 2.5
"""Use the range join when it pairs at most this many (row, frame event) per context row, else
window functions. Measured on a 400,000-record stream batch at 10 M cards (733k context rows,
838k pairs): window functions cost 3.4 CPU µs per context row (fourteen windowed aggregates over
three sort orders), the join 1.35 µs per pair, so the join wins below about 2.5 pairs per row;
it was 1.1 against 2.4 CPU s for that batch. The former rule (window functions once the batch's
events were half the context) picked the dearer path for every stream batch."""

_CENTS = "(amount * 100)::BIGINT"


def _finish(source: str) -> str:
    """The feature columns from the raw aggregates of ``source``: per window ``n_w``, ``sum_w``,
    ``max_w``; ``cents_1h``/``squares_1h`` (sums of cents and squared cents over the 1h frame,
    the row included); ``lag_time``/``lag_country``; ``same_country_1h`` (row included)."""
    per_window = ",\n".join(
        f"n_{w} AS count_{w}, sum_{w}, sum_{w}::DOUBLE / n_{w} AS mean_{w}, max_{w}"
        for w, _ in WINDOWS
    )
    # History = the 1h frame without the row itself, from exact integer sums.
    return f"""
    WITH history AS (
        SELECT *, n_1h - 1 AS h_n,
               cents_1h - {_CENTS} AS h_cents,
               squares_1h - {_CENTS} * {_CENTS} AS h_squares
        FROM {source}),
    spread AS (
        SELECT *, h_n * h_squares - h_cents * h_cents AS h_var_num FROM history)
    SELECT event_id, user_id, event_time, date_trunc('hour', event_time) AS event_hour,
        amount, country, {per_window},
        h_n AS history_count_1h,
        CASE WHEN h_n > 0 THEN h_cents::DOUBLE / h_n / 100 END AS history_mean_1h,
        CASE WHEN h_n > 0 THEN sqrt(h_var_num::DOUBLE) / h_n / 100 END AS history_std_1h,
        CASE WHEN h_n >= {HISTORY_MIN_EVENTS} AND h_var_num > 0
             THEN ({_CENTS} - h_cents::DOUBLE / h_n) / (sqrt(h_var_num::DOUBLE) / h_n)
        END AS zscore_1h,
        CASE WHEN lag_time >= event_time - INTERVAL 1 HOUR THEN lag_time END AS prev_event_time,
        CASE WHEN lag_time >= event_time - INTERVAL 1 HOUR THEN lag_country END AS prev_country,
        same_country_1h - 1 AS country_seen_1h
    FROM spread"""


def window_aggregates(source: str, *, touched: bool = False) -> str:
    """Raw aggregates of every row of ``source`` by window functions (frames over ``source``).

    ``touched``: ``source`` has ``is_new`` (an event of this batch) and the result adds
    ``last_new``, the latest new event in the row's 1h frame (null: the row is untouched)."""
    aggregates = ",\n".join(
        f"count(*) OVER w_{w} AS n_{w}, sum(amount) OVER w_{w} AS sum_{w}, "
        f"max(amount) OVER w_{w} AS max_{w}"
        for w, _ in WINDOWS
    )
    frames = ",\n".join(
        f"w_{w} AS (PARTITION BY user_id ORDER BY event_time "
        f"RANGE BETWEEN INTERVAL {seconds} SECOND PRECEDING AND CURRENT ROW)"
        for w, seconds in WINDOWS
    )
    return f"""
        SELECT *, {aggregates},
            sum({_CENTS}) OVER w_1h AS cents_1h,
            sum({_CENTS} * {_CENTS}) OVER w_1h AS squares_1h,
            lag(event_time) OVER seq AS lag_time,
            lag(country) OVER seq AS lag_country,
            count(*) OVER (PARTITION BY user_id, country ORDER BY event_time
                RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW) AS same_country_1h
            {", max(CASE WHEN is_new THEN event_time END) OVER w_1h AS last_new" if touched else ""}
        FROM {source}
        WINDOW {frames},
            seq AS (PARTITION BY user_id ORDER BY event_time, event_id)"""


def join_aggregates(context: str) -> str:
    """Raw aggregates of the touched rows of ``context`` (columns of ``_context``), each joined
    with its frame in ``context``. A candidate is a row at or after its card's earliest new
    event (``_touched_users.since``); it is touched when its frame holds a new event, which
    the same join tells (``HAVING``): no separate pass to find the touched rows."""
    aggregates = ",\n".join(
        f"count(*) FILTER (WHERE c.event_time >= t.event_time - INTERVAL {s} SECOND) AS n_{w}, "
        f"sum(c.amount) FILTER (WHERE c.event_time >= t.event_time - INTERVAL {s} SECOND) "
        f"AS sum_{w}, "
        f"max(c.amount) FILTER (WHERE c.event_time >= t.event_time - INTERVAL {s} SECOND) "
        f"AS max_{w}"
        for w, s in WINDOWS
    )
    before = (
        "c.event_time < t.event_time OR (c.event_time = t.event_time AND c.event_id < t.event_id)"
    )
    return f"""
        SELECT t.event_id, t.user_id, t.event_time, t.amount, t.country, t.is_new, {aggregates},
            sum((c.amount * 100)::BIGINT) AS cents_1h,
            sum((c.amount * 100)::BIGINT * (c.amount * 100)::BIGINT) AS squares_1h,
            max(c.event_time) FILTER (WHERE {before}) AS lag_time,
            arg_max(c.country, {{'t': c.event_time, 'id': c.event_id}})
                FILTER (WHERE {before}) AS lag_country,
            count(*) FILTER (WHERE c.country = t.country) AS same_country_1h
        FROM (SELECT x.* FROM {context} x JOIN _touched_users u USING (card)
              WHERE x.event_time >= u.since) t
        JOIN {context} c
          ON c.card = t.card
         AND c.event_time BETWEEN t.event_time - INTERVAL 1 HOUR AND t.event_time
        GROUP BY t.event_id, t.user_id, t.event_time, t.amount, t.country, t.is_new
        HAVING bool_or(c.is_new)"""


def remember_events(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Add the admitted events of ``source`` (event_id, user_id, event_time, amount, country)
    to the window state. ``recompute_features`` does it for the batch's events (after reading
    the state); this is for seeding the state with events whose features are not recomputed."""
    con.execute(
        f"""INSERT INTO {CARD_EVENTS}
        SELECT {CARD_KEY}, event_time, amount, country, event_id FROM {source}"""
    )


def prune_card_events(con: duckdb.DuckDBPyConnection, slowest_stream_time: datetime) -> None:
    """Drop state no future frame can reach. A card's events all sit in one log partition
    (key = card), a future admitted event there is at most the allowed lateness behind that
    partition's stream time (which only grows), and its frames reach one hour back: so events
    older than the slowest stream time minus lateness minus an hour are never read again."""
    con.execute(
        f"""DELETE FROM {CARD_EVENTS}
            WHERE event_time < $slowest - INTERVAL {ALLOWED_LATENESS_S} SECOND
                               - INTERVAL 1 HOUR""",
        {"slowest": slowest_stream_time},
    )


def recompute_features(
    con: duckdb.DuckDBPyConnection, *, batch_id: str, computed_at: datetime
) -> int:
    """Compute the features of the new events in temp table ``_admitted`` (event_id, user_id,
    event_time, amount, country: admitted, not yet in the window state) and of the older rows
    they touch, into temp table ``_features``, and the older rows' ids into ``_rewritten``.
    Writes nothing: ``delete_rewritten_features`` and ``store_features`` replace the stored
    rows and add to the window state.
    Call it before the batch's transaction begins (see ``batch.process_batch`` on why).

    Why the new events join the context from the batch's own table rather than from the state:
    read back from the state, the rows this transaction had just written were decompressed
    again, and telling them apart from older rows took a join with ``_admitted`` per path.

    Returns the number of feature rows to write (new events plus recomputed older ones).
    """
    bounds = con.execute("SELECT min(event_time) FROM _admitted").fetchone()
    if bounds is None or bounds[0] is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _features AS FROM {FEATURES.table} LIMIT 0")
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _rewritten AS
               SELECT event_id, event_time FROM {FEATURES.table} LIMIT 0"""
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE _new_events AS FROM {CARD_EVENTS} LIMIT 0")
        return 0
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _new_events AS
           SELECT event_id, user_id, event_time, amount, country, {CARD_KEY} AS card
           FROM _admitted"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _touched_users AS
           SELECT card, any_value(user_id) AS user_id, min(event_time) AS since,
                  count(*) AS admitted
           FROM _new_events GROUP BY card"""
    )
    # The touched cards' stored events that any touched row's frame can reach, from the narrow
    # state joined on the integer card key (the card's text id comes from the small touched
    # side), and the batch's new events.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _context AS
        SELECT s.event_id, t.user_id, s.event_time, s.amount, s.country, s.card,
               false AS is_new
        FROM {CARD_EVENTS} s JOIN _touched_users t ON s.card = t.card
        WHERE s.event_time >= t.since - INTERVAL 1 HOUR
          AND s.event_time >= $global_since - INTERVAL 1 HOUR
        UNION ALL
        SELECT event_id, user_id, event_time, amount, country, card, true FROM _new_events""",
        {"global_since": bounds[0]},
    )
    # Touched rows (a new event of the card at most an hour before or at the row) and their
    # aggregates, in one of two exact ways chosen by the pairs a join would form: per card,
    # new events x context rows (an upper bound; counted on the integer card key). Many events
    # per card within the hour (a backfill, the window benchmark): window functions over the
    # context, touched = a new event in the 1h frame. Few (a stream batch over millions of
    # cards): each candidate row joined with its frame. (An as-of join would find the touched
    # rows too, but DuckDB 1.5 stalls on it inside a transaction.)
    counts = con.execute(
        """SELECT coalesce(sum(t.admitted * c.n), 0), coalesce(sum(c.n), 0)
           FROM (SELECT card, count(*) AS n FROM _context GROUP BY card) c
           JOIN _touched_users t USING (card)"""
    ).fetchone()
    assert counts is not None
    if counts[0] <= JOIN_PAIRS_PER_CONTEXT_ROW * counts[1]:
        raw = join_aggregates("_context")
    else:
        raw = f"""SELECT * FROM ({window_aggregates("_context", touched=True)})
                  WHERE last_new IS NOT NULL"""
    # Materialised before finishing: planned as one statement, DuckDB 1.5 evaluated the
    # window subquery far more than once (minutes instead of seconds on a million rows).
    con.execute(f"CREATE OR REPLACE TEMP TABLE _raw AS {raw}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _features AS
        SELECT *, $computed_at::TIMESTAMP AS _computed_at, $batch_id AS _batch_id
        FROM ({_finish("_raw")})""",
        {"computed_at": computed_at, "batch_id": batch_id},
    )
    # Only recomputed older rows have a stored version to replace (the batch's own events are
    # new): ``store_features`` deletes by those alone.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _rewritten AS
           SELECT event_id, event_time FROM _raw WHERE NOT is_new"""
    )
    written = con.execute("SELECT count(*) FROM _features").fetchone()
    return int(written[0]) if written else 0


def delete_rewritten_features(con: duckdb.DuckDBPyConnection) -> None:
    """Delete the stored versions of the older rows ``recompute_features`` recomputed
    (``_rewritten``); in the batch's transaction, before ``store_features``."""
    since = con.execute("SELECT min(event_time) FROM _rewritten").fetchone()
    if since is not None and since[0] is not None:
        # Deleting by the recomputed older rows alone keeps the probe of the stored features
        # (cold, text ids) to the span the late events reach back to; the event_time bound
        # lets DuckDB skip older row groups by their min/max (zone maps).
        con.execute(
            f"""DELETE FROM {FEATURES.table} f USING _rewritten n
                WHERE f.event_id = n.event_id AND f.event_time >= $since""",
            {"since": since[0]},
        )


def store_features(con: duckdb.DuckDBPyConnection) -> None:
    """Insert ``_features`` (after ``delete_rewritten_features``) and add the batch's new events
    to the window state: the feature writes of the batch's transaction."""
    # ORDER BY event_time: row groups by event time let the event_time bounds of later reads
    # (the rewrite's delete, the alert scope, the state's context and prune) skip the rest.
    con.execute(f"INSERT INTO {FEATURES.table} SELECT * FROM _features ORDER BY event_time")
    con.execute(
        f"""INSERT INTO {CARD_EVENTS}
        SELECT card, event_time, amount, country, event_id FROM _new_events
        ORDER BY event_time"""
    )


def full_features_sql(source: str) -> str:
    """The same features over every event of ``source`` at once (window functions, no
    increments): what the incremental path must equal."""
    return _finish(f"({window_aggregates(source)})")
