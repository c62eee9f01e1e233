"""Sorting only when needed must give exactly what the stable sort gives."""

import polars as pl
import pytest

from data_products.lib.ordering import is_sorted_by, sort_unless_sorted

BY = ["_source_file", "_source_line"]


def frame(files: list[str | None], lines: list[int | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"_source_file": files, "_source_line": lines, "n": list(range(len(files)))},
        schema={"_source_file": pl.String, "_source_line": pl.Int64, "n": pl.Int64},
    )


@pytest.mark.parametrize(
    ("files", "lines", "expected"),
    [
        (["a", "a", "b", "b"], [1, 2, 1, 5], True),
        (["a", "a", "a"], [1, 1, 2], True),  # ties are in order
        (["a", "b", "a"], [1, 1, 2], False),  # a later file before an earlier one
        (["a", "a"], [2, 1], False),  # lines out of order within a file
        (["a", None], [1, 2], False),  # nulls: let the sort place them
        (["a"], [1], True),
        ([], [], True),
    ],
)
def test_is_sorted_by_compares_lexicographically(
    files: list[str | None], lines: list[int | None], expected: bool
) -> None:
    assert is_sorted_by(frame(files, lines), BY) is expected


def test_sort_unless_sorted_equals_a_stable_sort() -> None:
    shuffled = frame(["b", "a", "a", None, "a", "b"], [1, 3, 1, 1, 1, 0])
    expected = shuffled.sort(BY, nulls_last=True, maintain_order=True)
    result = sort_unless_sorted(shuffled, BY)
    assert result.equals(expected)
    assert result["n"].to_list() == [2, 4, 1, 5, 0, 3]  # stable: ties keep their input order
    in_order = expected.drop_nulls()
    assert sort_unless_sorted(in_order, BY) is in_order  # already sorted: returned as is
