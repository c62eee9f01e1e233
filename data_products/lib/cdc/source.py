"""The PostgreSQL side of CDC: publication, replication slot, initial snapshot, batched reads.

Reads use the SQL functions (``pg_logical_slot_peek_binary_changes``) rather than the streaming
replication protocol: psycopg 3 has no streaming replication support, and peeking is exactly the
at-least-once read a micro-batch needs: nothing is consumed until :meth:`advance` is called, which
the pipeline does only after every sink committed.

The initial snapshot hands over to streaming without a gap or a duplicate the way PostgreSQL
designed it: the slot is created over a replication connection with ``SNAPSHOT 'export'``, the
tables are copied inside that exported snapshot, and the slot streams exactly the transactions
that committed after it (its consistent point).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import psycopg

from data_products.lib.cdc.lsn import format_lsn, parse_lsn
from data_products.lib.cdc.pgoutput import Relation, RelColumn
from data_products.lib.keys import validate_column, validate_identifier

_SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3"
_NULL = "\\N"


class SlotError(RuntimeError):
    """The replication slot is missing, taken or in a state the pipeline cannot use."""


@dataclass(frozen=True)
class TableSnapshot:
    relation: Relation
    keys: list[str]
    rows: pl.DataFrame
    """Every column as PostgreSQL's text output (``String``), as of the slot's consistent point."""


@dataclass(frozen=True)
class Snapshot:
    lsn: int
    taken_at: datetime
    tables: dict[str, TableSnapshot]


class SlotSource:
    """One database, one publication over ``tables`` (schema ``schema``), one logical slot."""

    def __init__(
        self,
        conninfo: str,
        *,
        slot: str,
        publication: str,
        tables: Sequence[str],
        schema: str = "public",
    ) -> None:
        self.conninfo = conninfo
        self.slot = validate_identifier(slot, what="replication slot")
        self.publication = validate_identifier(publication, what="publication")
        self.schema = validate_identifier(schema, what="source schema")
        self.tables = tuple(validate_identifier(t, what="source table") for t in tables)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """An autocommit session in UTC with ISO dates (the text forms ``types`` parses)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(_SESSION)
            yield conn

    # -- setup ----------------------------------------------------------------------------------

    def prepare_tables(self) -> None:
        """Before images for every update and delete (``REPLICA IDENTITY FULL``: the SCD2
        history keeps them, and unchanged TOAST values are filled from them), and a publication
        listing exactly the captured tables."""
        names = ", ".join(f"{self.schema}.{t}" for t in self.tables)
        with self.connect() as conn:
            for table in self.tables:
                conn.execute(f"ALTER TABLE {self.schema}.{table} REPLICA IDENTITY FULL")
            exists = conn.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)
            ).fetchone()
            verb = (
                "ALTER PUBLICATION {p} SET TABLE" if exists else "CREATE PUBLICATION {p} FOR TABLE"
            )
            conn.execute(f"{verb.format(p=self.publication)} {names}")

    def slot_exists(self) -> bool:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone()
        return row is not None

    def drop_slot(self) -> None:
        with self.connect() as conn:
            if conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone():
                conn.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))

    def create_slot_with_snapshot(self) -> Snapshot:
        """Create the slot and copy every table as of its consistent point."""
        replication = psycopg.connect(self.conninfo, replication="database", autocommit=True)
        try:
            # Replication commands only speak the simple query protocol: use libpq directly.
            result = replication.pgconn.exec_(
                f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput (SNAPSHOT 'export')".encode()
            )
            if result.status != psycopg.pq.ExecStatus.TUPLES_OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise SlotError(f"could not create replication slot {self.slot!r}: {message}")
            consistent_point = parse_lsn(result.get_value(0, 1).decode())  # type: ignore[union-attr]
            snapshot_name = result.get_value(0, 2).decode()  # type: ignore[union-attr]
            with self.connect() as conn:
                # Explicit BEGIN on an autocommit connection: SET TRANSACTION SNAPSHOT must be
                # the transaction's first statement, before psycopg could slip in anything.
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                conn.execute(f"SET TRANSACTION SNAPSHOT '{_literal(snapshot_name)}'")
                taken_at = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
                tables = {t: self._copy_table(conn, t) for t in self.tables}
                conn.execute("COMMIT")
        finally:
            replication.close()
        return Snapshot(lsn=consistent_point, taken_at=taken_at, tables=tables)

    def read_tables(self, conn: psycopg.Connection) -> dict[str, TableSnapshot]:
        """Every table as of ``conn``'s current snapshot (the consistency check's source side)."""
        return {t: self._copy_table(conn, t) for t in self.tables}

    def _copy_table(self, conn: psycopg.Connection, table: str) -> TableSnapshot:
        relation = self.relation(conn, table)
        columns = ", ".join(c.name for c in relation.columns)
        buffer = io.BytesIO()
        query = (
            f"COPY (SELECT {columns} FROM {self.schema}.{table}) TO STDOUT "
            f"(FORMAT csv, HEADER true, NULL '{_NULL}')"
        )
        with conn.cursor().copy(query) as copy:
            for chunk in copy:
                buffer.write(chunk)
        buffer.seek(0)
        names = [c.name for c in relation.columns]
        rows = pl.read_csv(
            buffer,
            schema=dict.fromkeys(names, pl.String()),
            null_values=[_NULL],
            empty_string_is_null=False,
        )
        return TableSnapshot(relation=relation, keys=self.primary_key(conn, table), rows=rows)

    def relation(self, conn: psycopg.Connection, table: str) -> Relation:
        """The table's live columns as a pgoutput ``Relation`` would list them."""
        rows = conn.execute(
            """
            SELECT a.attname, a.atttypid::int, a.atttypmod, c.oid::int
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (self.schema, table),
        ).fetchall()
        if not rows:
            raise SlotError(f"source table {self.schema}.{table} does not exist")
        columns = tuple(
            RelColumn(validate_column(n, what=f"column of {table}"), oid, mod)
            for n, oid, mod, _ in rows
        )
        return Relation(rows[0][3], self.schema, table, columns)

    def primary_key(self, conn: psycopg.Connection, table: str) -> list[str]:
        rows = conn.execute(
            """
            SELECT a.attname FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisprimary
            ORDER BY array_position(i.indkey, a.attnum)
            """,
            (f"{self.schema}.{table}",),
        ).fetchall()
        if not rows:
            raise SlotError(f"{self.schema}.{table} has no primary key: CDC needs one per row")
        return [r[0] for r in rows]

    # -- streaming ------------------------------------------------------------------------------

    def peek(
        self, *, upto_lsn: int | None = None, max_changes: int | None = None
    ) -> list[tuple[str, int, bytes]]:
        """The slot's next messages without consuming them (``(lsn, xid, data)`` rows)."""
        with self.connect() as conn:
            return conn.execute(
                "SELECT lsn::text, xid::text::bigint, data FROM "
                "pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                (
                    self.slot,
                    None if upto_lsn is None else format_lsn(upto_lsn),
                    max_changes,
                    self.publication,
                ),
            ).fetchall()

    def advance(self, lsn: int) -> None:
        """Confirm everything up to ``lsn``: PostgreSQL may recycle that WAL from now on."""
        with self.connect() as conn:
            conn.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, format_lsn(lsn))
            )

    def confirmed_lsn(self) -> int:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        if row is None or row[0] is None:
            raise SlotError(f"replication slot {self.slot!r} does not exist")
        return parse_lsn(row[0])

    def current_lsn(self) -> int:
        with self.connect() as conn:
            return parse_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]


def _literal(text: str) -> str:
    if not all(ch.isalnum() or ch in "-_" for ch in text):
        raise SlotError(f"unexpected snapshot name {text!r}")
    return text
