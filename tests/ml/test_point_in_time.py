"""Feast's point-in-time join through the platform's wrapper, on hand-built feature rows and
entity rows: the latest row at or before each timestamp, nothing after it, nulls (not dropped
rows) past the TTL or for unknown keys, duplicate entity rows kept; and the leakage check fails
on a deliberately leaky feature view."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from feast import FeatureStore

from assets.ml.feature_definitions import VIEWS_BY_NAME, build_repo_objects
from assets.ml.training import leakage_check, leakage_violations
from data_products.lib.feast_store import (
    feature_exports,
    feature_store,
    point_in_time_features,
    rows_in_reach,
)

ORIGIN = VIEWS_BY_NAME["origin_delay"]
D1, D2 = date(2013, 1, 1), date(2013, 1, 2)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _origin_rows(rows: list[tuple[str, str, float, str]]) -> pl.DataFrame:
    """(origin, event time, 7-day average, known at) → export rows of the origin_delay view."""
    return pl.DataFrame(
        {
            "origin": [r[0] for r in rows],
            "event_timestamp": [_t(r[1]) for r in rows],
            "partition_date": [_t(r[1]).date() for r in rows],
            "origin_avg_dep_delay_7d": [r[2] for r in rows],
            "origin_departures_7d": [10] * len(rows),
            "origin_known_at_s": [int(_t(r[3]).timestamp()) for r in rows],
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    )


def _store(data_home: Path, rows: pl.DataFrame) -> FeatureStore:
    feature_exports().replace_days(ORIGIN.dataset, rows, day_column="partition_date", days=[D1, D2])
    store = feature_store()
    wanted = {"origin", "origin_delay", "origin_delay_export"}
    store.apply([o for o in build_repo_objects(data_home) if o.name in wanted])
    return store


def _entities(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "flight_id": [r[0] for r in rows],
            "origin": [r[1] for r in rows],
            "predict_at": [_t(r[2]) for r in rows],
        },
        schema_overrides={"predict_at": pl.Datetime("us", "UTC")},
    )


def _join(
    store: FeatureStore, entities: pl.DataFrame, feature_rows: pl.DataFrame | None = None
) -> pl.DataFrame:
    return point_in_time_features(
        store,
        entities,
        view="origin_delay",
        join_key="origin",
        features={
            n: ORIGIN.polars_types[n] for n in ("origin_avg_dep_delay_7d", "origin_known_at_s")
        },
        timestamp_column="predict_at",
        feature_rows=feature_rows,
    )


def test_values_are_as_of_each_row_and_rows_are_never_dropped(data_home: Path) -> None:
    store = _store(
        data_home,
        _origin_rows(
            [
                ("JFK", "2013-01-01T05:00:00", 11.0, "2013-01-01T04:00:00"),
                ("JFK", "2013-01-02T05:00:00", 22.0, "2013-01-02T04:00:00"),
                ("EWR", "2013-01-01T05:00:00", 33.0, "2013-01-01T03:00:00"),
            ]
        ),
    )
    entities = _entities(
        [
            ("before-any-row", "JFK", "2013-01-01T04:59:59"),
            ("at-the-row", "JFK", "2013-01-01T05:00:00"),
            ("between", "JFK", "2013-01-02T04:59:59"),
            ("same-key-and-time-1", "JFK", "2013-01-02T12:00:00"),
            ("same-key-and-time-2", "JFK", "2013-01-02T12:00:00"),
            # EWR's only row is 3 days old: beyond the 2-day TTL. Feast's file store alone
            # would drop this entity row; the wrapper keeps it with nulls.
            ("past-ttl", "EWR", "2013-01-04T06:00:00"),
            ("unknown-key", "LGA", "2013-01-02T12:00:00"),
        ]
    )
    joined = _join(store, entities)
    assert joined["flight_id"].to_list() == entities["flight_id"].to_list()
    assert joined["origin_avg_dep_delay_7d"].to_list() == [None, 11.0, 11.0, 22.0, 22.0, None, None]


def test_rows_in_reach_of_the_entities_give_the_same_answer(data_home: Path) -> None:
    store = _store(
        data_home,
        _origin_rows(
            [
                ("JFK", "2013-01-01T05:00:00", 11.0, "2013-01-01T04:00:00"),
                ("JFK", "2013-01-02T05:00:00", 22.0, "2013-01-02T04:00:00"),
                ("EWR", "2013-01-02T05:30:00", 33.0, "2013-01-02T03:00:00"),
            ]
        ),
    )
    entities = _entities(
        [
            ("a", "JFK", "2013-01-02T04:59:59"),
            ("b", "JFK", "2013-01-02T12:00:00"),
            ("c", "EWR", "2013-01-02T05:29:59"),
            ("d", "EWR", "2013-01-03T06:00:00"),
        ]
    )
    reach = rows_in_reach(entities["predict_at"], ORIGIN.ttl)
    assert reach == (_t("2013-01-02T04:59:59") - timedelta(days=2), _t("2013-01-03T06:00:00"))
    in_reach = feature_exports().read_window(ORIGIN.dataset, *reach)
    assert in_reach.height == 3
    whole = _join(store, entities)
    assert whole["origin_avg_dep_delay_7d"].to_list() == [11.0, 22.0, None, 33.0]
    assert _join(store, entities, in_reach).equals(whole)
    # The rows given are the rows Feast reads: without JFK's Jan 2 row, "b" falls back to Jan 1.
    fewer = in_reach.filter(pl.col("origin_avg_dep_delay_7d") != 22.0)
    bounded = _join(store, entities, fewer)
    assert bounded["origin_avg_dep_delay_7d"].to_list() == [11.0, 11.0, None, 33.0]


def test_a_window_reads_the_day_files_around_it_and_filters_exactly(data_home: Path) -> None:
    _store(
        data_home,
        _origin_rows(
            [
                ("JFK", "2013-01-01T05:00:00", 1.0, "2013-01-01T04:00:00"),
                ("JFK", "2013-01-02T02:00:00", 2.0, "2013-01-02T01:00:00"),
                ("JFK", "2013-01-02T05:00:00", 3.0, "2013-01-02T04:00:00"),
            ]
        ),
    )
    window = feature_exports().read_window(
        ORIGIN.dataset, _t("2013-01-02T01:00:00"), _t("2013-01-02T05:00:00")
    )
    assert window["origin_avg_dep_delay_7d"].to_list() == [2.0, 3.0]
    with pytest.raises(ValueError, match="time-zone aware"):
        feature_exports().read_window(ORIGIN.dataset, datetime(2013, 1, 2), datetime(2013, 1, 3))
    with pytest.raises(FileNotFoundError, match="no export files"):
        feature_exports().read_window(
            ORIGIN.dataset, _t("2013-03-01T00:00:00"), _t("2013-03-02T00:00:00")
        )


def test_a_leaky_feature_view_fails_the_leakage_check(data_home: Path) -> None:
    # Leaky on purpose: each day's average is stamped at the day's start but computed from the
    # whole day, so its information time lies after the flights it is joined to.
    store = _store(
        data_home,
        _origin_rows(
            [
                ("JFK", "2013-01-01T05:00:00", 11.0, "2013-01-02T04:30:00"),
                ("JFK", "2013-01-02T05:00:00", 22.0, "2013-01-03T04:30:00"),
            ]
        ),
    )
    entities = _entities(
        [("UA1", "JFK", "2013-01-01T14:59:59"), ("UA2", "JFK", "2013-01-02T20:59:59")]
    ).with_columns(pl.lit(None, dtype=pl.Int64).alias("flight_known_at_s"))
    training = _join(store, entities)
    violations = leakage_violations(training)
    assert violations["flight_id"].to_list() == ["UA1", "UA2"]
    assert set(violations["feature"]) == {"origin_known_at_s"}
    result = leakage_check(training)
    assert not result.passed
    assert result.metadata["violations"].value == 2


def test_an_honest_feature_view_passes_the_leakage_check(data_home: Path) -> None:
    store = _store(
        data_home,
        _origin_rows([("JFK", "2013-01-01T05:00:00", 11.0, "2013-01-01T04:30:00")]),
    )
    training = _join(store, _entities([("UA1", "JFK", "2013-01-01T14:59:59")]))
    assert leakage_check(training).passed


def test_export_rows_outside_the_days_are_refused(data_home: Path) -> None:
    rows = _origin_rows([("JFK", "2013-01-03T05:00:00", 1.0, "2013-01-03T04:00:00")])
    with pytest.raises(ValueError, match="outside the days being replaced"):
        feature_exports().replace_days(ORIGIN.dataset, rows, day_column="partition_date", days=[D1])
    assert not feature_exports().day_file(ORIGIN.dataset, D1).exists()
