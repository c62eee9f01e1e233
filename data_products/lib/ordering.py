"""Sort a frame only when it is out of order.

Typed frames arrive in delivery order (file, then line), and steps that must process rows in that
order used to sort anyway: on a wide frame that is a gather of every column (1.75 s of a 3.9 s
quarantine split of 2 M order lines). Checking the order is one vectorised pass over the key
columns (0.05 s).
"""

from collections.abc import Sequence

import polars as pl


def is_sorted_by(frame: pl.DataFrame, by: Sequence[str]) -> bool:
    """Whether ``frame`` is in ascending lexicographic order of ``by``, with no nulls in ``by``.

    Nulls make it "unsorted" so the caller's sort decides where they go (``nulls_last``).
    """
    if frame.height < 2 or not by:
        return True
    no_nulls = pl.all_horizontal(pl.col(c).is_not_null().all() for c in by)
    return bool(frame.select(no_nulls & _not_descending(by).slice(1).all()).item())


def sort_unless_sorted(frame: pl.DataFrame, by: Sequence[str]) -> pl.DataFrame:
    """``frame.sort(by, nulls_last=True, maintain_order=True)``, skipped when it would be a no-op.

    A stable sort of an already sorted frame returns it unchanged, so skipping it is exact.
    """
    if is_sorted_by(frame, by):
        return frame
    return frame.sort(list(by), nulls_last=True, maintain_order=True)


def _not_descending(by: Sequence[str]) -> pl.Expr:
    """Row i >= row i-1 in lexicographic order of ``by`` (null on the first row)."""
    first, *rest = by
    current, previous = pl.col(first), pl.col(first).shift(1)
    if not rest:
        return current >= previous
    return (current > previous) | ((current == previous) & _not_descending(rest))
