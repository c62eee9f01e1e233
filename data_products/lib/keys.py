"""The one asset-key grammar, ``[domain, layer, name]``, and strict identifier validation.

Every identifier that ends up in SQL or in a path (domain, layer, table, column, partition key)
goes through a validator here first; nothing downstream quotes or escapes user input itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import dagster as dg

LAYERS: tuple[str, ...] = ("source", "bronze", "silver", "gold", "serving")
"""``source`` names systems the platform reads but does not write (a PostgreSQL table behind a
replication slot): external assets only, so lineage starts at the real origin. A test enforces
that nothing materialises a ``source`` key."""

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Columns may also start with "_": the platform's own metadata columns (_source_file, ...) do, so
# they can never collide with a delivered column.
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DAILY_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOURLY_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}:\d{2}$")


class InvalidIdentifierError(ValueError):
    """An identifier or partition key that would be unsafe in SQL or a path."""


def validate_identifier(name: str, *, what: str = "identifier") -> str:
    """Lower-case snake case, starting with a letter, at most 63 characters."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifierError(
            f"invalid {what} {name!r}: expected lower-case letters, digits and '_', "
            "starting with a letter, at most 63 characters"
        )
    return name


def validate_column(name: str, *, what: str = "column name") -> str:
    """Like ``validate_identifier``, but a leading underscore is allowed (metadata columns)."""
    if not isinstance(name, str) or not _COLUMN.fullmatch(name):
        raise InvalidIdentifierError(
            f"invalid {what} {name!r}: expected lower-case letters, digits and '_', "
            "at most 63 characters"
        )
    return name


def validate_partition_key(key: str) -> str:
    """A daily (``YYYY-MM-DD``) or hourly (``YYYY-MM-DD-HH:MM``) key that is a real date."""
    if not isinstance(key, str):
        raise InvalidIdentifierError(f"invalid partition key {key!r}: not a string")
    try:
        if _DAILY_KEY.fullmatch(key):
            date.fromisoformat(key)
            return key
        if _HOURLY_KEY.fullmatch(key):
            datetime.strptime(key, "%Y-%m-%d-%H:%M")
            return key
    except ValueError as exc:
        raise InvalidIdentifierError(f"invalid partition key {key!r}: {exc}") from exc
    raise InvalidIdentifierError(
        f"invalid partition key {key!r}: expected YYYY-MM-DD or YYYY-MM-DD-HH:MM"
    )


@dataclass(frozen=True)
class DatasetName:
    """A parsed ``[domain, layer, name]`` key and the physical names derived from it."""

    domain: str
    layer: str
    name: str

    def __post_init__(self) -> None:
        validate_identifier(self.domain, what="domain")
        validate_identifier(self.name, what="dataset name")
        if self.layer not in LAYERS:
            raise InvalidIdentifierError(f"invalid layer {self.layer!r}: expected one of {LAYERS}")

    @classmethod
    def from_key(cls, key: dg.AssetKey | str) -> DatasetName:
        path = dg.AssetKey.from_user_string(key).path if isinstance(key, str) else key.path
        if len(path) != 3:
            raise InvalidIdentifierError(
                f"asset key {'/'.join(path)!r} does not follow [domain, layer, name]"
            )
        return cls(*path)

    @property
    def asset_key(self) -> dg.AssetKey:
        return dg.AssetKey([self.domain, self.layer, self.name])

    @property
    def schema(self) -> str:
        """DuckDB schema (and Iceberg namespace) holding this dataset: ``<domain>_<layer>``."""
        return f"{self.domain}_{self.layer}"

    @property
    def table(self) -> str:
        """Fully qualified DuckDB table name, safe to interpolate (both parts validated)."""
        return f"{self.schema}.{self.name}"

    def __str__(self) -> str:
        return f"{self.domain}/{self.layer}/{self.name}"


def asset_key(domain: str, layer: str, name: str) -> dg.AssetKey:
    """Build a key through the grammar (validates all three parts)."""
    return DatasetName(domain, layer, name).asset_key
