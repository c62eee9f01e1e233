"""The CDC domain's source: an inventory OLTP schema and a seeded random workload against it.

The workload is what makes CDC hard, on purpose: several updates to one key inside one batch,
deletes, re-inserts of deleted keys, cascaded deletes (stock levels of a deleted product), and
schema changes (a column added, a column renamed) while changes keep flowing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg

TABLES: tuple[str, ...] = ("warehouses", "products", "customers", "stock_levels")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS warehouses (
    warehouse_id integer PRIMARY KEY,
    name text NOT NULL,
    city text,
    capacity integer
);
CREATE TABLE IF NOT EXISTS products (
    product_id bigint PRIMARY KEY,
    sku text NOT NULL,
    name text NOT NULL,
    category text,
    unit_price numeric(12, 2),
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    customer_id bigint PRIMARY KEY,
    email text,
    full_name text,
    country char(2),
    active boolean,
    created_on date
);
CREATE TABLE IF NOT EXISTS stock_levels (
    warehouse_id integer REFERENCES warehouses ON DELETE CASCADE,
    product_id bigint REFERENCES products ON DELETE CASCADE,
    quantity integer NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (warehouse_id, product_id)
);
"""

CATEGORIES = ("tools", "garden", "kitchen", "toys", "books", "audio")
COUNTRIES = ("DE", "FR", "NL", "US", "GB", "ES")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def create_schema(conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA_SQL)


@dataclass
class Workload:
    """Random OLTP traffic; ``live`` mirrors which keys exist so every operation is valid."""

    conn: psycopg.Connection
    seed: int
    rng: random.Random = field(init=False)
    live: dict[str, set[int]] = field(default_factory=dict)
    deleted: dict[str, set[int]] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)
    stock: set[tuple[int, int]] = field(default_factory=set)
    customer_name_column: str = "full_name"
    ops: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - a reproducible workload, not a secret
        for table in ("warehouses", "products", "customers"):
            self.live.setdefault(table, set())
            self.deleted.setdefault(table, set())
            self.next_id.setdefault(table, 1)

    # -- bulk load ------------------------------------------------------------------------------

    def load(self, *, warehouses: int, products: int, customers: int, stock: int) -> None:
        """The initial state, loaded with COPY (fast enough for a million rows)."""
        with self.conn.transaction():
            self._copy(
                "warehouses",
                [self._warehouse(self._new_id("warehouses")) for _ in range(warehouses)],
            )
            self._copy_rows("products", products, self._product)
            self._copy_rows("customers", customers, self._customer)
            pairs: set[tuple[int, int]] = set()
            while len(pairs) < min(
                stock, len(self.live["warehouses"]) * len(self.live["products"])
            ):
                pairs.add(self._random_pair())
            self.stock |= pairs
            self._copy(
                "stock_levels", [(w, p, self.rng.randint(0, 500), self._ts()) for w, p in pairs]
            )

    def _copy_rows(self, table: str, count: int, make: Callable[[int], tuple[object, ...]]) -> None:
        self._copy(table, (make(self._new_id(table)) for _ in range(count)))

    def _copy(self, table: str, rows: Iterable[tuple[object, ...]]) -> None:
        with self.conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # -- random traffic -------------------------------------------------------------------------

    def run(self, operations: int, *, per_transaction: int = 5) -> None:
        """``operations`` random row operations, committed ``per_transaction`` at a time."""
        done = 0
        while done < operations:
            with self.conn.transaction():
                for _ in range(min(per_transaction, operations - done)):
                    self.random_operation()
                    done += 1

    def random_operation(self) -> None:
        self.ops += 1
        table = self.rng.choice(("products", "products", "customers", "stock_levels", "warehouses"))
        roll = self.rng.random()
        if table == "stock_levels":
            self._stock_operation(roll)
        elif roll < 0.25 or not self.live[table]:
            self._insert(table, self._new_id(table))
        elif roll < 0.35 and self.deleted[table]:
            key = self.rng.choice(sorted(self.deleted[table]))
            self.deleted[table].discard(key)
            self._insert(table, key)  # a deleted key comes back
        elif roll < 0.5:
            self._delete(table, self.rng.choice(sorted(self.live[table])))
        elif roll < 0.6:
            key = self.rng.choice(sorted(self.live[table]))
            for _ in range(self.rng.randint(3, 6)):  # a hot key: many updates in one batch
                self._update(table, key)
        else:
            self._update(table, self.rng.choice(sorted(self.live[table])))

    def add_column(self) -> None:
        self.conn.execute("ALTER TABLE products ADD COLUMN weight_kg numeric(8, 3)")

    def rename_column(self) -> None:
        self.conn.execute("ALTER TABLE customers RENAME COLUMN full_name TO display_name")
        self.customer_name_column = "display_name"

    # -- operations -----------------------------------------------------------------------------

    def _insert(self, table: str, key: int) -> None:
        row = {
            "warehouses": self._warehouse,
            "products": self._product,
            "customers": self._customer,
        }[table](key)
        columns = self._columns(table)
        placeholders = ", ".join(["%s"] * len(columns))
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", row
        )
        self.live[table].add(key)

    def _update(self, table: str, key: int) -> None:
        if table == "products":
            if self._has_weight():
                self.conn.execute(
                    "UPDATE products SET unit_price = %s, updated_at = %s, weight_kg = %s "
                    "WHERE product_id = %s",
                    (self._price(), self._ts(), Decimal(self.rng.randint(1, 99999)) / 1000, key),
                )
            else:
                self.conn.execute(
                    "UPDATE products SET unit_price = %s, updated_at = %s WHERE product_id = %s",
                    (self._price(), self._ts(), key),
                )
        elif table == "customers":
            self.conn.execute(
                f"UPDATE customers SET email = %s, {self.customer_name_column} = %s, "
                "active = %s WHERE customer_id = %s",
                (
                    f"c{key}.{self.rng.randint(0, 999)}@example.org",
                    self._name(),
                    self.rng.random() < 0.8,
                    key,
                ),
            )
        else:
            self.conn.execute(
                "UPDATE warehouses SET capacity = %s WHERE warehouse_id = %s",
                (self.rng.randint(100, 100_000), key),
            )

    def _delete(self, table: str, key: int) -> None:
        column = {
            "warehouses": "warehouse_id",
            "products": "product_id",
            "customers": "customer_id",
        }[table]
        self.conn.execute(f"DELETE FROM {table} WHERE {column} = %s", (key,))
        self.live[table].discard(key)
        self.deleted[table].add(key)
        if table in ("warehouses", "products"):
            position = 0 if table == "warehouses" else 1
            self.stock = {pair for pair in self.stock if pair[position] != key}

    def _stock_operation(self, roll: float) -> None:
        if not self.live["warehouses"] or not self.live["products"]:
            return
        if roll < 0.3 or not self.stock:
            pair = self._random_pair()
            self.conn.execute(
                "INSERT INTO stock_levels VALUES (%s, %s, %s, %s) ON CONFLICT (warehouse_id, "
                "product_id) DO UPDATE SET quantity = stock_levels.quantity + excluded.quantity",
                (*pair, self.rng.randint(0, 50), self._ts()),
            )
            self.stock.add(pair)
        elif roll < 0.45:
            pair = self.rng.choice(sorted(self.stock))
            self.conn.execute(
                "DELETE FROM stock_levels WHERE warehouse_id = %s AND product_id = %s", pair
            )
            self.stock.discard(pair)
        else:
            pair = self.rng.choice(sorted(self.stock))
            self.conn.execute(
                "UPDATE stock_levels SET quantity = greatest(quantity - %s, 0), updated_at = %s "
                "WHERE warehouse_id = %s AND product_id = %s",
                (self.rng.randint(1, 20), self._ts(), *pair),
            )

    # -- values ---------------------------------------------------------------------------------

    def _columns(self, table: str) -> list[str]:
        if table == "warehouses":
            return ["warehouse_id", "name", "city", "capacity"]
        if table == "products":
            return ["product_id", "sku", "name", "category", "unit_price", "updated_at"]
        return [
            "customer_id",
            "email",
            self.customer_name_column,
            "country",
            "active",
            "created_on",
        ]

    def _has_weight(self) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'products' "
            "AND column_name = 'weight_kg'"
        ).fetchone()
        return row is not None

    def _new_id(self, table: str) -> int:
        key = self.next_id[table]
        self.next_id[table] = key + 1
        self.live[table].add(key)
        return key

    def _random_pair(self) -> tuple[int, int]:
        return self.rng.choice(sorted(self.live["warehouses"])), self.rng.choice(
            tuple(self.live["products"])
        )

    def _warehouse(self, key: int) -> tuple[object, ...]:
        return (
            key,
            f"Warehouse {key}",
            self.rng.choice(("Berlin", "Lyon", "Austin")),
            self.rng.randint(100, 100_000),
        )

    def _product(self, key: int) -> tuple[object, ...]:
        return (
            key,
            f"SKU-{key:07d}",
            f"Product {key} 'quoted', \"x\"",
            self.rng.choice(CATEGORIES),
            self._price(),
            self._ts(),
        )

    def _customer(self, key: int) -> tuple[object, ...]:
        email = None if self.rng.random() < 0.05 else f"c{key}@example.org"
        created = date(2020, 1, 1) + timedelta(days=self.rng.randint(0, 2000))
        return (
            key,
            email,
            self._name(),
            self.rng.choice(COUNTRIES),
            self.rng.random() < 0.9,
            created,
        )

    def _name(self) -> str:
        return (
            self.rng.choice(("Ana", "Bo", "Chloé", "Dmitri", "Eve"))
            + " "
            + self.rng.choice(("Smith", "O'Neil", "Müller", "Li"))
        )

    def _price(self) -> Decimal:
        return Decimal(self.rng.randint(1, 10_000_000)) / 100

    def _ts(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.rng.randint(0, 10**13))
