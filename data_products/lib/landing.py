"""Reading landing drops exactly as delivered, with the ingest metadata bronze adds.

Bronze keeps every delivered value as text (decoded UTF-8-lossy, so an undecodable byte becomes
U+FFFD instead of failing the whole file) and records where each row came from, so any silver
rejection can name the file and the physical line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from data_products.lib.keys import validate_identifier, validate_partition_key

INGEST_COLUMNS = ("partition_date", "_source_file", "_source_line", "_ingested_at", "_row_hash")


class LandingError(ValueError):
    """A drop that cannot be read as delivered (missing, or not line-oriented CSV)."""


@dataclass
class LandingRead:
    """All rows of one dataset for a set of partitions, and what was read."""

    frame: pl.DataFrame
    files: dict[str, int] = field(default_factory=dict)  # relative path -> data rows
    missing_partitions: list[str] = field(default_factory=list)


def drop_files(landing: Path, domain: str, dataset: str, partition_key: str) -> list[Path]:
    """`<dataset>.csv` and re-sent copies `<dataset>_<suffix>.csv` of one day, in name order."""
    validate_identifier(domain, what="domain")
    validate_identifier(dataset, what="dataset")
    validate_partition_key(partition_key)
    pattern = re.compile(rf"^{dataset}(_[a-z0-9_]+)?\.csv$")
    day = landing / domain / partition_key
    if not day.is_dir():
        return []
    return sorted(p for p in day.iterdir() if pattern.fullmatch(p.name))


def read_csv_as_delivered(path: Path, landing: Path, partition_key: str) -> pl.DataFrame:
    """One file as all-text columns plus ingest metadata.

    Physical line numbers are row index + 2 (the header is line 1). That holds only when no field
    spans lines, which we verify by counting newlines, so a line number we report is never wrong.
    """
    raw = path.read_bytes()
    frame = pl.read_csv(raw, infer_schema=False, encoding="utf8-lossy")
    physical_lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
    if physical_lines != frame.height + 1:
        raise LandingError(
            f"{path}: {frame.height} rows but {physical_lines} lines; a quoted field spans lines, "
            "so line numbers would be wrong. Fix the drop or teach bronze to track offsets."
        )
    relative = path.relative_to(landing).as_posix()
    delivered = frame.columns
    return frame.with_columns(
        pl.lit(date.fromisoformat(partition_key)).alias("partition_date"),
        pl.lit(relative).alias("_source_file"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("_source_line"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("_ingested_at"),
        # A content hash of the delivered values (not of metadata): stable across re-deliveries,
        # so downstream can recognise a re-sent row. The separator cannot occur in CSV text.
        pl.concat_str([pl.col(c).fill_null("\x00") for c in delivered], separator="\x1f")
        .hash(seed=0)
        .cast(pl.String)
        .alias("_row_hash"),
    )


def read_landing(
    landing: Path, domain: str, dataset: str, partition_keys: Sequence[str]
) -> LandingRead:
    """Every file of ``dataset`` for the given days, schema-drift tolerant (columns unioned)."""
    frames: list[pl.DataFrame] = []
    result = LandingRead(frame=pl.DataFrame())
    for key in partition_keys:
        files = drop_files(landing, domain, dataset, key)
        if not files:
            result.missing_partitions.append(key)
        for path in files:
            frame = read_csv_as_delivered(path, landing, key)
            result.files[path.relative_to(landing).as_posix()] = frame.height
            frames.append(frame)
    if frames:
        result.frame = pl.concat(frames, how="diagonal_relaxed")
        delivered = [c for c in result.frame.columns if c not in INGEST_COLUMNS]
        result.frame = result.frame.select(*delivered, *INGEST_COLUMNS)
    return result
