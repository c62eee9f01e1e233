"""A real PostgreSQL server for the CDC tests: one per session, in a temporary directory, on a
free port; each test gets its own database, slot and lake."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from assets.cdc.oltp import TABLES, Workload, create_schema
from data_products.lib.cdc.pipeline import CdcPipeline
from data_products.lib.cdc.source import SlotSource
from resources.postgres_server import PostgresServer, free_port, pg_bin_dir
from tests.snapshots import Snapshot, capture


@dataclass
class Server:
    server: PostgresServer
    password: str

    def conninfo(self, database: str) -> str:
        return self.server.conninfo(self.password, database)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    try:
        pg_bin_dir()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    # Not pytest's tmp dir: when we are root the server runs as an unprivileged user, who
    # cannot traverse pytest's 0700 base directory.
    directory = Path(tempfile.mkdtemp(prefix="cdc-pg-"))
    directory.chmod(0o755)
    server = PostgresServer(directory / "pg", port=free_port())
    password = secrets.token_urlsafe(16)
    server.start(password)
    try:
        yield Server(server, password)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class CdcEnv:
    conninfo: str
    conn: psycopg.Connection
    workload: Workload
    lake: Path
    database: str

    def catalog(self) -> SqlCatalog:
        return SqlCatalog(
            "test", uri=f"sqlite:///{self.lake / 'catalog.db'}", warehouse=str(self.lake / "ice")
        )

    def pipeline(self) -> CdcPipeline:
        source = SlotSource(
            self.conninfo, slot=self.database, publication=self.database, tables=TABLES
        )
        return CdcPipeline(
            source, self.catalog(), str(self.lake / "delta"), self.lake / "state.json"
        )

    def snapshot(self) -> Snapshot:
        """Every Iceberg table (mirrors and histories) and Delta table of this lake."""
        return capture(catalog=self.catalog(), delta_root=self.lake / "delta")


@pytest.fixture
def make_env(postgres: Server, tmp_path: Path) -> Iterator:
    """``make_env(seed)``: a fresh database with the inventory schema and a seeded workload."""
    opened: list[tuple[psycopg.Connection, str]] = []

    def make(seed: int, *, products: int = 60) -> CdcEnv:
        database = f"cdc_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {database}")
        conninfo = postgres.conninfo(database)
        conn = psycopg.connect(conninfo, autocommit=True)
        opened.append((conn, database))
        create_schema(conn)
        workload = Workload(conn, seed=seed)
        workload.load(warehouses=3, products=products, customers=40, stock=80)
        lake = tmp_path / database
        lake.mkdir()
        return CdcEnv(conninfo, conn, workload, lake, database)

    yield make
    with psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as admin:
        for conn, database in opened:
            conn.close()
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = %s",
                (database,),
            )
            admin.execute(f"DROP DATABASE IF EXISTS {database}")
