"""``make demo`` for CDC: start the source, load a small inventory, run a few micro-batches.

Each batch is what production does: the ``cdc_slot`` sensor is evaluated (in-process here) and
its run request -- run key and tags = LSN range -- is executed. The sensor is looked up by name
in the definitions (``tick_and_run``), so assets never import ``sensors``. Between batches the
workload changes rows, then adds a column and renames one, so the demo shows schema evolution.
"""

from __future__ import annotations

import dagster as dg
import psycopg

from assets.cdc.oltp import Workload, create_schema
from data_products.cli.runs import SliceRun, tick_and_run
from resources.postgres import PostgresResource, ensure_password, postgres_resource

DEMO_SEED = 2026
SENSOR = "cdc_slot"


def run_demo(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[SliceRun]:
    ensure_password()
    postgres = postgres_resource().process_config_and_initialize()
    was_running = postgres.server().is_running()
    postgres.ensure_running()
    try:
        return _batches(defs, instance, postgres)
    finally:
        if not was_running and postgres.managed:
            postgres.server().stop()  # leave the machine as we found it


def _batches(
    defs: dg.Definitions, instance: dg.DagsterInstance, postgres: PostgresResource
) -> list[SliceRun]:
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        create_schema(conn)
        fresh = conn.execute("SELECT count(*) FROM products").fetchone()[0] == 0  # type: ignore[index]
        workload = Workload(conn, seed=DEMO_SEED)
        if fresh:
            workload.load(warehouses=4, products=2_000, customers=1_000, stock=3_000)
        else:
            _resume(conn, workload)
        runs: list[SliceRun] = []
        cursor: str | None = None
        for step in range(3):
            if step == 1:
                workload.run(400)
            elif step == 2:
                if fresh:
                    workload.add_column()
                    workload.rename_column()
                workload.run(400)
            batch, cursor = tick_and_run(defs, instance, SENSOR, cursor=cursor)
            runs += batch
    return runs


def _resume(conn: psycopg.Connection, workload: Workload) -> None:
    """A second demo on the same data home continues from what the database holds."""
    for table, column in (
        ("warehouses", "warehouse_id"),
        ("products", "product_id"),
        ("customers", "customer_id"),
    ):
        keys = {row[0] for row in conn.execute(f"SELECT {column} FROM {table}")}
        workload.live[table] = keys
        workload.next_id[table] = max(keys, default=0) + 1_000_000
    workload.stock = {
        (w, p) for w, p in conn.execute("SELECT warehouse_id, product_id FROM stock_levels")
    }
    names = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
        )
    }
    if "display_name" in names:
        workload.customer_name_column = "display_name"
