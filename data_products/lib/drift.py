"""Feature drift between a reference window (what a model was trained on) and recent data.

Two views of one question, because each misses what the other sees: the two-sample
Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) is sensitive to any change in shape but, on
tens of thousands of rows, flags shifts too small to matter; the population stability index
(PSI) measures how much mass moved between the reference's deciles, the scale credit-risk teams
have used for decades (< 0.1 stable, 0.1-0.2 moderate, > 0.2 major shift). A feature drifts when
either says so: ``p < 0.01`` or ``PSI > 0.2``.

Nulls are left out of both statistics (they are cold starts, reported separately as the null
share); a side with fewer than ``min_rows`` values is not judged.

The KS test runs on a seeded random sample of at most ``sample_rows`` values per side. Its
p-value assumes independent rows, and feature rows are anything but: every flight leaving JFK
on a day carries the same 7-day average. On a month of flights (25,000 rows) it then rejects
for differences no one would act on, and its power would grow with the partition size. A
fixed sample keeps one threshold meaningful for a day and for a year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KS_P_VALUE = 0.01
PSI_THRESHOLD = 0.2
PSI_BINS = 10
MIN_ROWS = 50
SAMPLE_ROWS = 1000
SEED = 20130101
_EPSILON = 1e-4
"""Floor for an empty bin's share: without it one empty bin makes the PSI infinite."""


def psi(reference: np.ndarray, current: np.ndarray, *, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``reference``, on the reference's
    quantile bins (open-ended at both ends, so values outside the reference range count)."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    # Right-closed bins: a value equal to a cut point falls below it, so a feature with many
    # ties (counts, zero precipitation) keeps its mass in one bin on both sides.
    expected = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    e = np.maximum(expected / expected.sum(), _EPSILON)
    a = np.maximum(actual / actual.sum(), _EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftResult:
    feature: str
    reference_rows: int
    current_rows: int
    ks_statistic: float | None
    p_value: float | None
    psi: float | None
    reference_null_share: float
    current_null_share: float

    @property
    def judged(self) -> bool:
        return self.p_value is not None

    @property
    def drifted(self) -> bool:
        if self.p_value is None or self.psi is None:
            return False
        return self.p_value < KS_P_VALUE or self.psi > PSI_THRESHOLD

    def reason(self) -> str:
        if not self.judged:
            return (
                f"{self.feature}: not judged ({self.reference_rows} reference and "
                f"{self.current_rows} current values; at least {MIN_ROWS} each needed)"
            )
        verdict = "drifted" if self.drifted else "stable"
        return (
            f"{self.feature} {verdict}: KS p = {self.p_value:.3g} (drift below {KS_P_VALUE}), "
            f"PSI = {self.psi:.3f} (drift above {PSI_THRESHOLD})"
        )


def feature_drift(
    feature: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    min_rows: int = MIN_ROWS,
    sample_rows: int = SAMPLE_ROWS,
) -> DriftResult:
    """KS test (on samples of ``sample_rows``) and PSI (on all values) of one feature; nulls
    (NaN) excluded and reported as shares."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    ref_values = reference[~np.isnan(reference)]
    cur_values = current[~np.isnan(current)]

    def share(values: np.ndarray, kept: np.ndarray) -> float:
        return 1 - len(kept) / len(values) if len(values) else 0.0

    if len(ref_values) < min_rows or len(cur_values) < min_rows:
        return DriftResult(
            feature,
            len(ref_values),
            len(cur_values),
            None,
            None,
            None,
            share(reference, ref_values),
            share(current, cur_values),
        )
    rng = np.random.default_rng(SEED)

    def sample(values: np.ndarray) -> np.ndarray:
        if len(values) <= sample_rows:
            return values
        return rng.choice(values, size=sample_rows, replace=False)

    from scipy.stats import ks_2samp  # here, not at import: the code location loads faster

    test = ks_2samp(sample(ref_values), sample(cur_values))
    return DriftResult(
        feature,
        len(ref_values),
        len(cur_values),
        float(test.statistic),
        float(test.pvalue),
        psi(ref_values, cur_values),
        share(reference, ref_values),
        share(current, cur_values),
    )
