"""Daily settlement files, as the card network would send them, with injected breaks.

``landing/payments/settlement/<YYYY-MM-DD>.csv``: one row per merchant and currency with the
gross amount and the number of transactions settled that day. The simulator derives them from the
distinct transactions it produced, then injects breaks the reconciliation must find:
- ``amount``: a row's gross off by 0.5-5 % (a fee or FX error at the network);
- ``missing_in_settlement``: a row dropped (a merchant the network forgot);
plus noise that must *not* alert: one cent added to a few large rows (below 0.1 %).
The injected breaks are written apart, to ``truth/payments/settlement_breaks.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from assets.payments.reference import DOMAIN
from data_products.lib.settings import Settings, get_settings


def settlement_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).landing / DOMAIN / "settlement"


def write_settlement(
    transactions: pl.DataFrame,
    *,
    seed: int,
    breaks_per_day: int = 3,
    settings: Settings | None = None,
) -> list[Path]:
    """Write one file per event day of ``transactions`` (distinct; columns merchant_id,
    currency, amount, event_time) and the breaks injected into them."""
    settings = settings or get_settings()
    rng = np.random.default_rng(seed + 1)
    daily = (
        transactions.group_by(
            pl.col("event_time").dt.date().alias("settlement_date"), "merchant_id", "currency"
        )
        .agg(
            gross_amount=(pl.col("amount") * 100).round().cast(pl.Int64).sum(),
            transaction_count=pl.len(),
        )
        .sort("settlement_date", "merchant_id", "currency")
    )
    out = settlement_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    paths, breaks = [], []
    for (day,), rows in daily.group_by("settlement_date", maintain_order=True):
        n = rows.height
        picks = rng.choice(n, size=min(n, breaks_per_day + 3), replace=False)
        amount_rows, missing_rows, noise_rows = picks[:-3] if n > 3 else picks, [], []
        if n > 3:
            missing_rows, noise_rows = picks[-3:-2].tolist(), picks[-2:].tolist()
        cents = rows["gross_amount"].to_numpy().copy()
        for i in amount_rows:
            cents[i] = round(cents[i] * (1 + rng.uniform(0.005, 0.05)))
            breaks.append((day, rows["merchant_id"][int(i)], rows["currency"][int(i)], "amount"))
        for i in noise_rows:
            if cents[i] >= 100_000:  # one cent on >= 1,000 units is < 0.001 %: not a break
                cents[i] += 1
        for i in missing_rows:
            breaks.append(
                (day, rows["merchant_id"][i], rows["currency"][i], "missing_in_settlement")
            )
        keep = np.ones(n, dtype=bool)
        keep[missing_rows] = False
        # Written from integer cents as text: the file states amounts exactly, as banks do.
        frame = rows.with_columns(
            gross_amount=pl.Series([f"{c // 100}.{c % 100:02d}" for c in cents.tolist()])
        ).filter(pl.Series(keep))
        path = out / f"{day.isoformat()}.csv"
        frame.write_csv(path)
        paths.append(path)
    truth = settings.truth / DOMAIN
    truth.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        breaks,
        schema={
            "settlement_date": pl.Date,
            "merchant_id": pl.String,
            "currency": pl.String,
            "kind": pl.String,
        },
        orient="row",
    ).write_parquet(truth / "settlement_breaks.parquet")
    return paths
