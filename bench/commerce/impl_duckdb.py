"""Implementation 2: the same work as hand-written DuckDB SQL, the practical limit.

One connection to ``runs/duckdb/warehouse.duckdb``, no orchestration: Python only lists the drop
files and sends SQL. Each layer mirrors the platform's semantics (MODEL.md, the contracts):

- bronze: every drop read as text with its file and physical line (insertion order is kept, so
  ``rowid`` counts lines), undecodable bytes replaced by U+FFFD as the platform's UTF-8-lossy
  read does;
- silver: the same parsing (number and date formats, aliases, currency symbols, fx to USD with
  round-half-even to cents like polars), each row filed under its first failing error rule,
  duplicates of the primary key quarantined after the first delivered row, orders published
  only when all their lines are;
- gold: the dbt marts rewritten as plain SQL;
- checks: the contracts' rule thresholds, rows in = published + quarantined, primary keys, the
  published schema's value rules, rows per partition, drift, the two referential warnings, and
  every gold data test, each as a count query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from bench.commerce import model as m
from bench.commerce.clock import Clock, Progress
from bench.commerce.gold_tests import GOLD_TESTS, failing_rows_sql
from bench.commerce.layout import DATASETS, BenchLayout, BenchRange, drop_files
from data_products.lib.keys import validate_column

BRONZE, SILVER, GOLD = "commerce_bronze", "commerce_silver", "commerce_gold"
_WHITESPACE = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
_SORT_SHIFT = 4_294_967_296  # file index * 2^32 + line: one BIGINT orders rows by (file, line)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_sql_string(v) for v in values) + "]"


_ISO_TIMESTAMP = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z?| \d{2}:\d{2}(:\d{2})?)?"
_DAY_FIRST_FORMATS = [f for f in (*m.TIMESTAMP_FORMATS, *m.DATE_FORMATS) if f.startswith("%d")]
_SYMBOL_CASES = " ".join(
    f"WHEN {_sql_string(k)} THEN {_sql_string(v)}" for k, v in m.CURRENCY_SYMBOLS.items()
)

MACROS = f"""
CREATE OR REPLACE TEMP MACRO clean_text(s) AS nullif(trim(s, {_WHITESPACE}), '');
CREATE OR REPLACE TEMP MACRO is_empty(s) AS (s IS NULL OR trim(s, {_WHITESPACE}) = '');
CREATE OR REPLACE TEMP MACRO number_compact(s) AS
    regexp_replace(s, {_sql_string(m.NUMBER_NOISE)}, '', 'g');
CREATE OR REPLACE TEMP MACRO parse_compact_number(c) AS TRY_CAST(CASE
    WHEN regexp_matches(c, {_sql_string(m.PLAIN)}) THEN c
    WHEN regexp_matches(c, {_sql_string(m.US_GROUPED)}) THEN replace(c, ',', '')
    WHEN regexp_matches(c, {_sql_string(m.EU_GROUPED)}) THEN replace(replace(c, '.', ''), ',', '.')
    WHEN regexp_matches(c, {_sql_string(m.EU_DECIMAL)}) THEN replace(c, ',', '.')
    END AS DOUBLE);
CREATE OR REPLACE TEMP MACRO parse_number(s) AS parse_compact_number(number_compact(s));
CREATE OR REPLACE TEMP MACRO integral(n) AS
    CASE WHEN n = floor(n) AND abs(n) <= {m.INT32_MAX} THEN CAST(n AS INTEGER) END;
CREATE OR REPLACE TEMP MACRO parse_date_only(t) AS
    CAST(try_strptime(t, {_list(m.DATE_FORMATS)}) AS DATE);
-- ISO shapes go through the (fast) cast, day-first ones through strptime; the shapes accepted
-- are exactly the platform's formats: T with seconds (optional Z), space with or without
-- seconds, or a bare date.
CREATE OR REPLACE TEMP MACRO parse_trimmed_ts(t) AS CASE
    WHEN regexp_full_match(t, {_sql_string(_ISO_TIMESTAMP)}) THEN TRY_CAST(t AS TIMESTAMP)
    ELSE try_strptime(t, {_list(_DAY_FIRST_FORMATS)}) END;
CREATE OR REPLACE TEMP MACRO parse_ts(s) AS parse_trimmed_ts(trim(s, {_WHITESPACE}));
CREATE OR REPLACE TEMP MACRO parse_date(s) AS coalesce(
    parse_date_only(trim(s, {_WHITESPACE})), CAST(parse_ts(s) AS DATE));
CREATE OR REPLACE TEMP MACRO normalise_currency(s) AS CASE upper(clean_text(s))
    {_SYMBOL_CASES} ELSE upper(clean_text(s)) END;
-- polars rounds half to even on the scaled value; DuckDB's round() goes half away from zero.
CREATE OR REPLACE TEMP MACRO round_cents(x) AS round_even(x * 100, 0) / 100;
CREATE OR REPLACE TEMP MACRO surrogate_key(s) AS CAST(('0x' || left(md5(s), 15)) AS BIGINT);
"""


def run(layout: BenchLayout, bench_range: BenchRange, progress: Progress) -> dict[str, Any]:
    """Bronze, silver, gold and checks for the range, in one DuckDB connection."""
    clock = Clock(progress)
    con = duckdb.connect(
        str(layout.warehouse("duckdb")), config={"autoinstall_known_extensions": False}
    )
    try:
        con.execute(MACROS)
        for schema in (BRONZE, SILVER, GOLD):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        files = _register_files(con, layout, bench_range)
        with clock.phase("bronze"):
            bronze_columns = {ds: _load_bronze(con, layout, ds, files[ds]) for ds in DATASETS}
        with clock.phase("silver"):
            _silver(con, bronze_columns)
        with clock.phase("gold"):
            for name, sql in GOLD_SQL:
                con.execute(f"CREATE OR REPLACE TABLE {GOLD}.{name} AS {sql}")
        with clock.phase("checks"):
            checks = _checks(con, bench_range)
    finally:
        con.close()
    failed = [c["name"] for c in checks if not c["passed"]]
    gate = [c["name"] for c in checks if not c["passed"] and c["severity"] == "error"]
    return {
        "success": not gate,
        "phases": clock.phases,
        "checks_s": clock.phases["checks"],
        "checks": {"evaluated": len(checks), "failed": failed, "gate_failures": gate},
    }


# --------------------------------------------------------------------------------------------
# Bronze


def _register_files(
    con: duckdb.DuckDBPyConnection, layout: BenchLayout, bench_range: BenchRange
) -> dict[str, list[str]]:
    """``__files``: every drop file with its partition, landing-relative name and sort rank."""
    rows: list[tuple[str, str, str]] = []
    by_dataset: dict[str, list[str]] = {}
    for dataset in DATASETS:
        found = drop_files(layout.landing, dataset, bench_range.keys)
        by_dataset[dataset] = [str(path) for _, path in found]
        rows += [(str(p), k, p.relative_to(layout.landing).as_posix()) for k, p in found]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __files (filename VARCHAR, partition_date DATE, "
        "source_file VARCHAR)"
    )
    con.executemany("INSERT INTO __files VALUES (?, ?, ?)", rows)
    # Rows are ordered by (file, line) for "first delivered": rank the relative names once.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __files AS SELECT *, "
        "CAST(rank() OVER (ORDER BY source_file) AS BIGINT) AS file_rank FROM __files"
    )
    return by_dataset


def _load_bronze(
    con: duckdb.DuckDBPyConnection, layout: BenchLayout, dataset: str, paths: list[str]
) -> list[str]:
    """``commerce_bronze.<dataset>``: delivered columns as text plus ingest metadata."""
    read = (
        "CREATE OR REPLACE TEMP TABLE __raw AS SELECT * FROM read_csv($files, header = true, "
        "all_varchar = true, union_by_name = true, filename = true, delim = ',', quote = '\"', "
        "escape = '\"')"
    )
    try:
        con.execute(read, {"files": paths})
    except duckdb.InvalidInputException as exc:
        if "unicode" not in str(exc).lower():
            raise
        # DuckDB refuses bytes that are not UTF-8 (a latin-1 name). Like the platform's
        # UTF-8-lossy read, replace them with U+FFFD: rewrite just those files, then read again.
        paths = [_utf8_lossy_copy(con, layout, Path(p)) for p in paths]
        con.execute(read, {"files": paths})
    columns = [
        validate_column(name, what=f"delivered column of {dataset}")
        for (name,) in con.execute(
            "SELECT column_name FROM (DESCRIBE __raw) WHERE column_name <> 'filename'"
        ).fetchall()
    ]
    # ``rowid`` follows insertion order, which a CTAS from read_csv keeps: row n of a file is
    # physical line n + 1 (no field spans lines in these drops).
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {BRONZE}.{dataset} AS
        WITH first_row AS (SELECT filename, min(rowid) AS first_rowid FROM __raw GROUP BY ALL)
        SELECT {", ".join(f"r.{c}" for c in columns)}, f.partition_date,
            f.source_file AS _source_file, r.rowid - first_row.first_rowid + 2 AS _source_line,
            CAST(now() AS TIMESTAMP) AS _ingested_at,
            CAST(hash({", ".join(f"r.{c}" for c in columns)}) AS VARCHAR) AS _row_hash
        FROM __raw AS r JOIN first_row USING (filename) JOIN __files AS f USING (filename)
        """
    )
    con.execute("DROP TABLE __raw")
    return columns


def _utf8_lossy_copy(con: duckdb.DuckDBPyConnection, layout: BenchLayout, path: Path) -> str:
    """``path`` itself when it is UTF-8, else a copy with U+FFFD for the undecodable bytes,
    registered in ``__files`` under the original's partition and name."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return str(path)
    except UnicodeDecodeError:
        pass
    copy = layout.run_dir("duckdb") / "utf8" / path.relative_to(layout.landing)
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(data.decode("utf-8", errors="replace"), encoding="utf-8")
    con.execute(
        "INSERT INTO __files SELECT ?, partition_date, source_file, file_rank FROM __files "
        "WHERE filename = ?",
        [str(copy), str(path)],
    )
    return str(copy)


# --------------------------------------------------------------------------------------------
# Silver


class _Delivered:
    """SQL for a dataset's delivered values.

    Every delivered column is carried as ``<column>__raw`` (so a quarantined row's record can be
    rebuilt under its delivered names), a model column delivered under an alias reads all of its
    names (``unit_price`` or, after the drift, ``price``), and the drift columns become the
    ``_extra_columns`` JSON that silver publishes.
    """

    def __init__(self, dataset: str, columns: Sequence[str]) -> None:
        self.dataset = dataset
        self.columns = list(columns)
        aliases = m.ALIASES.get(dataset, {})
        model = m.DELIVERED[dataset]
        self.extras = [c for c in columns if c not in model and c not in aliases]
        self.sources = {
            c: [s for s in (c, *(a for a, t in aliases.items() if t == c)) if s in columns]
            for c in model
        }

    def raw(self, column: str, *, bronze: bool = False) -> str:
        """The delivered text of model column ``column``, whichever name it came under (from
        the bronze row itself with ``bronze``, else from the ``__raw`` columns)."""
        sources = [f"b.{s}" if bronze else f"{s}__raw" for s in self.sources[column]]
        if not sources:
            return "CAST(NULL AS VARCHAR)"
        return sources[0] if len(sources) == 1 else f"coalesce({', '.join(sources)})"

    def select(self) -> str:
        """Lineage, the (file, line) sort key, the raw columns and the drift JSON."""
        raws = ", ".join(f"b.{c} AS {c}__raw" for c in self.columns)
        return (
            "b.partition_date, b._source_file, b._source_line, "
            f"f.file_rank * {_SORT_SHIFT} + b._source_line AS __sort_key, {raws}, "
            f"{_json_object(self.extras, prefix='b.', null_if_empty=True)} AS _extra_columns"
        )

    def source(self) -> str:
        return (
            f"{BRONZE}.{self.dataset} AS b JOIN (SELECT DISTINCT source_file, file_rank "
            "FROM __files) AS f ON f.source_file = b._source_file"
        )

    def record_json(self) -> str:
        """The delivered record as JSON, from the bronze row ``b`` (quarantined rows only)."""
        return _json_object(self.columns, prefix="b.")


def _json_object(columns: Sequence[str], *, prefix: str, null_if_empty: bool = False) -> str:
    """``{"col":"value",...}`` of the non-null values, as the platform writes it."""
    members = [
        f"CASE WHEN {prefix}{c} IS NOT NULL THEN '\"{c}\":' || to_json({prefix}{c}) END"
        for c in columns
    ]
    if not members:
        return "CAST(NULL AS VARCHAR)" if null_if_empty else "'{}'"
    body = f"concat_ws(',', {', '.join(members)})"
    if null_if_empty:
        return f"CASE WHEN {body} <> '' THEN '{{' || {body} || '}}' END"
    return f"'{{' || {body} || '}}'"


@dataclass(frozen=True)
class _Dataset:
    """How one silver dataset is split: its typed query, rule conditions (SQL over the typed
    columns and the ``__raw`` texts) and the typed columns it keeps after the split."""

    name: str
    bronze: str
    typed_sql: str
    rules: dict[str, str]
    keep: tuple[str, ...] = ()

    def bits(self) -> list[tuple[str, int]]:
        """Each rule's bit in ``__mask`` (every rule is evaluated on every row, as the
        platform's split does, so the checks can count failures per rule)."""
        return [(r.id, 1 << i) for i, r in enumerate(m.ROW_RULES[self.name])]

    def columns(self) -> list[str]:
        published = [c for c in m.PUBLISHED_COLUMNS[self.name] if c not in m.LINEAGE]
        wanted = [*m.LINEAGE, "__sort_key", *published, *self.keep, "_extra_columns"]
        return list(dict.fromkeys(wanted))


def _failed_list(bits: Sequence[tuple[str, int]], first: str | None = None) -> str:
    items = [f"CASE WHEN __mask & {bit} <> 0 THEN {_sql_string(r)} END" for r, bit in bits]
    if first:
        items.insert(0, first)
    return f"list_filter([{', '.join(items)}], x -> x IS NOT NULL)"


def _decide(con: duckdb.DuckDBPyConnection, ds: _Dataset) -> None:
    """``__decided_<dataset>``: the kept typed columns, ``__mask`` (failing rules), and
    ``rule_id``: NULL when published, else the first failing error rule in contract order or,
    for a later copy of a passing primary key, the duplicate rule (``__kept`` = the sort key of
    the row that was kept)."""
    bits = ds.bits()
    mask = " + ".join(f"CASE WHEN {ds.rules[r]} THEN {bit} ELSE 0 END" for r, bit in bits)
    errors = [(r, bit) for r, bit in bits if r in m.error_rules(ds.name)]
    first = " ".join(f"WHEN __mask & {bit} <> 0 THEN {_sql_string(r)}" for r, bit in errors)
    key = ", ".join(m.PRIMARY_KEYS[ds.name])
    duplicate = _sql_string(m.duplicate_rule(ds.name))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __decided_{ds.name} AS
        SELECT * EXCLUDE (__rule, __kept),
            CASE WHEN __rule IS NOT NULL THEN __rule WHEN __sort_key <> __kept THEN {duplicate}
                END AS rule_id,
            CASE WHEN __rule IS NULL AND __sort_key <> __kept THEN __kept END AS __kept
        FROM (
            SELECT *, min(__sort_key) OVER (PARTITION BY {key}, __rule IS NULL) AS __kept
            FROM (
                SELECT *, CASE {first} END AS __rule
                FROM (SELECT {", ".join(ds.columns())}, {mask} AS __mask FROM ({ds.typed_sql}))
            )
        )
        """
    )


def _publish(con: duckdb.DuckDBPyConnection, ds: _Dataset, record_json: str) -> None:
    """The published table and the quarantine table from ``__decided_<dataset>``."""
    published = [c for c in m.PUBLISHED_COLUMNS[ds.name] if c != "partition_date"]
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {SILVER}.{ds.name} AS
        SELECT partition_date, {", ".join(published)}, _source_file, _source_line, _extra_columns
        FROM __decided_{ds.name} WHERE rule_id IS NULL
        """
    )
    bits = ds.bits()
    warnings = [(r.id, bit) for r, (_, bit) in zip(m.ROW_RULES[ds.name], bits, strict=True)]
    warnings = [(r, bit) for r, bit in warnings if r not in m.error_rules(ds.name)]
    duplicate = _sql_string(m.duplicate_rule(ds.name))
    location = "' (' || d._source_file || ' line ' || CAST(d._source_line AS VARCHAR) || ')'"
    key_text = " || ', ' || ".join(
        f"'{c}=' || coalesce(CAST(d.{c} AS VARCHAR), 'null')" for c in m.PRIMARY_KEYS[ds.name]
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {SILVER}.{ds.name}_quarantine AS
        SELECT d.partition_date, d.rule_id,
            CASE WHEN d.rule_id = {duplicate} THEN {_failed_list(warnings, first=duplicate)}
                ELSE {_failed_list(bits)} END AS failed_rules,
            'error' AS severity,
            CASE WHEN d.rule_id = {duplicate}
                THEN d.rule_id || ': duplicate of ' || {key_text} || ' kept from '
                     || kept.source_file || ' line ' || CAST(d.__kept % {_SORT_SHIFT} AS VARCHAR)
                     || {location}
                ELSE d.rule_id || ': rejected' || {location} END AS reason,
            d._source_file, d._source_line, {record_json} AS raw_record,
            CAST(now() AS TIMESTAMP) AS _quarantined_at
        FROM __decided_{ds.name} AS d
        JOIN {BRONZE}.{ds.bronze} AS b
            ON b._source_file = d._source_file AND b._source_line = d._source_line
        LEFT JOIN (SELECT DISTINCT file_rank, source_file FROM __files) AS kept
            ON kept.file_rank = d.__kept // {_SORT_SHIFT}
        WHERE d.rule_id IS NOT NULL
        """
    )


def _silver(con: duckdb.DuckDBPyConnection, bronze_columns: dict[str, list[str]]) -> None:
    fx = _Delivered("fx_rates", bronze_columns["fx_rates"])
    _split(con, _Dataset("fx_rates", "fx_rates", _typed_fx(fx), FX_RULES), fx)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE __rates AS
        SELECT partition_date, currency, usd_per_unit AS rate FROM {SILVER}.fx_rates
        WHERE regexp_full_match(currency, '[A-Z]{{3}}') AND usd_per_unit > 0
        """
    )
    customers = _Delivered("customers", bronze_columns["customers"])
    _split(
        con,
        _Dataset("customers", "customers", _typed_customers(customers), CUSTOMER_RULES),
        customers,
    )
    products = _Delivered("products", bronze_columns["products"])
    _split(
        con, _Dataset("products", "products", _typed_products(products), PRODUCT_RULES), products
    )
    lines = _Delivered("orders", bronze_columns["orders"])
    header_fields = ("currency", "order_ts", "order_date", "customer_id", "status")
    _split(
        con,
        _Dataset(
            "order_lines",
            "orders",
            _typed_order_lines(lines),
            LINE_RULES,
            keep=(*header_fields, "__order_ts_empty"),
        ),
        lines,
    )
    # A header's record is its first line's, so the quarantine joins bronze orders again.
    _split(con, _Dataset("orders", "orders", TYPED_ORDERS, ORDER_RULES), lines)


def _split(con: duckdb.DuckDBPyConnection, ds: _Dataset, delivered: _Delivered) -> None:
    _decide(con, ds)
    _publish(con, ds, delivered.record_json())


def _typed_fx(d: _Delivered) -> str:
    return f"""
        SELECT *, normalise_currency(currency__raw) AS currency,
            parse_number(usd_per_unit__raw) AS usd_per_unit,
            parse_date(rate_date__raw) AS rate_date
        FROM (SELECT {d.select()} FROM {d.source()})
    """


FX_RULES = {
    "fx_rates.currency.required": "is_empty(currency__raw)",
    "fx_rates.currency.pattern": "NOT coalesce(regexp_full_match(currency, '[A-Z]{3}'), true)",
    "fx_rates.usd_per_unit.required": "is_empty(usd_per_unit__raw)",
    "fx_rates.usd_per_unit.type": "NOT is_empty(usd_per_unit__raw) AND usd_per_unit IS NULL",
    "fx_rates.usd_per_unit.range": "coalesce(usd_per_unit <= 0, false)",
}


def _typed_customers(d: _Delivered) -> str:
    return f"""
        SELECT *, clean_text(customer_id__raw) AS customer_id,
            clean_text(email__raw) AS email, clean_text(full_name__raw) AS full_name,
            upper(clean_text(country__raw)) AS country,
            lower(clean_text(segment__raw)) AS segment,
            parse_date(signup_date__raw) AS signup_date,
            parse_ts(updated_at__raw) AS updated_at
        FROM (SELECT {d.select()} FROM {d.source()})
    """


CUSTOMER_RULES = {
    "customers.customer_id.required": "is_empty(customer_id__raw)",
    "customers.customer_id.pattern": (
        r"NOT coalesce(regexp_full_match(customer_id, 'C\d{6}'), true)"
    ),
    "customers.email.pattern": (
        r"NOT coalesce(regexp_full_match(email, '[^@\s]+@[^@\s]+\.[^@\s]+'), true)"
    ),
    "customers.full_name.encoding": (
        f"coalesce(contains(full_name__raw, {_sql_string(m.REPLACEMENT_CHARACTER)}), false)"
    ),
    "customers.country.pattern": "NOT coalesce(regexp_full_match(country, '[A-Z]{2}'), true)",
    "customers.segment.valid_values": f"coalesce(segment NOT IN {tuple(m.SEGMENTS)}, false)",
    "customers.signup_date.type": "NOT is_empty(signup_date__raw) AND signup_date IS NULL",
    "customers.updated_at.required": "is_empty(updated_at__raw)",
    "customers.updated_at.type": "NOT is_empty(updated_at__raw) AND updated_at IS NULL",
}


def _typed_products(d: _Delivered) -> str:
    return f"""
        SELECT *, round_cents(list_price * rate) AS list_price_usd, rate IS NOT NULL AS _known_rate
        FROM (
            SELECT t.*, CASE WHEN t.currency = 'USD' THEN 1.0 ELSE r.rate END AS rate
            FROM (
                SELECT *, clean_text(product_id__raw) AS product_id,
                    clean_text(product_name__raw) AS product_name,
                    clean_text(category__raw) AS category,
                    {d.raw("list_price")} AS list_price_usd__raw,
                    parse_number(list_price__raw) AS list_price,
                    normalise_currency(currency__raw) AS currency
                FROM (SELECT {d.select()} FROM {d.source()})
            ) AS t
            LEFT JOIN __rates AS r USING (partition_date, currency)
        )
    """


PRODUCT_RULES = {
    "products.product_id.required": "is_empty(product_id__raw)",
    "products.product_id.pattern": r"NOT coalesce(regexp_full_match(product_id, 'P\d{5}'), true)",
    "products.product_name.required": "is_empty(product_name__raw)",
    "products.list_price_usd.known_rate": "NOT _known_rate",
    "products.list_price_usd.required": "is_empty(list_price_usd__raw)",
    "products.list_price_usd.type": "NOT is_empty(list_price_usd__raw) AND list_price_usd IS NULL",
    "products.list_price_usd.range": (
        "coalesce(list_price_usd <= 0 OR list_price_usd > 10000, false)"
    ),
}


def _typed_order_lines(d: _Delivered) -> str:
    # Staged so each text is cleaned and parsed once (a macro repeats its argument).
    return f"""
        SELECT *, round_cents(quantity * unit_price_usd) AS line_amount_usd,
            coalesce(order_date = partition_date, false) AS _in_partition,
            is_empty(order_ts__raw) AS __order_ts_empty
        FROM (
            SELECT *, round_cents(unit_price_local * rate) AS unit_price_usd,
                CAST(order_ts AS DATE) AS order_date
            FROM (
                SELECT t.* EXCLUDE (__line_no, __quantity),
                    integral(__line_no) AS line_no, integral(__quantity) AS quantity,
                    CASE WHEN t.currency = 'USD' THEN 1.0 ELSE r.rate END AS rate
                FROM (
                    SELECT * EXCLUDE (__line_no_c, __quantity_c, __price_c),
                        clean_text(order_id__raw) AS order_id,
                        parse_compact_number(__line_no_c) AS __line_no,
                        clean_text(product_id__raw) AS product_id,
                        parse_compact_number(__quantity_c) AS __quantity,
                        parse_compact_number(__price_c) AS unit_price_local,
                        normalise_currency(currency__raw) AS currency,
                        parse_ts(order_ts__raw) AS order_ts,
                        clean_text(customer_id__raw) AS customer_id,
                        lower(clean_text(status__raw)) AS status
                    FROM (
                        SELECT *, number_compact(line_no__raw) AS __line_no_c,
                            number_compact(quantity__raw) AS __quantity_c,
                            number_compact(unit_price_local__raw) AS __price_c
                        FROM (
                            SELECT {d.select()},
                                {d.raw("unit_price", bronze=True)} AS unit_price_local__raw
                            FROM {d.source()}
                        )
                    )
                ) AS t
                LEFT JOIN __rates AS r USING (partition_date, currency)
            )
        )
    """


LINE_RULES = {
    "order_lines.order_id.required": "is_empty(order_id__raw)",
    "order_lines.order_id.pattern": r"NOT coalesce(regexp_full_match(order_id, 'O\d{9}'), true)",
    "order_lines.line_no.required": "is_empty(line_no__raw)",
    "order_lines.line_no.type": "NOT is_empty(line_no__raw) AND line_no IS NULL",
    "order_lines.line_no.range": "coalesce(line_no < 1, false)",
    "order_lines.product_id.required": "is_empty(product_id__raw)",
    "order_lines.quantity.required": "is_empty(quantity__raw)",
    "order_lines.quantity.type": "NOT is_empty(quantity__raw) AND quantity IS NULL",
    "order_lines.quantity.range": "coalesce(quantity < 1 OR quantity > 100, false)",
    "order_lines.unit_price_local.required": "is_empty(unit_price_local__raw)",
    "order_lines.unit_price_local.type": (
        "NOT is_empty(unit_price_local__raw) AND unit_price_local IS NULL"
    ),
    "order_lines.unit_price_local.range": (
        "coalesce(unit_price_local <= 0 OR unit_price_local > 100000, false)"
    ),
    "order_lines.order_ts.in_partition": "NOT _in_partition",
    "order_lines.currency.known_rate": "rate IS NULL",
}

# One header per delivered order id and day, from *all* its delivered lines: fields of the first
# line (by file, line), totals of its published lines, and complete only if every delivered line
# number has a published line in that day (a line with no number never has one).
TYPED_ORDERS = """
    SELECT h.partition_date, h.order_id, l.customer_id, l.order_ts, l.order_date, l.status,
        l.currency, h.order_total_local, h.order_total_usd, h.line_count,
        l._source_file, l._source_line, l.__sort_key, l._extra_columns, l.__order_ts_empty,
        coalesce(l.order_date = h.partition_date, false) AS _in_partition,
        h._lines_complete
    FROM (
        SELECT partition_date, order_id, min(__sort_key) AS __first_key,
            count(*) = count(line_no)
                AND count(DISTINCT line_no)
                    = count(DISTINCT line_no) FILTER (WHERE rule_id IS NULL)
                AS _lines_complete,
            round_cents(sum(quantity * unit_price_local) FILTER (WHERE rule_id IS NULL))
                AS order_total_local,
            round_cents(sum(line_amount_usd) FILTER (WHERE rule_id IS NULL)) AS order_total_usd,
            CAST(count(*) FILTER (WHERE rule_id IS NULL) AS INTEGER) AS line_count
        FROM __decided_order_lines
        GROUP BY partition_date, order_id
    ) AS h
    JOIN __decided_order_lines AS l ON l.__sort_key = h.__first_key
"""

# The header's order_id and customer_id are their first line's cleaned texts, so "the delivered
# text is empty" is "the cleaned value is NULL"; order_ts keeps its own emptiness flag.
ORDER_RULES = {
    "orders.order_id.required": "order_id IS NULL",
    "orders.order_id.pattern": r"NOT coalesce(regexp_full_match(order_id, 'O\d{9}'), true)",
    "orders.customer_id.required": "customer_id IS NULL",
    "orders.order_ts.required": "__order_ts_empty",
    "orders.order_ts.type": "NOT __order_ts_empty AND order_ts IS NULL",
    "orders.order_ts.in_partition": "NOT _in_partition",
    "orders.status.valid_values": f"coalesce(status NOT IN {tuple(m.STATUSES)}, false)",
    "orders.currency.valid_values": (
        f"coalesce(currency NOT IN {tuple(m.ORDER_CURRENCIES)}, false)"
    ),
    "orders.lines.complete": "NOT _lines_complete",
}

# --------------------------------------------------------------------------------------------
# Gold: the dbt marts as plain SQL, in dependency order

_ORDERS = f"""(SELECT *, status IN {tuple(m.REVENUE_STATUSES)} AS is_revenue
    FROM {SILVER}.orders)"""

GOLD_SQL: tuple[tuple[str, str], ...] = (
    (
        "dim_date",
        f"""
        WITH bounds AS (SELECT min(order_date) AS first_day, max(order_date) AS last_day
                        FROM {SILVER}.orders),
        spine AS (
            SELECT CAST(unnest(generate_series(CAST(first_day AS TIMESTAMP),
                CAST(last_day AS TIMESTAMP), INTERVAL 1 DAY)) AS DATE) AS date_day
            FROM bounds WHERE first_day IS NOT NULL)
        SELECT CAST(strftime(date_day, '%Y%m%d') AS INTEGER) AS date_key, date_day,
            CAST(year(date_day) AS INTEGER) AS year, CAST(quarter(date_day) AS INTEGER) AS quarter,
            CAST(month(date_day) AS INTEGER) AS month, monthname(date_day) AS month_name,
            CAST(date_trunc('month', date_day) AS DATE) AS month_start,
            CAST(day(date_day) AS INTEGER) AS day_of_month,
            CAST(isodow(date_day) AS INTEGER) AS iso_day_of_week, dayname(date_day) AS day_name,
            CAST(weekofyear(date_day) AS INTEGER) AS iso_week, isodow(date_day) >= 6 AS is_weekend
        FROM spine
        """,
    ),
    (
        "dim_customer",
        f"""
        WITH changes AS (
            SELECT customer_id, email, country, segment, signup_date,
                coalesce(updated_at, CAST(partition_date AS TIMESTAMP)) AS changed_at
            FROM {SILVER}.customers
            QUALIFY row_number() OVER (
                PARTITION BY customer_id, coalesce(updated_at, CAST(partition_date AS TIMESTAMP))
                ORDER BY partition_date DESC, _source_file DESC, _source_line DESC) = 1),
        flagged AS (
            SELECT *, lag(customer_id) OVER c IS NULL
                OR email IS DISTINCT FROM lag(email) OVER c
                OR country IS DISTINCT FROM lag(country) OVER c
                OR segment IS DISTINCT FROM lag(segment) OVER c AS starts_version
            FROM changes WINDOW c AS (PARTITION BY customer_id ORDER BY changed_at)),
        versions AS (
            SELECT customer_id, email, country, segment, changed_at,
                row_number() OVER v AS version_number, lead(changed_at) OVER v AS next_version_at
            FROM flagged WHERE starts_version
            WINDOW v AS (PARTITION BY customer_id ORDER BY changed_at)),
        latest_signup AS (
            SELECT customer_id, signup_date FROM changes
            QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY changed_at DESC) = 1)
        SELECT surrogate_key(concat_ws('|', coalesce(CAST(v.customer_id AS VARCHAR), '<null>'),
                coalesce(CAST(v.changed_at AS VARCHAR), '<null>'))) AS customer_sk,
            v.customer_id, v.email, v.country, v.segment, s.signup_date,
            CAST(v.version_number AS INTEGER) AS version_number, v.changed_at,
            CASE WHEN v.version_number = 1 THEN TIMESTAMP '1900-01-01 00:00:00'
                ELSE v.changed_at END AS valid_from,
            coalesce(v.next_version_at, TIMESTAMP '9999-12-31 00:00:00') AS valid_to,
            v.next_version_at IS NULL AS is_current
        FROM versions AS v JOIN latest_signup AS s USING (customer_id)
        UNION ALL
        SELECT -1, 'unknown', NULL, NULL, NULL, NULL, 0, NULL,
            TIMESTAMP '1900-01-01 00:00:00', TIMESTAMP '9999-12-31 00:00:00', true
        """,
    ),
    (
        "dim_product",
        f"""
        WITH latest_catalog AS (SELECT max(partition_date) AS latest_catalog_date
                                FROM {SILVER}.products),
        latest AS (
            SELECT *, min(partition_date) OVER (PARTITION BY product_id) AS first_seen_date,
                max(partition_date) OVER (PARTITION BY product_id) AS last_seen_date
            FROM {SILVER}.products
            QUALIFY row_number() OVER (PARTITION BY product_id
                ORDER BY partition_date DESC, _source_file DESC, _source_line DESC) = 1)
        SELECT surrogate_key(coalesce(CAST(product_id AS VARCHAR), '<null>')) AS product_sk,
            product_id, product_name, category, list_price_usd, first_seen_date, last_seen_date,
            last_seen_date = latest_catalog_date AS is_in_latest_catalog
        FROM latest CROSS JOIN latest_catalog
        UNION ALL
        SELECT -1, 'unknown', NULL, NULL, NULL, NULL, NULL, false
        """,
    ),
    (
        "fct_orders",
        f"""
        WITH lines AS (
            SELECT l.order_id, l.line_no, o.customer_id, o.order_ts, o.order_date,
                o.partition_date, o.status, o.is_revenue, o.currency, l.product_id, l.quantity,
                l.unit_price_usd, l.line_amount_usd
            FROM {SILVER}.order_lines AS l JOIN {_ORDERS} AS o ON l.order_id = o.order_id)
        SELECT l.order_id || '-' || CAST(l.line_no AS VARCHAR) AS order_line_id, l.order_id,
            l.line_no, coalesce(c.customer_sk, -1) AS customer_sk,
            coalesce(p.product_sk, -1) AS product_sk,
            CAST(strftime(l.order_date, '%Y%m%d') AS INTEGER) AS date_key, l.customer_id,
            l.product_id, l.order_ts, l.order_date, l.partition_date, l.status, l.is_revenue,
            l.currency, l.quantity, l.unit_price_usd, l.line_amount_usd
        FROM lines AS l
        LEFT JOIN {GOLD}.dim_customer AS c ON c.customer_sk <> -1
            AND l.customer_id = c.customer_id
            AND l.order_ts >= c.valid_from AND l.order_ts < c.valid_to
        LEFT JOIN {GOLD}.dim_product AS p ON p.product_sk <> -1 AND l.product_id = p.product_id
        """,
    ),
    (
        "daily_revenue",
        f"""
        WITH per_day AS (
            SELECT order_date, count(*) AS orders,
                count(*) FILTER (WHERE is_revenue) AS revenue_orders,
                round(coalesce(sum(order_total_usd) FILTER (WHERE is_revenue), 0), 2) AS revenue_usd
            FROM {_ORDERS} GROUP BY order_date),
        every_day AS (
            SELECT d.date_day, d.date_key, coalesce(p.orders, 0) AS orders,
                coalesce(p.revenue_orders, 0) AS revenue_orders,
                coalesce(p.revenue_usd, 0) AS revenue_usd
            FROM {GOLD}.dim_date AS d LEFT JOIN per_day AS p ON d.date_day = p.order_date)
        SELECT *,
            round(sum(revenue_usd) OVER (ORDER BY date_day
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 2) AS cumulative_revenue_usd,
            avg(revenue_usd) OVER (ORDER BY date_day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)
                AS revenue_7d_avg_usd
        FROM every_day
        """,
    ),
    (
        "top_products_daily",
        f"""
        WITH product_days AS (
            SELECT o.order_date AS date_day, l.product_id,
                round(sum(l.line_amount_usd), 2) AS revenue_usd,
                CAST(sum(l.quantity) AS BIGINT) AS units_sold,
                count(DISTINCT l.order_id) AS orders
            FROM {SILVER}.order_lines AS l JOIN {_ORDERS} AS o ON l.order_id = o.order_id
            WHERE o.is_revenue
            GROUP BY o.order_date, l.product_id),
        ranked AS (
            SELECT *, row_number() OVER (PARTITION BY date_day
                ORDER BY revenue_usd DESC, product_id ASC) AS product_rank
            FROM product_days QUALIFY product_rank <= 5)
        SELECT r.date_day, CAST(strftime(r.date_day, '%Y%m%d') AS INTEGER) AS date_key,
            CAST(r.product_rank AS INTEGER) AS product_rank,
            coalesce(p.product_sk, -1) AS product_sk, r.product_id, r.revenue_usd,
            r.units_sold, r.orders
        FROM ranked AS r
        LEFT JOIN {GOLD}.dim_product AS p ON p.product_sk <> -1 AND r.product_id = p.product_id
        """,
    ),
    (
        "customer_sessions",
        f"""
        WITH gaps AS (
            SELECT order_id, customer_id, order_ts, is_revenue, order_total_usd,
                lag(order_ts) OVER (PARTITION BY customer_id ORDER BY order_ts, order_id)
                    AS previous_order_ts
            FROM {_ORDERS}),
        numbered AS (
            SELECT *, sum(CASE WHEN previous_order_ts IS NULL THEN 1
                    WHEN order_ts - previous_order_ts
                        > INTERVAL {m.SESSION_GAP_MINUTES} MINUTES THEN 1 ELSE 0 END)
                OVER (PARTITION BY customer_id ORDER BY order_ts, order_id
                      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
            FROM gaps),
        sessions AS (
            SELECT customer_id, CAST(session_number AS INTEGER) AS session_number,
                min(order_ts) AS session_start, max(order_ts) AS session_end,
                count(*) AS orders,
                round(coalesce(sum(order_total_usd) FILTER (WHERE is_revenue), 0), 2) AS revenue_usd
            FROM numbered GROUP BY customer_id, session_number)
        SELECT customer_id || '-' || CAST(session_number AS VARCHAR) AS session_id, customer_id,
            session_number, session_start, session_end,
            CAST(session_start AS DATE) AS session_date,
            date_diff('second', session_start, session_end) / 60.0 AS duration_minutes,
            orders, revenue_usd
        FROM sessions
        """,
    ),
    (
        "monthly_retention",
        f"""
        WITH active AS (
            SELECT DISTINCT customer_id,
                CAST(date_trunc('month', order_date) AS DATE) AS activity_month
            FROM {SILVER}.orders),
        cohorts AS (SELECT customer_id, min(activity_month) AS cohort_month
                    FROM active GROUP BY customer_id),
        sizes AS (SELECT cohort_month, count(*) AS cohort_size FROM cohorts GROUP BY ALL),
        last_loaded AS (SELECT max(activity_month) AS last_month FROM active),
        cohort_months AS (
            SELECT s.cohort_month, s.cohort_size,
                CAST(unnest(range(0, date_diff('month', s.cohort_month, l.last_month) + 1))
                    AS INTEGER) AS month_offset
            FROM sizes AS s CROSS JOIN last_loaded AS l),
        retained AS (
            SELECT c.cohort_month,
                CAST(date_diff('month', c.cohort_month, a.activity_month) AS INTEGER)
                    AS month_offset,
                count(*) AS retained_customers
            FROM active AS a JOIN cohorts AS c USING (customer_id) GROUP BY ALL)
        SELECT m.cohort_month, m.month_offset,
            CAST(m.cohort_month + to_months(m.month_offset) AS DATE) AS activity_month,
            m.cohort_size, coalesce(r.retained_customers, 0) AS retained_customers,
            m.cohort_size - coalesce(r.retained_customers, 0) AS churned_customers,
            coalesce(r.retained_customers, 0) / m.cohort_size AS retention_rate,
            1 - coalesce(r.retained_customers, 0) / m.cohort_size AS churn_rate
        FROM cohort_months AS m
        LEFT JOIN retained AS r USING (cohort_month, month_offset)
        """,
    ),
    (
        "rfm_segments",
        f"""
        WITH as_of AS (SELECT max(order_date) AS as_of_date FROM {SILVER}.orders),
        customers AS (
            SELECT customer_id, max(order_date) AS last_order_date, count(*) AS frequency,
                round(sum(order_total_usd), 2) AS monetary_usd
            FROM {_ORDERS} WHERE is_revenue GROUP BY customer_id),
        measured AS (
            SELECT c.*, a.as_of_date,
                date_diff('day', c.last_order_date, a.as_of_date) AS recency_days
            FROM customers AS c CROSS JOIN as_of AS a),
        scored AS (
            SELECT *,
                CAST(1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1))
                    // count(*) OVER () AS INTEGER) AS recency_score,
                CAST(1 + (5 * (rank() OVER (ORDER BY frequency ASC) - 1))
                    // count(*) OVER () AS INTEGER) AS frequency_score,
                CAST(1 + (5 * (rank() OVER (ORDER BY monetary_usd ASC) - 1))
                    // count(*) OVER () AS INTEGER) AS monetary_score
            FROM measured)
        SELECT customer_id, as_of_date, last_order_date, recency_days, frequency, monetary_usd,
            recency_score, frequency_score, monetary_score,
            CAST(recency_score AS VARCHAR) || CAST(frequency_score AS VARCHAR)
                || CAST(monetary_score AS VARCHAR) AS rfm_code,
            CASE WHEN recency_score >= 4 AND frequency_score >= 4 THEN 'champions'
                WHEN recency_score >= 3 AND frequency_score >= 3 THEN 'loyal'
                WHEN recency_score >= 4 THEN 'new_customers'
                WHEN recency_score <= 2 AND frequency_score >= 3 THEN 'at_risk'
                WHEN recency_score <= 2 THEN 'hibernating'
                ELSE 'needs_attention' END AS segment
        FROM scored
        """,
    ),
)

# --------------------------------------------------------------------------------------------
# Checks

_ROWS_IN = {
    "fx_rates": f"{BRONZE}.fx_rates",
    "customers": f"{BRONZE}.customers",
    "products": f"{BRONZE}.products",
    "order_lines": f"{BRONZE}.orders",
    "orders": "__decided_orders",
}
# What the published table guarantees (the pandera schema's value rules and not-nulls).
_PUBLISHED_RULES = {
    "fx_rates": ["currency IS NULL", "NOT regexp_full_match(currency, '[A-Z]{3}')",
                 "usd_per_unit IS NULL", "usd_per_unit <= 0"],
    "customers": ["customer_id IS NULL", r"NOT regexp_full_match(customer_id, 'C\d{6}')",
                  "NOT regexp_full_match(country, '[A-Z]{2}')",
                  f"segment NOT IN {tuple(m.SEGMENTS)}", "updated_at IS NULL"],
    "products": ["product_id IS NULL", r"NOT regexp_full_match(product_id, 'P\d{5}')",
                 "product_name IS NULL", "list_price_usd IS NULL",
                 "list_price_usd <= 0 OR list_price_usd > 10000"],
    "order_lines": ["order_id IS NULL", r"NOT regexp_full_match(order_id, 'O\d{9}')",
                    "line_no IS NULL OR line_no < 1", "product_id IS NULL",
                    "quantity IS NULL OR quantity < 1 OR quantity > 100",
                    "unit_price_local IS NULL OR unit_price_local <= 0 "
                    "OR unit_price_local > 100000"],
    "orders": ["order_id IS NULL", r"NOT regexp_full_match(order_id, 'O\d{9}')",
               "customer_id IS NULL", "order_ts IS NULL",
               f"status NOT IN {tuple(m.STATUSES)}",
               f"currency NOT IN {tuple(m.ORDER_CURRENCIES)}"],
}  # fmt: skip
_REFERENCE_WARNINGS = {
    "order_lines.product_id.known_product": f"""
        SELECT count(*) FROM {SILVER}.order_lines AS l WHERE l.product_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {SILVER}.products AS p
            WHERE p.product_id = l.product_id AND p.partition_date <= l.partition_date)""",
    "orders.customer_id.known_customer": f"""
        SELECT count(*) FROM {SILVER}.orders AS o WHERE o.customer_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {SILVER}.customers AS c
            WHERE c.customer_id = o.customer_id AND c.partition_date <= o.partition_date)""",
}


def _checks(con: duckdb.DuckDBPyConnection, bench_range: BenchRange) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    def record(name: str, passed: bool, severity: str = "error", **detail: Any) -> None:
        results.append({"name": name, "passed": bool(passed), "severity": severity, **detail})

    def scalar(sql: str) -> int:
        row = con.execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    for dataset in m.ROW_RULES:
        specs = m.ROW_RULES[dataset]
        counts = con.execute(
            "SELECT count(*), "
            + ", ".join(f"count_if(__mask & {1 << i} <> 0)" for i in range(len(specs)))
            + f" FROM __decided_{dataset}"
        ).fetchone()
        assert counts is not None
        rows = int(counts[0])
        for spec, failing in zip(specs, counts[1:], strict=True):
            record(
                spec.id,
                failing * 100 <= spec.threshold_pct * rows,
                spec.severity,
                failing=int(failing),
                rows=rows,
            )
        table = f"{SILVER}.{dataset}"
        published = scalar(f"SELECT count(*) FROM {table}")
        quarantined = scalar(f"SELECT count(*) FROM {table}_quarantine")
        rows_in = scalar(f"SELECT count(*) FROM {_ROWS_IN[dataset]}")
        record(f"{dataset}.rows_reconcile", rows_in == published + quarantined, rows_in=rows_in)
        key = ", ".join(m.PRIMARY_KEYS[dataset])
        duplicated = scalar(
            f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)"
        )
        record(f"{dataset}.primary_key_unique", duplicated == 0, duplicated=duplicated)
        violations = con.execute(
            "SELECT "
            + ", ".join(f"count_if(coalesce({c}, false))" for c in _PUBLISHED_RULES[dataset])
            + f" FROM {table}"
        ).fetchone()
        record(f"{dataset}.schema", not any(violations or ()))
        empty_days = scalar(
            f"SELECT count(*) FROM (SELECT unnest(CAST({_list(bench_range.keys)} AS DATE[])) "
            f"AS d) WHERE d NOT IN (SELECT DISTINCT partition_date FROM {table})"
        )
        record(f"{dataset}.row_count", empty_days == 0, "warning")
        drift = scalar(f"SELECT count(*) FROM {table} WHERE _extra_columns IS NOT NULL")
        record(f"{dataset}.unexpected_columns", drift == 0, "warning", rows=drift)
    for name, sql in _REFERENCE_WARNINGS.items():
        record(name, scalar(sql) == 0, "warning")
    for test in GOLD_TESTS:
        record(f"gold.{test.name}", scalar(failing_rows_sql(test, GOLD)) == 0)
    return results
