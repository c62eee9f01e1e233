"""Decoding PostgreSQL's ``pgoutput`` logical replication protocol (version 1).

Why pgoutput: it is the plugin built into every PostgreSQL server (no extension to install), it is
what PostgreSQL's own logical replication uses, and its binary framing is length-prefixed, so a
value containing quotes, newlines or separators needs no escaping rules to get right. Its
``Relation`` messages carry the column names and types in force for the changes that follow,
which is how the sinks notice an added or renamed column at the exact LSN it took effect.

Messages arrive through ``pg_logical_slot_peek_binary_changes`` one row at a time
(``lsn, xid, data``); :func:`decode_transactions` groups them into committed transactions.
Values stay PostgreSQL's text output; typing them is the schema's job (``types.py``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from data_products.lib.cdc.lsn import format_lsn

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_INT16: Final = struct.Struct("!h")
_INT32: Final = struct.Struct("!i")
_TEXT, _NULL, _UNCHANGED_TOAST = b"t"[0], b"n"[0], b"u"[0]


class _Unchanged:
    """An unchanged TOASTed value PostgreSQL did not resend (``'u'``); filled from the before
    image, which ``REPLICA IDENTITY FULL`` guarantees."""

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED: Final = _Unchanged()
Value = str | None | _Unchanged
Operation = Literal["c", "u", "d"]


class DecodeError(ValueError):
    """A message that does not follow the pgoutput protocol; names the LSN it came from."""


@dataclass(frozen=True)
class RelColumn:
    name: str
    type_oid: int
    typmod: int


@dataclass(frozen=True)
class Relation:
    relid: int
    schema: str
    name: str
    columns: tuple[RelColumn, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class RowChange:
    """One row change: ``before`` for updates and deletes (all columns under replica identity
    FULL), ``after`` for inserts and updates; values aligned with ``relation.columns``."""

    relation: Relation
    op: Operation
    before: tuple[Value, ...] | None
    after: tuple[Value, ...] | None
    lsn: int
    seq: int


@dataclass
class Transaction:
    xid: int
    commit_lsn: int = 0
    """End LSN of the commit record: the transaction's position in the stream (monotonic)."""
    commit_time: datetime = PG_EPOCH
    changes: list[RowChange] = field(default_factory=list)


def decode_transactions(
    rows: Iterable[tuple[str | int, int | None, bytes | memoryview]],
    relations: dict[int, Relation] | None = None,
) -> tuple[list[Transaction], dict[int, Relation]]:
    """Committed transactions, in commit order, from ``(lsn, xid, data)`` rows.

    ``relations`` carries the relation cache across calls (a peek only resends a ``Relation``
    once per decoding session). A trailing transaction without its commit is dropped: the slot
    will deliver it whole next time.
    """
    from data_products.lib.cdc.lsn import parse_lsn

    relations = dict(relations or {})
    done: list[Transaction] = []
    current: Transaction | None = None
    seq = 0
    for raw_lsn, _xid, raw in rows:
        lsn = parse_lsn(raw_lsn) if isinstance(raw_lsn, str) else int(raw_lsn)
        data = bytes(raw)
        reader = _Reader(data, lsn)
        kind = reader.byte()
        if kind == "B":
            reader.int64()  # final LSN of the commit record; the commit message has the end LSN
            reader.int64()
            current = Transaction(xid=reader.int32())
            seq = 0
        elif kind == "C":
            if current is None:
                raise DecodeError(f"commit without begin at LSN {format_lsn(lsn)}")
            reader.byte()
            reader.int64()
            current.commit_lsn = reader.int64()
            current.commit_time = PG_EPOCH + timedelta(microseconds=reader.int64())
            done.append(current)
            current = None
        elif kind == "R":
            relation = _relation(reader)
            relations[relation.relid] = relation
        elif kind in "IUD":
            if current is None:
                raise DecodeError(f"row change outside a transaction at LSN {format_lsn(lsn)}")
            seq += 1
            current.changes.append(_row_change(kind, reader, relations, lsn, seq))
        elif kind == "T":
            relids = _truncated(reader)
            names = ", ".join(relations[r].qualified if r in relations else str(r) for r in relids)
            raise DecodeError(
                f"TRUNCATE of {names} at LSN {format_lsn(lsn)}: CDC cannot express it row by "
                "row; re-snapshot the table (drop its replication slot and mirrors) instead"
            )
        elif kind in "YOM":
            continue  # type, origin and logical messages carry nothing the mirrors need
        else:
            raise DecodeError(f"unknown pgoutput message {kind!r} at LSN {format_lsn(lsn)}")
    return done, relations


class _Reader:
    def __init__(self, data: bytes, lsn: int) -> None:
        self.data, self.pos, self.lsn = data, 0, lsn

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            self._truncated(n)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> str:
        return self._take(1).decode("latin-1")

    def int8(self) -> int:
        return int(struct.unpack("!b", self._take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack("!h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self._take(8))[0])

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DecodeError(f"unterminated string at LSN {format_lsn(self.lsn)}")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple(self) -> tuple[Value, ...]:
        # The hot loop of decoding (every column of every change, twice for an update under
        # REPLICA IDENTITY FULL): one pass with local names and ``unpack_from`` instead of a
        # method call and a slice per field, 4x faster when profiled on 20,000 updates.
        data, pos, end = self.data, self.pos, len(self.data)
        if pos + 2 > end:
            self._truncated(2)
        (count,) = _INT16.unpack_from(data, pos)
        pos += 2
        values: list[Value] = []
        append = values.append
        for _ in range(count):
            if pos >= end:
                self.pos = pos
                self._truncated(1)
            kind = data[pos]
            pos += 1
            if kind == _TEXT:
                if pos + 4 > end:
                    self.pos = pos
                    self._truncated(4)
                (length,) = _INT32.unpack_from(data, pos)
                pos += 4
                if pos + length > end:
                    self.pos = pos
                    self._truncated(length)
                append(data[pos : pos + length].decode("utf-8"))
                pos += length
            elif kind == _NULL:
                append(None)
            elif kind == _UNCHANGED_TOAST:
                append(UNCHANGED)
            else:
                raise DecodeError(
                    f"unexpected tuple value kind {chr(kind)!r} at LSN {format_lsn(self.lsn)} "
                    "(binary mode is not requested)"
                )
        self.pos = pos
        return tuple(values)

    def _truncated(self, wanted: int) -> None:
        raise DecodeError(
            f"truncated pgoutput message at LSN {format_lsn(self.lsn)}: wanted {wanted} bytes "
            f"at offset {self.pos} of {len(self.data)}"
        )


def _relation(reader: _Reader) -> Relation:
    relid = reader.int32()
    schema, name = reader.cstring(), reader.cstring()
    reader.int8()  # replica identity setting
    columns = []
    for _ in range(reader.int16()):
        reader.int8()  # key flag: under REPLICA IDENTITY FULL every column is flagged
        columns.append(RelColumn(reader.cstring(), reader.int32(), reader.int32()))
    return Relation(relid, schema, name, tuple(columns))


def _row_change(
    kind: str, reader: _Reader, relations: dict[int, Relation], lsn: int, seq: int
) -> RowChange:
    relid = reader.int32()
    relation = relations.get(relid)
    if relation is None:
        raise DecodeError(f"change for unknown relation {relid} at LSN {format_lsn(lsn)}")
    before: tuple[Value, ...] | None = None
    after: tuple[Value, ...] | None = None
    marker = reader.byte()
    if kind == "I":
        _expect(marker, "N", lsn)
        after = reader.tuple()
    elif kind == "U":
        if marker in ("K", "O"):
            before = reader.tuple()
            marker = reader.byte()
        _expect(marker, "N", lsn)
        after = reader.tuple()
    else:
        if marker not in ("K", "O"):
            raise DecodeError(f"delete without old tuple at LSN {format_lsn(lsn)}")
        before = reader.tuple()
    for image in (before, after):
        if image is not None and len(image) != len(relation.columns):
            raise DecodeError(
                f"{relation.qualified}: tuple has {len(image)} values but the relation has "
                f"{len(relation.columns)} columns at LSN {format_lsn(lsn)}"
            )
    op: Operation = {"I": "c", "U": "u", "D": "d"}[kind]  # type: ignore[assignment]
    return RowChange(relation, op, before, after, lsn, seq)


def _truncated(reader: _Reader) -> list[int]:
    count = reader.int32()
    reader.int8()
    return [reader.int32() for _ in range(count)]


def _expect(marker: str, wanted: str, lsn: int) -> None:
    if marker != wanted:
        raise DecodeError(f"expected {wanted!r}, got {marker!r} at LSN {format_lsn(lsn)}")
