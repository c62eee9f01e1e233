"""Parsing per distinct value must give exactly what parsing every row gives."""

import polars as pl

from assets.commerce.transforms import parse_integer, parse_number
from data_products.lib.distinct import per_distinct


def test_per_distinct_matches_the_row_by_row_parse() -> None:
    values = ["2", " 2.0", "1.5", None, "", "x", "2", "1,234.50", "€3,5", "2", None, "-7"] * 50
    frame = pl.DataFrame({"text": values}, schema={"text": pl.String})
    for parse in (parse_integer, parse_number):
        direct = frame.select(parse(pl.col("text"))).to_series()
        once = frame.select(per_distinct(pl.col("text"), parse)).to_series()
        assert once.dtype == direct.dtype
        assert once.to_list() == direct.to_list()


def test_per_distinct_on_an_empty_or_all_null_column() -> None:
    for values in ([], [None, None]):
        frame = pl.DataFrame({"text": values}, schema={"text": pl.String})
        result = frame.select(per_distinct(pl.col("text"), parse_integer)).to_series()
        assert result.dtype == pl.Int32
        assert result.to_list() == [None] * len(values)
