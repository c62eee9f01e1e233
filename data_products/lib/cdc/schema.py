"""Source schemas as the sinks see them: PostgreSQL types → lake types, and column evolution.

A table's :class:`TableState` maps every source column name ever seen to a lake column. Adding a
column adds a lake column; renaming a column maps the new source name onto the *existing* lake
column, so its history stays in one column instead of being split (or lost) under two names.
The map only ever grows, which is what makes replaying an older batch safe after a newer one
evolved the schema: the old names still map where they always did.

How a rename is told apart from an add: logical decoding carries no DDL, but pgoutput's
``Relation`` message lists the columns in attribute order. A new name at a position whose old
name vanished, with the same type, is a rename; new names after the old last column are adds.
Anything else (a type change, a new name in the middle with no vanished name) is refused with an
error naming the table and LSN rather than guessed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from data_products.lib.cdc.lsn import format_lsn
from data_products.lib.cdc.pgoutput import Relation
from data_products.lib.keys import validate_column, validate_identifier

KEY_COLUMN = "_cdc_key"
"""The row key as one string (key parts joined by U+001F): one column to filter and merge on."""
KEY_SEPARATOR = "\x1f"


class UnsupportedTypeError(TypeError):
    """A PostgreSQL type no lake column can hold exactly."""


class SchemaChangeError(ValueError):
    """A schema change the sinks cannot follow automatically."""


@dataclass(frozen=True)
class PgType:
    name: str
    dtype: pl.DataType


# OID → lake type. Unconstrained numeric is refused by default: Decimal needs a fixed scale.
_FIXED: dict[int, PgType] = {
    16: PgType("boolean", pl.Boolean()),
    21: PgType("smallint", pl.Int32()),
    23: PgType("integer", pl.Int32()),
    20: PgType("bigint", pl.Int64()),
    700: PgType("real", pl.Float32()),
    701: PgType("double precision", pl.Float64()),
    25: PgType("text", pl.String()),
    1043: PgType("varchar", pl.String()),
    1042: PgType("char", pl.String()),
    2950: PgType("uuid", pl.String()),
    114: PgType("json", pl.String()),
    3802: PgType("jsonb", pl.String()),
    1082: PgType("date", pl.Date()),
    1114: PgType("timestamp", pl.Datetime("us")),
    1184: PgType("timestamptz", pl.Datetime("us", "UTC")),
}
NUMERIC_OID = 1700


def lake_dtype(type_oid: int, typmod: int, *, where: str) -> pl.DataType:
    """The lake type for a PostgreSQL column; raises naming ``where`` (table.column)."""
    if type_oid == NUMERIC_OID:
        if typmod < 4:
            raise UnsupportedTypeError(
                f"{where}: unconstrained numeric has no fixed scale for a lake decimal; "
                "declare it numeric(p,s)"
            )
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision > 38:
            raise UnsupportedTypeError(f"{where}: numeric({precision},{scale}) exceeds 38 digits")
        return pl.Decimal(precision, scale)
    known = _FIXED.get(type_oid)
    if known is None:
        raise UnsupportedTypeError(
            f"{where}: PostgreSQL type OID {type_oid} has no lake mapping (supported: "
            f"{', '.join(sorted({t.name for t in _FIXED.values()}))}, numeric(p,s))"
        )
    return known.dtype


def cast_text(values: pl.Series, dtype: pl.DataType) -> pl.Series:
    """PostgreSQL text output → ``dtype``; values that do not fit become null (callers compare
    null masks to report them). The session runs with ``TimeZone=UTC`` and ISO dates."""
    if dtype == pl.String():
        return values
    if dtype == pl.Boolean():
        return values.replace_strict({"t": True, "f": False}, default=None, return_dtype=pl.Boolean)
    if dtype == pl.Date():
        return values.str.to_date("%Y-%m-%d", strict=False)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone:
            return values.str.to_datetime(
                "%Y-%m-%d %H:%M:%S%.f%#z", strict=False, time_unit="us", time_zone="UTC"
            )
        return values.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    return values.cast(dtype, strict=False)


@dataclass
class LakeColumn:
    type_oid: int
    typmod: int

    def dtype(self, where: str) -> pl.DataType:
        return lake_dtype(self.type_oid, self.typmod, where=where)


@dataclass
class TableState:
    """What the sinks know about one source table (JSON-serialisable)."""

    table: str
    keys: list[str]
    columns: dict[str, LakeColumn] = field(default_factory=dict)
    source_columns: list[str] = field(default_factory=list)
    column_map: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_relation(cls, relation: Relation, keys: list[str]) -> TableState:
        state = cls(table=validate_identifier(relation.name, what="source table"), keys=keys)
        for column in relation.columns:
            name = validate_column(column.name, what=f"column of {relation.qualified}")
            lake_dtype(column.type_oid, column.typmod, where=f"{relation.name}.{name}")
            state.columns[name] = LakeColumn(column.type_oid, column.typmod)
            state.column_map[name] = name
        state.source_columns = [c.name for c in relation.columns]
        missing = [k for k in keys if k not in state.columns]
        if missing:
            raise SchemaChangeError(f"{relation.name}: key columns {missing} are not columns")
        return state

    def lake_schema(self) -> dict[str, pl.DataType]:
        return {name: col.dtype(f"{self.table}.{name}") for name, col in self.columns.items()}

    def observe(self, relation: Relation, lsn: int) -> list[str]:
        """Follow the source's columns to ``relation``; returns what changed, in words."""
        names = [c.name for c in relation.columns]
        if all(name in self.column_map for name in names):
            self._check_types(relation, lsn)
            self.source_columns = names
            return []
        events: list[str] = []
        where = f"{self.table} at LSN {format_lsn(lsn)}"
        old = self.source_columns
        for position, column in enumerate(relation.columns):
            name = validate_column(column.name, what=f"column of {relation.qualified}")
            if name in self.column_map:
                continue
            vanished = old[position] if position < len(old) else None
            if vanished is not None and vanished not in names:
                target = self.column_map[vanished]
                if (column.type_oid, column.typmod) != (
                    self.columns[target].type_oid,
                    self.columns[target].typmod,
                ):
                    raise SchemaChangeError(
                        f"{where}: column {vanished!r} became {name!r} with another type; "
                        "type changes need a re-snapshot"
                    )
                self.column_map[name] = target
                events.append(f"renamed {vanished} -> {name} (lake column {target})")
            elif position >= len(old):
                if name in self.columns:
                    raise SchemaChangeError(
                        f"{where}: new column {name!r} collides with lake column {name!r} of a "
                        "renamed source column"
                    )
                lake_dtype(column.type_oid, column.typmod, where=f"{self.table}.{name}")
                self.columns[name] = LakeColumn(column.type_oid, column.typmod)
                self.column_map[name] = name
                events.append(f"added {name}")
            else:
                raise SchemaChangeError(
                    f"{where}: cannot tell whether new column {name!r} at position "
                    f"{position + 1} is a rename or an add; the change is refused, not guessed"
                )
        self._check_types(relation, lsn)
        self.source_columns = names
        return events

    def _check_types(self, relation: Relation, lsn: int) -> None:
        for column in relation.columns:
            lake = self.columns[self.column_map[column.name]]
            if (column.type_oid, column.typmod) != (lake.type_oid, lake.typmod):
                raise SchemaChangeError(
                    f"{self.table}.{column.name} changed type at LSN {format_lsn(lsn)} "
                    f"(OID {lake.type_oid} -> {column.type_oid}); type changes need a re-snapshot"
                )


@dataclass
class CdcState:
    """Every table's state and the LSN it is valid for, kept next to the slot's consumer."""

    as_of_lsn: int = 0
    tables: dict[str, TableState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CdcState:
        raw = json.loads(text)
        tables = {
            name: TableState(
                table=t["table"],
                keys=list(t["keys"]),
                columns={c: LakeColumn(**v) for c, v in t["columns"].items()},
                source_columns=list(t["source_columns"]),
                column_map=dict(t["column_map"]),
            )
            for name, t in raw["tables"].items()
        }
        return cls(as_of_lsn=int(raw["as_of_lsn"]), tables=tables)

    @classmethod
    def load(cls, path: Path) -> CdcState:
        return cls.from_json(path.read_text()) if path.exists() else cls()

    def save(self, path: Path) -> None:
        """Atomically (write, fsync, rename), so a crash leaves the old or the new state."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            handle.write(self.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)

    def copy(self) -> CdcState:
        return CdcState.from_json(self.to_json())
