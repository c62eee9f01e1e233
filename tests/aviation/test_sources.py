"""Landing the package's CSVs as daily drops: exact rows, idempotent, only what is missing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from assets.aviation import drops


def test_a_day_lands_exactly_the_packages_rows_of_that_day(tmp_path: Path) -> None:
    summary = drops.land(tmp_path, "2013-02-01", "2013-02-02")
    assert len(summary.written) == 3 + 2 * 2  # three snapshots, two tables x two days
    drop = pl.read_csv(tmp_path / "aviation/2013-02-01/flights.csv", infer_schema=False)
    package = pl.read_csv(drops.read_source("flights"), infer_schema=False).filter(
        (pl.col("month") == "2") & (pl.col("day") == "1")
    )
    assert drop.columns == package.columns
    assert drop.sort(drop.columns).equals(package.sort(package.columns))
    assert (drop.get_column("dep_time") == "NA").any()  # missing values stay as delivered


def test_landing_is_idempotent_and_lands_only_what_is_missing(tmp_path: Path) -> None:
    drops.land(tmp_path, "2013-02-01", "2013-02-01")
    before = (tmp_path / "aviation/2013-02-01/flights.csv").stat().st_mtime_ns
    again = drops.land(tmp_path, "2013-02-01", "2013-02-02")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in again.written) == [
        "aviation/2013-02-02/flights.csv",
        "aviation/2013-02-02/weather.csv",
    ]
    assert (tmp_path / "aviation/2013-02-01/flights.csv").stat().st_mtime_ns == before
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_day_without_weather_is_delivered_as_an_empty_drop(tmp_path: Path) -> None:
    drops.land(tmp_path, "2013-12-31", "2013-12-31")
    weather = pl.read_csv(tmp_path / "aviation/2013-12-31/weather.csv", infer_schema=False)
    assert weather.height == 0 and "time_hour" in weather.columns


@pytest.mark.parametrize(
    ("start", "end"), [("2012-12-31", "2013-01-01"), ("2013-02-02", "2013-02-01")]
)
def test_days_outside_2013_are_refused(tmp_path: Path, start: str, end: str) -> None:
    with pytest.raises(ValueError, match="2013"):
        drops.land(tmp_path, start, end)
