"""Landing the commerce demo slice: the partner's drops are synthetic, so the demo generates them
(seeded, so every demo lands the same files) before bronze reads them."""

from __future__ import annotations

from datetime import date

from data_products.lib.settings import get_settings

DEMO_ROWS_PER_DAY = 300
DEMO_SEED = 42


def land_demo_drops(start: str, end: str) -> str:
    """Generate the drops for ``start``..``end`` (inclusive) under the data home's landing/."""
    from assets.commerce.generator import generate

    first, last = date.fromisoformat(start), date.fromisoformat(end)
    settings = get_settings()
    summary = generate(
        settings.landing,
        settings.truth,
        start=first,
        days=(last - first).days + 1,
        rows_per_day=DEMO_ROWS_PER_DAY,
        seed=DEMO_SEED,
    )
    files = len(summary.files)
    rows = sum(f.rows for f in summary.files)
    return (
        f"{summary.days} daily drops ({files} files, {rows:,} rows, seed {DEMO_SEED}) "
        f"in {settings.landing / 'commerce'}"
    )
