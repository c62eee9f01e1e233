"""The PostgreSQL source resource: where the CDC source database lives and how to reach it.

Embedded by default: the platform runs its own server under ``<home>/postgres`` (see
``resources.postgres_server``), started on demand. The password comes from the
environment as ``dg.EnvVar("DATA_PRODUCTS_POSTGRES_PASSWORD")`` and is never logged, put in a
command line or in metadata; the URI the lineage sees carries no credentials.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from data_products.lib.cdc.source import SlotSource
from data_products.lib.compat.environment import export
from data_products.lib.keys import validate_identifier
from data_products.lib.settings import get_settings
from resources.postgres_server import PostgresServer

PASSWORD_ENV = "DATA_PRODUCTS_POSTGRES_PASSWORD"  # noqa: S105 - a variable name, not a secret


# ConfigurableResource is generic in the value it hands to assets; a bare subclass hands itself,
# and subscripting it would make pydantic build a second class at run time.
class PostgresResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A PostgreSQL database captured by logical decoding (one slot and one publication)."""

    password: str = Field(description="Superuser password; pass as dg.EnvVar.")
    data_dir: str | None = Field(
        default=None, description="Cluster directory; empty: <DATA_PRODUCTS_HOME>/postgres."
    )
    port: int = Field(default=54329, description="Port (also names the unix socket file).")
    user: str = Field(default="data_products", description="Database superuser.")
    database: str = Field(default="inventory", description="The captured database.")
    slot: str = Field(default="cdc_inventory", description="Logical replication slot name.")
    publication: str = Field(default="cdc_inventory", description="Publication of the tables.")
    max_batch_changes: int = Field(
        default=50_000,
        ge=1,
        description="Upper bound of one micro-batch (whole transactions): keeps lag bounded.",
    )
    managed: bool = Field(
        default=True, description="Start the embedded server on demand (False: it is external)."
    )

    def server(self) -> PostgresServer:
        directory = Path(self.data_dir) if self.data_dir else get_settings().home / "postgres"
        return PostgresServer(
            directory.resolve(), port=self.port, user=self.user, database=self.database
        )

    def ensure_running(self) -> None:
        if self.managed:
            self.server().start(self.password)

    def conninfo(self) -> str:
        return self.server().conninfo(self.password)

    def source(self, tables: Sequence[str]) -> SlotSource:
        return SlotSource(
            self.conninfo(), slot=self.slot, publication=self.publication, tables=tables
        )

    def table_uri(self, table: str, schema: str = "public") -> str:
        """``postgres://host:port/db.schema.table``: the OpenLineage name of a source table."""
        validate_identifier(table, what="source table")
        return f"{self.server().uri()}.{schema}.{table}"


def ensure_password() -> None:
    """Give the embedded server a password when none is configured.

    A fresh machine has none: one is generated into ``<home>/postgres.password`` (0600) and
    exported for this process, so every later run, ``make dev`` (the Makefile exports the file's
    content) and the demo reach the same cluster. A configured ``$DATA_PRODUCTS_POSTGRES_PASSWORD``
    always wins. The value is never printed.
    """
    if os.environ.get(PASSWORD_ENV):
        return
    path = get_settings().home / "postgres.password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    export(PASSWORD_ENV, path.read_text().strip())


def postgres_resource() -> PostgresResource:
    """The embedded profile: the password from ``DATA_PRODUCTS_POSTGRES_PASSWORD`` at run time."""
    return PostgresResource(password=dg.EnvVar(PASSWORD_ENV))
