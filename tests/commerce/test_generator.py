"""The commerce generator: determinism, drift, injected defects and a self-consistent truth."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from assets.commerce.generator import (
    COUPON_FROM_DAY,
    DECIMAL_QUANTITY_DAY,
    PRICE_RENAMED_FROM_DAY,
    GenerationSummary,
    generate,
    main,
)

START = date(2026, 1, 1)
DAYS = 11  # covers every drift day (4, 7 and 10)
ROWS = 150


def read_raw(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")


def all_files(landing: Path) -> dict[str, bytes]:
    return {
        p.relative_to(landing).as_posix(): p.read_bytes()
        for p in sorted((landing / "commerce").rglob("*.csv"))
    }


def day_dir(landing: Path, index: int) -> Path:
    return landing / "commerce" / (START + timedelta(days=index)).isoformat()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, GenerationSummary]:
    root = tmp_path_factory.mktemp("commerce")
    summary = generate(root / "landing", root / "truth", START, DAYS, ROWS, seed=7)
    return root / "landing", root / "truth" / "commerce", summary


def truth(truth_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(truth_dir / f"{name}.parquet")


# -------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_and_days_do_not_depend_on_later_days(
    tmp_path: Path,
) -> None:
    first = generate(tmp_path / "a", tmp_path / "ta", START, 3, 80, seed=5)
    generate(tmp_path / "b", tmp_path / "tb", START, 3, 80, seed=5)
    generate(tmp_path / "c", tmp_path / "tc", START, 2, 80, seed=5)
    generate(tmp_path / "d", tmp_path / "td", START, 3, 80, seed=6)

    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a == b
    assert len(a) == sum(1 for _ in first.files)
    shorter = all_files(tmp_path / "c")
    assert shorter == {k: v for k, v in a.items() if not k.startswith("commerce/2026-01-03")}
    other_seed = all_files(tmp_path / "d")
    assert other_seed.keys() == a.keys()
    assert other_seed["commerce/2026-01-01/orders.csv"] != a["commerce/2026-01-01/orders.csv"]
    for name in ("orders", "order_lines", "quarantine"):
        assert pl.read_parquet(tmp_path / "ta" / "commerce" / f"{name}.parquet").equals(
            pl.read_parquet(tmp_path / "tb" / "commerce" / f"{name}.parquet")
        )


def test_regenerating_a_day_removes_stale_files(tmp_path: Path) -> None:
    generate(tmp_path / "l", tmp_path / "t", START, 3, 60, seed=1)
    resent = tmp_path / "l" / "commerce" / "2026-01-03" / "orders_resent.csv"
    assert resent.exists()  # day index 2 re-sends part of its orders
    # the same dates as day index 0..1 of a later start have no re-sent file
    generate(tmp_path / "l", tmp_path / "t", date(2026, 1, 2), 2, 60, seed=1)
    assert not resent.exists()


def test_rejects_nonsense_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        generate(tmp_path, tmp_path, START, 0, 10)
    with pytest.raises(ValueError, match="rows_per_day"):
        generate(tmp_path, tmp_path, START, 1, 0)


# -------------------------------------------------------------------------------- layout, drift
def test_layout_and_columns_follow_the_model(generated) -> None:
    landing, _, summary = generated
    for index in range(DAYS):
        names = sorted(p.name for p in day_dir(landing, index).iterdir())
        expected = ["customers.csv", "fx_rates.csv", "orders.csv", "products.csv"]
        if index % 4 == 2:
            expected.insert(3, "orders_resent.csv")
        assert names == expected
    folder = day_dir(landing, 0)
    assert read_raw(folder / "fx_rates.csv").columns == ["rate_date", "currency", "usd_per_unit"]
    assert read_raw(folder / "customers.csv").columns == [
        "customer_id", "email", "full_name", "country", "segment", "signup_date", "updated_at",
    ]  # fmt: skip
    assert read_raw(folder / "products.csv").columns == [
        "product_id", "product_name", "category", "list_price", "currency",
    ]  # fmt: skip
    products = read_raw(folder / "products.csv")
    assert products["product_id"].n_unique() == 200
    assert set(read_raw(folder / "fx_rates.csv")["currency"].str.to_uppercase()) == {
        "USD", "EUR", "GBP", "JPY",
    }  # fmt: skip
    # the summary counts what is on disk
    assert summary.file(START, "products.csv").rows == products.height
    with pytest.raises(KeyError, match=r"orders_resent\.csv"):
        summary.file(START, "orders_resent.csv")
    for item in summary.files:
        assert item.rows == read_raw(landing / item.file).height, item.file


def test_drift_happens_on_the_documented_days(generated) -> None:
    landing, _, _ = generated
    columns = {i: read_raw(day_dir(landing, i) / "orders.csv").columns for i in range(DAYS)}
    for index, cols in columns.items():
        renamed = index >= PRICE_RENAMED_FROM_DAY
        assert ("price" in cols) is renamed and ("unit_price" in cols) is not renamed, index
        assert ("coupon_code" in cols) is (index >= COUPON_FROM_DAY), index
    coupons = read_raw(day_dir(landing, COUPON_FROM_DAY) / "orders.csv")["coupon_code"]
    assert 0 < coupons.drop_nulls().len() < coupons.len()

    quantities = read_raw(day_dir(landing, DECIMAL_QUANTITY_DAY) / "orders.csv")["quantity"]
    assert quantities.str.contains(r"^\d+\.0$").sum() > 0
    assert quantities.str.contains(r"^\d+\.5$").sum() > 0
    assert quantities.str.contains(r"^\d+$").sum() == 0
    for index in (0, DECIMAL_QUANTITY_DAY - 1):
        before = read_raw(day_dir(landing, index) / "orders.csv")["quantity"]
        assert before.str.contains(r"^\d+$").all()


# -------------------------------------------------------------------------------- defects
def test_every_listed_defect_is_delivered(generated) -> None:
    landing, _, summary = generated
    orders = pl.concat(
        [read_raw(p) for p in sorted((landing / "commerce").rglob("orders*.csv"))],
        how="diagonal",
    )
    price = orders.select(pl.coalesce("unit_price", "price")).to_series()
    assert price.str.contains(r"^-?\d+\.\d{2}$").any()  # 1234.56
    assert price.str.contains(r"^\d{1,3}(,\d{3})+\.\d{2}$").any()  # 1,234.56
    assert price.str.contains(r"^\d{1,3}(\.\d{3})+,\d{2}$").any()  # 1.234,56
    assert price.str.contains(r"^[$€£¥]\d{1,3}(,\d{3})+\.\d{2}$").any()  # $1,234.56
    assert price.str.contains(r"^\$\d+\.\d{2}$").any()
    assert price.str.starts_with("-").any()
    ts = orders["order_ts"]
    assert ts.str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").any()
    assert ts.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").any()
    assert ts.str.contains(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$").any()
    assert (ts == "not a date").any() and ts.is_null().any()
    assert orders["order_id"].is_null().any() and orders["customer_id"].is_null().any()
    assert (orders["currency"] == "XXX").any()
    assert set(orders["currency"].str.to_uppercase().unique().drop_nulls()) == {
        "USD", "EUR", "GBP", "JPY", "XXX",
    }  # fmt: skip
    quantity = orders["quantity"].str.replace(r"\.0$", "")
    assert (quantity == "0").any() and (quantity == "1000").any()
    parsed = price.str.replace_all(r"[$€£¥,]", "").cast(pl.Float64, strict=False)
    assert (parsed > 100_000).any()

    raw_bytes = [p.read_bytes() for p in sorted((landing / "commerce").rglob("customers.csv"))]
    undecodable = 0
    for data in raw_bytes:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0
    # each injected kind appears in some file, with the duplicates and the re-sent file
    kinds = {k for f in summary.files for k in f.defects}
    assert kinds >= {
        "missing_order_id", "missing_customer_id", "order_ts_unparseable", "order_ts_empty",
        "order_ts_other_day", "unknown_currency", "unknown_customer", "currency_lowercase",
        "quantity_zero", "quantity_huge", "unit_price_negative", "unit_price_huge",
        "quantity_fractional", "latin1_full_name", "updated_at_unparseable", "country_invalid",
        "segment_invalid", "duplicate_row", "resent_row",
    }  # fmt: skip


def test_defect_rates_stay_realistic(tmp_path: Path) -> None:
    summary = generate(tmp_path / "l", tmp_path / "t", START, 2, 5000, seed=3)
    for item in summary.files:
        if item.file.endswith(("orders.csv", "customers.csv")):
            share = sum(item.quarantined.values()) / item.rows
            assert 0.005 < share < 0.08, (item.file, share)


# -------------------------------------------------------------------------------- ground truth
def test_every_raw_row_is_published_or_quarantined_exactly_once(generated) -> None:
    landing, truth_dir, summary = generated
    quarantine = truth(truth_dir, "quarantine")
    assert quarantine["rule_id"].null_count() == 0
    assert (quarantine["rule_id"] == quarantine["failed_rules"].list.first()).all()
    by_file = {"fx_rates": "fx_rates", "customers": "customers", "products": "products"}
    for item in summary.files:
        name = Path(item.file).name
        dataset = by_file.get(name.removesuffix(".csv"), "order_lines")
        published = truth(truth_dir, dataset).filter(pl.col("_source_file") == item.file)
        rejected = quarantine.filter(
            (pl.col("dataset") == dataset) & (pl.col("source_file") == item.file)
        )
        lines = pl.concat(
            [published["_source_line"], rejected["source_line"]], how="vertical"
        ).sort()
        raw_rows = read_raw(landing / item.file).height
        assert lines.to_list() == list(range(2, raw_rows + 2)), item.file
        assert rejected.height == sum(item.quarantined.values())

    # order headers: one per distinct raw order id per day, published xor quarantined
    for index in range(DAYS):
        folder = day_dir(landing, index)
        raw = pl.concat([read_raw(p) for p in sorted(folder.glob("orders*.csv"))], how="diagonal")
        day = START + timedelta(days=index)
        published = truth(truth_dir, "orders").filter(pl.col("partition_date") == day)
        rejected = quarantine.filter(
            (pl.col("dataset") == "orders") & (pl.col("partition_date") == day)
        )
        assert published.height + rejected.height == raw["order_id"].n_unique()
        assert published["order_id"].is_duplicated().sum() == 0


def test_duplicates_keep_the_first_delivered_valid_row(generated) -> None:
    landing, truth_dir, _ = generated
    quarantine = truth(truth_dir, "quarantine")
    dups = quarantine.filter(pl.col("rule_id") == "order_lines.primary_key.duplicate")
    assert dups.height > 0
    assert dups["source_file"].str.ends_with("orders_resent.csv").any()
    assert dups["source_file"].str.ends_with("/orders.csv").any()
    published = truth(truth_dir, "order_lines")
    for row in dups.iter_rows(named=True):
        raw = read_raw(landing / row["source_file"])
        dup = raw.row(row["source_line"] - 2, named=True)
        kept = published.filter(
            (pl.col("order_id") == dup["order_id"]) & (pl.col("line_no") == int(dup["line_no"]))
        )
        assert kept.height == 1
        kept_row = kept.row(0, named=True)
        assert (kept_row["_source_file"], kept_row["_source_line"]) < (
            row["source_file"],
            row["source_line"],
        )


def test_orders_with_a_rejected_line_are_not_published(generated) -> None:
    _, truth_dir, _ = generated
    quarantine = truth(truth_dir, "quarantine")
    lines = truth(truth_dir, "order_lines")
    orders = truth(truth_dir, "orders")
    complete = quarantine.filter(pl.col("failed_rules").list.contains("orders.lines.complete"))
    assert complete.height > 0
    assert (
        complete.filter(pl.col("failed_rules").list.len() == 1).height > 0
    )  # a line defect alone takes the header with it
    # published orders: totals and counts are those of their published lines
    totals = lines.group_by("order_id").agg(
        n=pl.len(),
        usd=pl.col("line_amount_usd").sum().round(2),
    )
    joined = orders.join(totals, on="order_id", how="left")
    assert joined["n"].null_count() == 0
    assert (joined["n"] == joined["line_count"]).all()
    assert ((joined["usd"] - joined["order_total_usd"]).abs() < 1e-6).all()
    assert (orders["order_date"] == orders["partition_date"]).all()
    assert orders["currency"].is_in(["USD", "EUR", "GBP", "JPY"]).all()


def test_customers_of_orders_were_delivered_before(generated) -> None:
    _, truth_dir, _ = generated
    customers = truth(truth_dir, "customers")
    orders = truth(truth_dir, "orders")
    first_seen = customers.group_by("customer_id").agg(first=pl.col("partition_date").min())
    joined = orders.join(first_seen, on="customer_id", how="left")
    unknown = joined.filter(pl.col("first").is_null())
    assert unknown.height > 0
    assert unknown["customer_id"].str.starts_with("C9").all()
    known = joined.filter(pl.col("first").is_not_null())
    assert (known["first"] <= known["partition_date"]).all()
    assert customers["customer_id"].str.contains(r"^C\d{6}$").all()
    # SCD2 needs history: some customers change country, segment or email over the days
    changes = customers.group_by("customer_id").agg(
        pl.col("country", "segment", "email").n_unique()
    )
    assert (changes["country"] > 1).any()
    assert (changes["segment"] > 1).any()
    assert (changes["email"] > 1).any()


def test_orders_look_like_sessions(generated) -> None:
    _, truth_dir, _ = generated
    lines = truth(truth_dir, "order_lines")
    per_order = lines.group_by("order_id").agg(pl.col("line_no").max())
    assert per_order["line_no"].min() >= 1 and per_order["line_no"].max() <= 5
    orders = truth(truth_dir, "orders").sort("customer_id", "order_ts")
    gaps = orders.with_columns(gap=pl.col("order_ts").diff().over("customer_id", "partition_date"))[
        "gap"
    ].drop_nulls()
    assert (gaps < timedelta(minutes=30)).sum() > 0
    per_customer_day = orders.group_by("customer_id", "partition_date").len()
    assert per_customer_day["len"].max() >= 3
    hours = orders["order_ts"].dt.hour()
    assert hours.min() <= 2 and hours.max() >= 21


def test_truth_values_are_consistent_with_the_model(generated) -> None:
    _, truth_dir, _ = generated
    fx = truth(truth_dir, "fx_rates")
    lines = truth(truth_dir, "order_lines")
    products = truth(truth_dir, "products")
    assert (fx.filter(pl.col("currency") == "USD")["usd_per_unit"] == 1.0).all()
    assert fx.group_by("partition_date").len()["len"].to_list() == [4] * DAYS
    assert lines["quantity"].is_between(1, 100).all()
    assert (lines["unit_price_local"] > 0).all() and (lines["unit_price_local"] <= 100_000).all()
    recomputed = (lines["quantity"] * lines["unit_price_usd"]).round(2)
    assert (recomputed - lines["line_amount_usd"]).abs().max() < 1e-9
    assert products.group_by("partition_date").len()["len"].to_list() == [200] * DAYS
    assert products["list_price_usd"].is_between(0.01, 10_000).all()


# -------------------------------------------------------------------------------- CLI
def test_cli_writes_into_the_settings_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_HOME", str(tmp_path / "home"))
    assert main(["--start", "2026-01-01", "--days", "2", "--rows-per-day", "40"]) == 0
    out = capsys.readouterr().out
    assert "2026-01-02" in out and "orders.csv" in out
    assert (tmp_path / "home" / "landing" / "commerce" / "2026-01-02" / "orders.csv").exists()
    assert (tmp_path / "home" / "truth" / "commerce" / "quarantine.parquet").exists()

    assert main(["--days", "1", "--rows-per-day", "20", "--home", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / "landing" / "commerce" / "2026-01-01" / "fx_rates.csv").exists()
    assert re.search(r"expected published/quarantined: fx_rates \d+/\d+", capsys.readouterr().out)
