"""The commerce gold layer computed a second time, with plain polars, from silver-shaped frames.

Independent of the dbt SQL on purpose: written from the definitions in the model YAML (grain,
revenue rule, SCD2, sessions, cohorts, RFM scores), not translated from the SQL, so a test that
compares the two catches a wrong query rather than restating it. Frames carry silver's columns
(MODEL.md), including ``partition_date``, ``_source_file`` and ``_source_line``.

Surrogate keys are not recomputed here: the star-schema test checks what they point at.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

REVENUE_STATUSES = ("placed", "shipped")
TRACKED = ("email", "country", "segment")
BEGINNING_OF_TIME = datetime(1900, 1, 1)
END_OF_TIME = datetime(9999, 12, 31)
SESSION_GAP = timedelta(minutes=30)
TOP_N = 5


def _is_revenue() -> pl.Expr:
    return pl.col("status").is_in(REVENUE_STATUSES)


def _date_key(column: str) -> pl.Expr:
    return pl.col(column).dt.strftime("%Y%m%d").cast(pl.Int32)


def customer_versions(customers: pl.DataFrame) -> pl.DataFrame:
    """dim_customer without its surrogate keys and without the unknown member: one row per
    customer version, keyed by (customer_id, valid_from)."""
    by_delivery = ["partition_date", "_source_file", "_source_line"]
    changes = (
        customers.with_columns(
            changed_at=pl.coalesce(
                pl.col("updated_at"), pl.col("partition_date").cast(pl.Datetime("us"))
            )
        )
        .sort(["customer_id", "changed_at", *by_delivery])
        # The same change delivered again: the latest delivered copy is the one kept.
        .unique(["customer_id", "changed_at"], keep="last", maintain_order=True)
    )
    previous_differs = [
        pl.col(column).ne_missing(pl.col(column).shift(1).over("customer_id")) for column in TRACKED
    ]
    first_change = pl.col("changed_at").shift(1).over("customer_id").is_null()
    versions = (
        changes.filter(pl.any_horizontal(first_change, *previous_differs))
        .with_columns(
            version_number=pl.int_range(1, pl.len() + 1).over("customer_id"),
            next_version_at=pl.col("changed_at").shift(-1).over("customer_id"),
        )
        .drop("signup_date")
    )
    latest_signup = changes.group_by("customer_id").agg(
        pl.col("signup_date").sort_by("changed_at").last()
    )
    return versions.join(latest_signup, on="customer_id").select(
        "customer_id",
        *TRACKED,
        "signup_date",
        "version_number",
        "changed_at",
        valid_from=pl.when(pl.col("version_number") == 1)
        .then(pl.lit(BEGINNING_OF_TIME))
        .otherwise(pl.col("changed_at")),
        valid_to=pl.col("next_version_at").fill_null(END_OF_TIME),
        is_current=pl.col("next_version_at").is_null(),
    )


def products_latest(products: pl.DataFrame) -> pl.DataFrame:
    """dim_product without surrogate keys and without the unknown member."""
    latest_catalog = products["partition_date"].max()
    ordered = products.sort(["product_id", "partition_date", "_source_file", "_source_line"])
    return ordered.group_by("product_id").agg(
        pl.col("product_name").last(),
        pl.col("category").last(),
        pl.col("list_price_usd").last(),
        first_seen_date=pl.col("partition_date").min(),
        last_seen_date=pl.col("partition_date").max(),
        is_in_latest_catalog=pl.col("partition_date").max() == latest_catalog,
    )


def calendar(orders: pl.DataFrame) -> pl.DataFrame:
    """dim_date: every day from the first to the last order date."""
    days = pl.date_range(orders["order_date"].min(), orders["order_date"].max(), eager=True)
    return pl.DataFrame({"date_day": days}).select(
        date_key=_date_key("date_day"),
        date_day="date_day",
        year=pl.col("date_day").dt.year(),
        quarter=pl.col("date_day").dt.quarter(),
        month=pl.col("date_day").dt.month(),
        month_name=pl.col("date_day").dt.strftime("%B"),
        month_start=pl.col("date_day").dt.month_start(),
        day_of_month=pl.col("date_day").dt.day(),
        iso_day_of_week=pl.col("date_day").dt.weekday(),
        day_name=pl.col("date_day").dt.strftime("%A"),
        iso_week=pl.col("date_day").dt.week(),
        is_weekend=pl.col("date_day").dt.weekday() >= 6,
    )


def order_lines_facts(
    orders: pl.DataFrame,
    order_lines: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    min_date: date,
    max_date: date,
) -> pl.DataFrame:
    """fct_orders with its dimension references spelled as natural keys: ``customer_valid_from``
    (None = unknown member) and ``product_known``."""
    header_columns = ["customer_id", "order_ts", "order_date", "status", "currency"]
    headers = orders.select("order_id", *header_columns, "partition_date")
    lines = order_lines.select(
        "order_id", "line_no", "product_id", "quantity", "unit_price_usd", "line_amount_usd"
    ).join(headers, on="order_id", how="inner")
    lines = lines.filter(pl.col("partition_date").is_between(min_date, max_date))
    versions = customer_versions(customers).select("customer_id", "valid_from", "valid_to")
    in_force = (
        lines.select("order_id", "line_no", "customer_id", "order_ts")
        .join(versions, on="customer_id", how="inner")
        .filter(pl.col("order_ts").is_between("valid_from", "valid_to", closed="left"))
        .select("order_id", "line_no", customer_valid_from="valid_from")
    )
    known_products = products.select("product_id").unique()
    return (
        lines.join(in_force, on=["order_id", "line_no"], how="left")
        .join(known_products.with_columns(product_known=pl.lit(True)), on="product_id", how="left")
        .with_columns(
            order_line_id=pl.format("{}-{}", "order_id", "line_no"),
            date_key=_date_key("order_date"),
            is_revenue=_is_revenue(),
            product_known=pl.col("product_known").fill_null(False),
        )
    )


def daily_revenue(orders: pl.DataFrame, min_date: date, max_date: date) -> pl.DataFrame:
    per_day = orders.group_by("order_date").agg(
        orders=pl.len(),
        revenue_orders=_is_revenue().sum(),
        revenue_usd=pl.col("order_total_usd").filter(_is_revenue()).sum().round(2),
    )
    every_day = (
        calendar(orders)
        .select("date_day", "date_key")
        .join(per_day, left_on="date_day", right_on="order_date", how="left")
        .with_columns(pl.col("orders", "revenue_orders", "revenue_usd").fill_null(0))
        .sort("date_day")
    )
    return every_day.with_columns(
        cumulative_revenue_usd=pl.col("revenue_usd").cum_sum().round(2),
        revenue_7d_avg_usd=pl.col("revenue_usd").rolling_mean(7, min_samples=1),
    ).filter(pl.col("date_day").is_between(min_date, max_date))


def top_products_daily(
    orders: pl.DataFrame, order_lines: pl.DataFrame, min_date: date, max_date: date
) -> pl.DataFrame:
    revenue_orders = orders.filter(_is_revenue()).select("order_id", "order_date")
    sold = order_lines.join(revenue_orders, on="order_id", how="inner").filter(
        pl.col("order_date").is_between(min_date, max_date)
    )
    per_product = sold.group_by("order_date", "product_id").agg(
        revenue_usd=pl.col("line_amount_usd").sum().round(2),
        units_sold=pl.col("quantity").sum(),
        orders=pl.col("order_id").n_unique(),
    )
    ranked = per_product.sort(
        ["order_date", "revenue_usd", "product_id"], descending=[False, True, False]
    ).with_columns(product_rank=pl.int_range(1, pl.len() + 1).over("order_date"))
    return ranked.filter(pl.col("product_rank") <= TOP_N).select(
        date_day="order_date",
        date_key=_date_key("order_date"),
        product_rank="product_rank",
        product_id="product_id",
        revenue_usd="revenue_usd",
        units_sold="units_sold",
        orders="orders",
    )


def customer_sessions(orders: pl.DataFrame) -> pl.DataFrame:
    ordered = orders.sort("customer_id", "order_ts", "order_id").with_columns(
        gap=pl.col("order_ts") - pl.col("order_ts").shift(1).over("customer_id")
    )
    numbered = ordered.with_columns(
        session_number=(pl.col("gap").is_null() | (pl.col("gap") > SESSION_GAP))
        .cum_sum()
        .over("customer_id")
    )
    sessions = numbered.group_by("customer_id", "session_number").agg(
        session_start=pl.col("order_ts").min(),
        session_end=pl.col("order_ts").max(),
        orders=pl.len(),
        revenue_usd=pl.col("order_total_usd").filter(_is_revenue()).sum().round(2),
    )
    return sessions.select(
        session_id=pl.format("{}-{}", "customer_id", "session_number"),
        customer_id="customer_id",
        session_number="session_number",
        session_start="session_start",
        session_end="session_end",
        session_date=pl.col("session_start").dt.date(),
        duration_minutes=(pl.col("session_end") - pl.col("session_start")).dt.total_seconds()
        / 60.0,
        orders="orders",
        revenue_usd="revenue_usd",
    )


def _months_between(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    return (end.dt.year() - start.dt.year()) * 12 + end.dt.month() - start.dt.month()


def monthly_retention(orders: pl.DataFrame) -> pl.DataFrame:
    active = orders.select(
        "customer_id", activity_month=pl.col("order_date").dt.month_start()
    ).unique()
    cohorts = active.group_by("customer_id").agg(cohort_month=pl.col("activity_month").min())
    last_month = active["activity_month"].max()
    sizes = cohorts.group_by("cohort_month").agg(cohort_size=pl.len())
    grid = sizes.with_columns(
        month_offset=pl.int_ranges(
            0, _months_between(pl.col("cohort_month"), pl.lit(last_month)) + 1
        )
    ).explode("month_offset")
    retained = (
        active.join(cohorts, on="customer_id")
        .with_columns(
            month_offset=_months_between(pl.col("cohort_month"), pl.col("activity_month"))
        )
        .group_by("cohort_month", "month_offset")
        .agg(retained_customers=pl.len())
    )
    return (
        grid.join(retained, on=["cohort_month", "month_offset"], how="left")
        .with_columns(pl.col("retained_customers").fill_null(0))
        .select(
            "cohort_month",
            "month_offset",
            activity_month=pl.col("cohort_month").dt.offset_by(
                pl.format("{}mo", pl.col("month_offset"))
            ),
            cohort_size="cohort_size",
            retained_customers="retained_customers",
            churned_customers=pl.col("cohort_size") - pl.col("retained_customers"),
            retention_rate=pl.col("retained_customers") / pl.col("cohort_size"),
            churn_rate=1 - pl.col("retained_customers") / pl.col("cohort_size"),
        )
    )


def _quintile(column: str, *, higher_is_better: bool) -> pl.Expr:
    """1 + floor(5 * (rank - 1) / n) with rank 1 for the worst value; ties share the lowest."""
    rank = pl.col(column).rank("min", descending=not higher_is_better)
    return (1 + (5 * (rank - 1)) // pl.len()).cast(pl.Int32)


def rfm_segments(orders: pl.DataFrame) -> pl.DataFrame:
    as_of = orders["order_date"].max()
    per_customer = (
        orders.filter(_is_revenue())
        .group_by("customer_id")
        .agg(
            last_order_date=pl.col("order_date").max(),
            frequency=pl.len(),
            monetary_usd=pl.col("order_total_usd").sum().round(2),
        )
        .with_columns(
            as_of_date=pl.lit(as_of),
            recency_days=(pl.lit(as_of) - pl.col("last_order_date")).dt.total_days(),
        )
    )
    scored = per_customer.with_columns(
        recency_score=_quintile("recency_days", higher_is_better=False),
        frequency_score=_quintile("frequency", higher_is_better=True),
        monetary_score=_quintile("monetary_usd", higher_is_better=True),
    )
    r, f = pl.col("recency_score"), pl.col("frequency_score")
    return scored.with_columns(
        rfm_code=pl.concat_str("recency_score", "frequency_score", "monetary_score"),
        segment=pl.when((r >= 4) & (f >= 4))
        .then(pl.lit("champions"))
        .when((r >= 3) & (f >= 3))
        .then(pl.lit("loyal"))
        .when(r >= 4)
        .then(pl.lit("new_customers"))
        .when((r <= 2) & (f >= 3))
        .then(pl.lit("at_risk"))
        .when(r <= 2)
        .then(pl.lit("hibernating"))
        .otherwise(pl.lit("needs_attention")),
    )
