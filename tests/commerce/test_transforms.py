"""Commerce typing transforms: each delivered format on hand-written rows, then a generated range
typed and split by MODEL.md's rules reproduces the generator's ground truth exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from assets.commerce import transforms as t
from assets.commerce.generator import generate
from data_products.lib.contracts.expressions import delivered_record

DAY = date(2026, 1, 3)
INGESTED = datetime(2026, 1, 3, 23, 0)


def bronze(rows: list[dict[str, str | None]], day: date = DAY, file: str = "x.csv") -> pl.DataFrame:
    """A bronze-like frame: all delivered columns as text plus the ingest metadata."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    frame = pl.DataFrame(
        {c: [row.get(c) for row in rows] for c in columns}, schema=dict.fromkeys(columns, pl.Utf8)
    )
    return frame.with_columns(
        partition_date=pl.lit(day),
        _source_file=pl.lit(f"commerce/{day.isoformat()}/{file}"),
        _source_line=pl.int_range(2, frame.height + 2, dtype=pl.Int64),
        _ingested_at=pl.lit(INGESTED),
        _row_hash=pl.lit("h"),
    )


def bronze_files(landing: Path, pattern: str) -> pl.DataFrame:
    """Every matching CSV read as delivered (utf8-lossy, all text), like the bronze asset."""
    frames = []
    for path in sorted((landing / "commerce").glob(f"*/{pattern}")):
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
        frames.append(
            frame.with_columns(
                partition_date=pl.lit(date.fromisoformat(path.parent.name)),
                _source_file=pl.lit(path.relative_to(landing).as_posix()),
                _source_line=pl.int_range(2, frame.height + 2, dtype=pl.Int64),
                _ingested_at=pl.lit(INGESTED),
                _row_hash=pl.lit("h"),
            )
        )
    return pl.concat(frames, how="diagonal")


def record(typed: pl.DataFrame, row: int) -> dict[str, str]:
    """The delivered record the quarantine would show for ``row`` of a typed frame."""
    return json.loads(typed.select(delivered_record(typed.columns)).item(row, 0))


def apply(expr: Callable[[pl.Expr], pl.Expr], values: list[str | None]) -> list[object]:
    return pl.select(expr(pl.lit(pl.Series(values, dtype=pl.Utf8)))).to_series().to_list()


FX = bronze(
    [
        {"rate_date": "2026-01-03", "currency": "EUR", "usd_per_unit": "1.10000000"},
        {"rate_date": "03/01/2026", "currency": "gbp", "usd_per_unit": "1.25"},
        {"rate_date": "2026-01-03", "currency": "JPY", "usd_per_unit": "0.00680000"},
        {"rate_date": "2026-01-03", "currency": "EUR", "usd_per_unit": "9.99"},  # re-delivered
    ],
    file="fx_rates.csv",
)


# -------------------------------------------------------------------------------- parsers
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.56", 1234.56),
        ("1,234.56", 1234.56),
        ("1.234,56", 1234.56),
        ("$1,234.56", 1234.56),
        ("€1.234,56", 1234.56),
        ("¥15,000.00", 15000.0),
        ("-12.50", -12.5),
        ("-$1,234.56", -1234.56),
        ("1,234,567.89", 1234567.89),
        ("1.234.567,89", 1234567.89),
        ("12,5", 12.5),
        ("1,234", 1234.0),
        ("  42 ", 42.0),
        ("0.00680004", 0.00680004),
        ("abc", None),
        ("1.2.3,4.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_number_reads_every_delivered_format(
    text: str | None, expected: float | None
) -> None:
    assert apply(t.parse_number, [text]) == [expected]


def test_parse_integer_accepts_integral_decimals_only() -> None:
    values = ["2", "2.0", " 7 ", "-3", "1.5", "0.5", "x", "", None, "99999999999"]
    assert apply(t.parse_integer, values) == [2, 2, 7, -3, None, None, None, None, None, None]
    assert pl.select(t.parse_integer(pl.lit("4"))).dtypes == [pl.Int32]


def test_parse_timestamp_reads_every_delivered_format_as_utc() -> None:
    values = [
        "2026-01-03T10:15:00Z",
        "2026-01-03 10:15:00",
        "03/01/2026 10:15",  # day first: 3 January
        "13/01/2026 23:59",
        "2026-01-03",
        "not a date",
        "",
        None,
        "2026-02-30 10:00:00",
    ]
    expected = [
        datetime(2026, 1, 3, 10, 15),
        datetime(2026, 1, 3, 10, 15),
        datetime(2026, 1, 3, 10, 15),
        datetime(2026, 1, 13, 23, 59),
        datetime(2026, 1, 3),
        None,
        None,
        None,
        None,
    ]
    assert apply(t.parse_timestamp, values) == expected


def test_parse_date_reads_dates_and_timestamps() -> None:
    values = ["2026-01-03", "03/01/2026", "2026-01-03T22:00:00Z", "31/12/2025 01:00", "soon", ""]
    expected = [DAY, DAY, DAY, date(2025, 12, 31), None, None]
    assert apply(t.parse_date, values) == expected


def test_currency_codes_are_normalised_but_unknown_ones_kept() -> None:
    values = [" eur ", "Gbp", "€", "$", "XXX", "", None]
    assert apply(t.normalise_currency, values) == ["EUR", "GBP", "EUR", "USD", "XXX", None, None]


# -------------------------------------------------------------------------------- datasets
def test_type_fx_rates_keeps_every_row_with_raw_text() -> None:
    fx = t.type_fx_rates(FX)
    assert fx["currency"].to_list() == ["EUR", "GBP", "JPY", "EUR"]
    assert fx["usd_per_unit"].to_list() == [1.1, 1.25, 0.0068, 9.99]
    assert fx["rate_date"].to_list() == [DAY] * 4
    assert fx["currency__raw"].to_list() == ["EUR", "gbp", "JPY", "EUR"]
    assert fx["_source_line"].to_list() == [2, 3, 4, 5]
    assert record(fx, 1) == {
        "rate_date": "03/01/2026",
        "currency": "gbp",
        "usd_per_unit": "1.25",
    }
    assert fx["_extra_columns"].null_count() == 4


def test_type_customers_parses_and_keeps_undecodable_text(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_bytes(
        b"customer_id,email,full_name,country,segment,signup_date,updated_at\n"
        b"C000001,a@example.com,J\xfcrgen M\xfcller,de,Business,03/01/2026,03/01/2026 10:15\n"
        b" C000002 ,b@example.com,Zo\xc3\xab Tanaka,JP,vip,2025-12-30,2026-01-03T08:00:00Z\n"
        b",c@example.com,Ann,Germany,gold,2026-01-03,not a date\n"
    )
    raw = pl.read_csv(csv, infer_schema=False, encoding="utf8-lossy")
    frame = raw.with_columns(
        partition_date=pl.lit(DAY),
        _source_file=pl.lit("commerce/2026-01-03/customers.csv"),
        _source_line=pl.int_range(2, raw.height + 2, dtype=pl.Int64),
        _ingested_at=pl.lit(INGESTED),
        _row_hash=pl.lit("h"),
    )
    customers = t.type_customers(frame)
    assert customers["customer_id"].to_list() == ["C000001", "C000002", None]
    assert customers["customer_id__raw"].to_list() == ["C000001", " C000002 ", None]
    assert "\ufffd" in customers["full_name"][0] and "\ufffd" in customers["full_name__raw"][0]
    assert customers["full_name"][1] == "Zoë Tanaka"
    assert customers["country"].to_list() == ["DE", "JP", "GERMANY"]
    assert customers["segment"].to_list() == ["business", "vip", "gold"]
    assert customers["signup_date"].to_list() == [DAY, date(2025, 12, 30), DAY]
    assert customers["updated_at"].to_list() == [
        datetime(2026, 1, 3, 10, 15),
        datetime(2026, 1, 3, 8, 0),
        None,
    ]
    assert customers["updated_at__raw"][2] == "not a date"
    assert customers.schema["updated_at"] == pl.Datetime("us")


def test_type_products_converts_with_that_days_rate() -> None:
    products = bronze(
        [
            {"product_id": "P00001", "product_name": "Mug", "category": "kitchen",
             "list_price": "1.234,56", "currency": "eur"},
            {"product_id": "P00002", "product_name": "Tent", "category": "outdoor",
             "list_price": "$19.99", "currency": "USD"},
            {"product_id": "P00003", "product_name": "Kettle", "category": "kitchen",
             "list_price": "¥4,500.00", "currency": "JPY"},
            {"product_id": "P00004", "product_name": "Lamp", "category": "home",
             "list_price": "n/a", "currency": "GBP"},
            {"product_id": "P00005", "product_name": "Scarf", "category": "apparel",
             "list_price": "10.00", "currency": "CHF"},
        ],
        file="products.csv",
    )  # fmt: skip
    typed = t.type_products(products, t.type_fx_rates(FX))
    assert typed["list_price"].to_list() == [1234.56, 19.99, 4500.0, None, 10.0]
    # first delivered EUR rate (1.10) wins over the re-delivered 9.99
    assert typed["list_price_usd"].to_list() == [1358.02, 19.99, 30.6, None, None]
    assert typed["list_price_usd__raw"].to_list() == ["1.234,56", "$19.99", "¥4,500.00", "n/a",
                                                       "10.00"]  # fmt: skip
    assert typed["_known_rate"].to_list() == [True, True, True, True, False]


def _order(**overrides: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "order_id": "O000000001",
        "line_no": "1",
        "order_ts": "2026-01-03T10:15:00Z",
        "customer_id": "C000001",
        "customer_email": "a@example.com",
        "product_id": "P00001",
        "quantity": "2",
        "unit_price": "1,234.56",
        "currency": "EUR",
        "status": "placed",
    }
    row.update(overrides)
    return row


def test_type_order_lines_handles_aliases_drift_and_flags() -> None:
    rows = [
        _order(),
        _order(line_no="2", quantity="3.0", unit_price=None, price="€10,00", coupon_code="VIP20"),
        _order(line_no="3", quantity="1.5"),
        _order(order_id="O000000002", currency="XXX"),
        _order(order_id="O000000003", order_ts="02/01/2026 23:50"),
        _order(order_id="O000000004", order_ts="not a date"),
        _order(order_id="O000000005", currency="usd", unit_price="$0.10", quantity="3"),
    ]
    lines = t.type_order_lines(bronze(rows, file="orders.csv"), t.type_fx_rates(FX))
    assert lines["quantity"].to_list() == [2, 3, None, 2, 2, 2, 3]
    assert lines["quantity__raw"][2] == "1.5"
    assert lines["unit_price_local"].to_list() == [1234.56, 10.0, 1234.56, 1234.56, 1234.56,
                                                   1234.56, 0.1]  # fmt: skip
    assert lines["unit_price_local__raw"][1] == "€10,00"
    assert lines["unit_price_usd"].to_list()[:2] == [1358.02, 11.0]
    assert lines["line_amount_usd"].to_list()[:2] == [2716.04, 33.0]
    assert lines["line_amount_usd"][2] is None
    assert lines["unit_price_usd"][6] == 0.1 and lines["line_amount_usd"][6] == 0.3
    assert lines["currency"].to_list()[3:] == ["XXX", "EUR", "EUR", "USD"]
    assert lines["_known_rate"].to_list() == [True, True, True, False, True, True, True]
    assert lines["unit_price_usd"][3] is None
    assert lines["_in_partition"].to_list() == [True, True, True, True, False, False, True]
    assert lines["order_date"][4] == date(2026, 1, 2)
    assert lines["_extra_columns"].to_list()[:2] == [None, '{"coupon_code":"VIP20"}']
    assert record(lines, 1) == {k: v for k, v in rows[1].items() if v is not None}
    assert lines.schema["line_no"] == pl.Int32 and lines.schema["quantity"] == pl.Int32
    assert "customer_email" not in lines.columns


def test_type_order_lines_of_a_day_without_rates_knows_only_usd() -> None:
    rows = [_order(currency="USD"), _order(line_no="2", currency="EUR")]
    no_rates = t.type_fx_rates(FX).clear()
    lines = t.type_order_lines(bronze(rows), no_rates)
    assert lines["_known_rate"].to_list() == [True, False]
    assert lines["unit_price_usd"].to_list() == [1234.56, None]


def test_empty_bronze_gives_an_empty_typed_frame() -> None:
    empty = bronze([_order()]).clear()
    lines = t.type_order_lines(empty, t.type_fx_rates(FX))
    assert lines.height == 0
    assert {"order_id", "_known_rate", "_in_partition", "order_id__raw"} <= set(lines.columns)
    headers = t.build_orders(lines, lines)
    assert headers.height == 0 and "_lines_complete" in headers.columns


def test_build_orders_takes_first_occurrence_and_checks_completeness() -> None:
    main = bronze(
        [
            _order(),  # O1 line 1
            _order(line_no="2", quantity="1", unit_price="10.00"),  # O1 line 2
            _order(order_id="O000000002", status="Shipped", quantity="2", unit_price="5.00",
                   currency="USD"),
            _order(order_id="O000000002", line_no="2", quantity="1000", currency="USD"),
            _order(order_id=None, customer_id="C000009"),
            _order(order_id="O000000003", customer_id=None, currency="GBP", unit_price="1.00"),
        ],
        file="orders.csv",
    )  # fmt: skip
    resent = bronze(
        [_order(line_no="2", quantity="1", unit_price="10.00", customer_id="C999999")],
        file="orders_resent.csv",
    )
    # the resent file is read first here: build_orders must still order by file, then line
    typed = t.type_order_lines(pl.concat([resent, main]), t.type_fx_rates(FX))
    published = typed.filter(
        pl.col("quantity").is_between(1, 100)
        & pl.col("order_id").is_not_null()
        & pl.col("_known_rate")
        & pl.col("_in_partition")
    ).unique(subset=["order_id", "line_no"], keep="first", maintain_order=True)
    headers = t.build_orders(typed, published)
    by_id = {row["order_id"]: row for row in headers.iter_rows(named=True)}
    assert list(by_id) == ["O000000001", "O000000002", None, "O000000003"]

    first = by_id["O000000001"]
    assert first["_source_file"] == "commerce/2026-01-03/orders.csv"
    assert first["_source_line"] == 2
    assert first["customer_id"] == "C000001"  # not the re-sent row's
    assert first["_lines_complete"] is True and first["_in_partition"] is True
    assert first["line_count"] == 2
    assert first["order_total_local"] == round(2 * 1234.56 + 10.0, 2)
    assert first["order_total_usd"] == round(2716.04 + 11.0, 2)
    assert first["order_ts"] == datetime(2026, 1, 3, 10, 15)
    assert first["order_date"] == DAY
    assert record(headers, 0)["line_no"] == "1"

    second = by_id["O000000002"]
    assert second["_lines_complete"] is False  # line 2 (quantity 1000) was not published
    assert second["status"] == "shipped" and second["status__raw"] == "Shipped"
    assert by_id[None]["_lines_complete"] is False
    assert by_id[None]["order_id__raw"] is None
    third = by_id["O000000003"]
    assert third["customer_id"] is None and third["_lines_complete"] is True
    assert headers.schema["line_count"] == pl.Int32


# -------------------------------------------------------------------------------- generated data
# MODEL.md's rules, as the contracts state them; enough to split typed frames like silver does.
RULES: dict[str, list[tuple[str, str, str]]] = {
    # (rule id, kind, column or flag)
    # kinds: required, type, encoding, flag, pattern:<re>, in:<a|b>, range:(lo,hi]
    "fx_rates": [
        ("fx_rates.currency.required", "required", "currency"),
        ("fx_rates.currency.pattern", "pattern:^[A-Z]{3}$", "currency"),
        ("fx_rates.usd_per_unit.required", "required", "usd_per_unit"),
        ("fx_rates.usd_per_unit.type", "type", "usd_per_unit"),
        ("fx_rates.usd_per_unit.range", "range:(0,)", "usd_per_unit"),
    ],
    "customers": [
        ("customers.customer_id.required", "required", "customer_id"),
        ("customers.customer_id.pattern", r"pattern:^C\d{6}$", "customer_id"),
        ("customers.email.required", "required", "email"),
        ("customers.full_name.encoding", "encoding", "full_name"),
        ("customers.country.pattern", "pattern:^[A-Z]{2}$", "country"),
        ("customers.segment.valid_values", "in:consumer|business|vip", "segment"),
        ("customers.signup_date.type", "type", "signup_date"),
        ("customers.updated_at.required", "required", "updated_at"),
        ("customers.updated_at.type", "type", "updated_at"),
    ],
    "products": [
        ("products.product_id.required", "required", "product_id"),
        ("products.product_id.pattern", r"pattern:^P\d{5}$", "product_id"),
        ("products.list_price_usd.type", "type", "list_price_usd"),
        ("products.list_price_usd.range", "range:(0,10000]", "list_price_usd"),
    ],
    "order_lines": [
        ("order_lines.order_id.required", "required", "order_id"),
        ("order_lines.line_no.type", "type", "line_no"),
        ("order_lines.product_id.required", "required", "product_id"),
        ("order_lines.quantity.required", "required", "quantity"),
        ("order_lines.quantity.type", "type", "quantity"),
        ("order_lines.quantity.range", "range:[1,100]", "quantity"),
        ("order_lines.unit_price_local.type", "type", "unit_price_local"),
        ("order_lines.unit_price_local.range", "range:(0,100000]", "unit_price_local"),
        ("order_lines.currency.known_rate", "flag", "_known_rate"),
        ("order_lines.order_ts.in_partition", "flag", "_in_partition"),
    ],
    "orders": [
        ("orders.order_id.required", "required", "order_id"),
        ("orders.order_id.pattern", r"pattern:^O\d{9}$", "order_id"),
        ("orders.customer_id.required", "required", "customer_id"),
        ("orders.order_ts.required", "required", "order_ts"),
        ("orders.order_ts.type", "type", "order_ts"),
        ("orders.status.valid_values", "in:placed|shipped|cancelled|returned", "status"),
        ("orders.currency.valid_values", "in:USD|EUR|GBP|JPY", "currency"),
        ("orders.order_ts.in_partition", "flag", "_in_partition"),
        ("orders.lines.complete", "flag", "_lines_complete"),
    ],
}
PRIMARY_KEYS = {
    "fx_rates": ["partition_date", "currency"],
    "customers": ["partition_date", "customer_id"],
    "products": ["partition_date", "product_id"],
    "order_lines": ["order_id", "line_no"],
    "orders": ["order_id"],
}


def _failing(kind: str, column: str) -> pl.Expr:
    value, raw = pl.col(column), pl.col(t.raw(column))
    empty = raw.is_null() | (raw.str.strip_chars() == "")
    if kind == "required":
        return empty
    if kind == "type":
        return ~empty & value.is_null()
    if kind == "encoding":
        return raw.str.contains("\ufffd", literal=True).fill_null(False)
    if kind == "flag":
        return ~value.fill_null(False)
    if kind.startswith("pattern:"):
        return (
            ~value.str.contains(kind.removeprefix("pattern:")).fill_null(True) & value.is_not_null()
        )
    if kind.startswith("in:"):
        return ~value.is_in(kind.removeprefix("in:").split("|")) & value.is_not_null()
    bounds = kind.removeprefix("range:")
    low, high = bounds[1:-1].split(",")
    failing = value < float(low) if bounds[0] == "[" else value <= float(low)
    if high:
        failing = failing | (value > float(high) if bounds[-1] == "]" else value >= float(high))
    return failing.fill_null(False)


def split(dataset: str, typed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(published, quarantined with failed_rules) the way the contracts split a typed frame."""
    checks = [
        pl.when(_failing(kind, column)).then(pl.lit(rule_id))
        for rule_id, kind, column in RULES[dataset]
    ]
    ranked = typed.sort("partition_date", "_source_file", "_source_line").with_columns(
        failed=pl.concat_list(checks).list.drop_nulls()
    )
    valid = pl.col("failed").list.len() == 0
    first = pl.struct(PRIMARY_KEYS[dataset]).is_first_distinct().over(valid)
    ranked = ranked.with_columns(
        failed=pl.when(valid & ~first)
        .then(pl.lit([f"{dataset}.primary_key.duplicate"]))
        .otherwise("failed")
    )
    published = ranked.filter(pl.col("failed").list.len() == 0).drop("failed")
    return published, ranked.filter(pl.col("failed").list.len() > 0)


@pytest.fixture(scope="module")
def generated_range(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("commerce_range")
    generate(root / "landing", root / "truth", date(2026, 1, 1), 11, 200, seed=11)
    return root / "landing", root / "truth" / "commerce"


COMPARED = {
    "fx_rates": ["currency", "usd_per_unit"],
    "customers": ["customer_id", "email", "full_name", "country", "segment", "signup_date",
                  "updated_at"],
    "products": ["product_id", "product_name", "category", "list_price_usd"],
    "order_lines": ["order_id", "line_no", "product_id", "quantity", "unit_price_local",
                    "unit_price_usd", "line_amount_usd"],
    "orders": ["order_id", "customer_id", "order_ts", "order_date", "status", "currency",
               "order_total_local", "order_total_usd", "line_count"],
}  # fmt: skip
LOCATION = ["partition_date", "_source_file", "_source_line"]


def test_typed_generated_range_reproduces_the_ground_truth(generated_range) -> None:
    landing, truth_dir = generated_range
    fx_typed = t.type_fx_rates(bronze_files(landing, "fx_rates*.csv"))
    fx_published, _ = split("fx_rates", fx_typed)
    lines_typed = t.type_order_lines(bronze_files(landing, "orders*.csv"), fx_published)
    lines_published, _ = split("order_lines", lines_typed)
    typed = {
        "fx_rates": fx_typed,
        "customers": t.type_customers(bronze_files(landing, "customers*.csv")),
        "products": t.type_products(bronze_files(landing, "products*.csv"), fx_published),
        "order_lines": lines_typed,
        "orders": t.build_orders(lines_typed, lines_published),
    }
    expected_quarantine = pl.read_parquet(truth_dir / "quarantine.parquet")
    for dataset, frame in typed.items():
        published, quarantined = split(dataset, frame)
        expected = pl.read_parquet(truth_dir / f"{dataset}.parquet")
        assert published.height == expected.height, dataset
        assert published.height > 0
        joined = expected.join(published, on=LOCATION, how="left", suffix="_typed")
        for column in COMPARED[dataset]:
            got, want = joined[f"{column}_typed"], joined[column]
            if want.dtype == pl.Float64:
                assert ((got - want).abs() < 1e-9).all(), (dataset, column)
            else:
                assert (got == want).all() and got.null_count() == 0, (dataset, column)

        got_rules = {
            (r["_source_file"], r["_source_line"], frozenset(r["failed"]))
            for r in quarantined.iter_rows(named=True)
        }
        want_rules = {
            (r["source_file"], r["source_line"], frozenset(r["failed_rules"]))
            for r in expected_quarantine.filter(pl.col("dataset") == dataset).iter_rows(named=True)
        }
        assert got_rules == want_rules, (dataset, got_rules ^ want_rules)
        assert len(frame) == published.height + quarantined.height
