"""The quarantine split: every typed input row is either published or quarantined, never dropped.

``split`` evaluates a contract's row rules on a typed frame in one vectorised pass:
- a row failing any ``error`` rule is quarantined under the first failing rule (contract order),
  with every failing rule listed and a reason that names the value, the file and the line;
- ``warning`` rules never remove rows: they are counted and sampled for the checks;
- the remaining rows are deduplicated on the primary key, keeping the first delivered row by
  (``_source_file``, ``_source_line``); the others are quarantined as
  ``<dataset>.primary_key.duplicate`` with a reason naming the kept row's file and line.

Rows in = rows published + rows quarantined is asserted here (an exception, not an ``assert``
that ``-O`` would strip) and reported again by the ``rows_reconcile`` check.

The typed-frame convention is described in ``data_products.lib.contracts.expressions``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import polars as pl

from data_products.lib.contracts import Contract, Rule
from data_products.lib.contracts.expressions import (
    delivered_columns,
    delivered_record,
    failure_expr,
    location_expr,
    raw_column,
    reason_expr,
    value_expr,
)
from data_products.lib.contracts.model import (
    DELIVERED_PREFIX,
    PLATFORM_COLUMNS,
    RAW_SUFFIX,
    PlatformColumn,
)
from data_products.lib.keys import DatasetName, validate_column
from data_products.lib.ordering import sort_unless_sorted

LINEAGE_COLUMNS = ("partition_date", "_source_file", "_source_line")
SAMPLE_SIZE = 5
_ROW_ORDER = ["_source_file", "_source_line"]
_MAX_DRIFT_VALUES_PARSED = 1_000


def _lineage(name: str, description: str) -> PlatformColumn:
    """A platform lineage column (its type declared once, in ``PLATFORM_COLUMNS``) with what it
    means for a rejected record."""
    return replace(next(p for p in PLATFORM_COLUMNS if p.name == name), description=description)


QUARANTINE_COLUMNS: tuple[PlatformColumn, ...] = (
    _lineage(
        "partition_date", "Day of the rejected record: delivery day (files), event day (streams)."
    ),
    PlatformColumn(
        "rule_id", pl.String(), "VARCHAR", "The first error rule it failed (contract order).", False
    ),
    PlatformColumn(
        "failed_rules", pl.List(pl.String()), "VARCHAR[]", "Every rule it failed.", False
    ),
    PlatformColumn(
        "severity", pl.String(), "VARCHAR", "Always error: warning rules never quarantine.", False
    ),
    PlatformColumn(
        "reason", pl.String(), "VARCHAR", "Why, naming the value and where it was read.", False
    ),
    _lineage(
        "_source_file", "Where it was read: landing file, or ``<topic>/p<partition>`` of a log."
    ),
    _lineage("_source_line", "Its line in that file, or its offset in that log partition."),
    PlatformColumn(
        "raw_record", pl.String(), "VARCHAR", "The record as delivered (JSON or log text).", False
    ),
    PlatformColumn(
        "_quarantined_at",
        pl.Datetime("us"),
        "TIMESTAMP",
        "When it was quarantined, naive UTC like bronze (load time).",
        False,
    ),
)
"""One row per rejected input record, for every domain (MODEL.md): the one declaration of the
quarantine's columns. ``QUARANTINE_SCHEMA`` (polars) and ``quarantine_ddl`` (DuckDB) derive from
it; ``quarantine_rows`` builds its rows. ``_``-prefixed columns are lineage and load time."""

QUARANTINE_SCHEMA = pl.Schema({c.name: c.dtype for c in QUARANTINE_COLUMNS})


def quarantine_ddl(dataset: DatasetName, extra: Sequence[PlatformColumn] = ()) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a quarantine kept as a DuckDB table (a stream's, which
    inserts into it batch by batch; file-based domains write ``QUARANTINE_SCHEMA`` frames).

    ``extra`` are load-time columns a writer adds after the shared ones (the payments stream's
    ``_batch_id``); they must be ``_``-prefixed, so they read as load metadata, never as data.
    """
    for column in extra:
        validate_column(column.name, what=f"extra column of {dataset}")
        if not column.name.startswith("_") or column.name in QUARANTINE_SCHEMA:
            raise ValueError(
                f"{dataset}: extra quarantine column {column.name!r} must be a new "
                "_-prefixed load-time column"
            )
    lines = [
        f'"{c.name}" {c.physical_type}' + ("" if c.nullable else " NOT NULL")
        for c in (*QUARANTINE_COLUMNS, *extra)
    ]
    return f"CREATE TABLE IF NOT EXISTS {dataset.table} (\n    " + ",\n    ".join(lines) + "\n)"


def quarantine_rows(
    frame: pl.DataFrame,
    *,
    rule_id: pl.Expr,
    failed_rules: pl.Expr,
    reason: pl.Expr,
    raw_record: pl.Expr,
    quarantined_at: datetime,
    partition_date: pl.Expr | None = None,
    source_file: pl.Expr | None = None,
    source_line: pl.Expr | None = None,
    extra: Mapping[str, pl.Expr] | None = None,
) -> pl.DataFrame:
    """``QUARANTINE_SCHEMA`` rows (then the ``extra`` load-time columns) for the rows of
    ``frame``: every writer of a quarantine builds its rows here, so every domain's quarantine has
    the same columns, types and order. The lineage defaults are the typed frame's
    ``partition_date``, ``_source_file`` and ``_source_line``."""
    return frame.select(
        (pl.col("partition_date") if partition_date is None else partition_date)
        .cast(pl.Date)
        .alias("partition_date"),
        rule_id.cast(pl.String).alias("rule_id"),
        failed_rules.cast(pl.List(pl.String)).alias("failed_rules"),
        pl.lit("error").alias("severity"),
        reason.cast(pl.String).alias("reason"),
        (pl.col("_source_file") if source_file is None else source_file)
        .cast(pl.String)
        .alias("_source_file"),
        (pl.col("_source_line") if source_line is None else source_line)
        .cast(pl.Int64)
        .alias("_source_line"),
        raw_record.cast(pl.String).alias("raw_record"),
        pl.lit(quarantined_at, dtype=pl.Datetime("us")).alias("_quarantined_at"),
        *(expr.alias(name) for name, expr in (extra or {}).items()),
    )


class SplitError(ValueError):
    """The typed frame does not fit the contract (a missing column, a lossy cast)."""


class ReconciliationError(RuntimeError):
    """Rows in != rows published + rows quarantined: a row was lost or duplicated."""


@dataclass(frozen=True)
class SplitResult:
    """What ``split`` produced, with the evidence the checks report."""

    published: pl.DataFrame
    """Contract columns cast to contract dtypes, plus lineage columns and ``_extra_columns``."""
    quarantined: pl.DataFrame
    """``QUARANTINE_SCHEMA`` rows."""
    rows_in: int
    rule_failures: dict[str, int]
    """Failing rows per rule id (error and warning rules, primary-key duplicates); zero omitted."""
    samples: dict[str, list[dict[str, Any]]]
    """Up to five failing rows per rule: rule, file, line, column, value, reason, raw_record."""
    extra_columns: tuple[str, ...] = ()
    """Delivered columns the contract does not know (schema drift), from ``_extra_columns``."""
    extra_column_rows: int = 0
    dropped_columns: tuple[str, ...] = ()
    """Helper columns of the typed frame that are not published (not drift: transform-internal)."""
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per ``rule_id`` (the rule that rejected them)."""


def split(
    typed: pl.DataFrame, contract: Contract, *, quarantined_at: datetime | None = None
) -> SplitResult:
    """Split ``typed`` into published and quarantined rows according to ``contract``."""
    _check_input(typed, contract)
    columns = frozenset(typed.columns)
    rules = contract.row_rules()
    fails = [f"__fails_{i}" for i in range(len(rules))]
    error_fails = [f for r, f in zip(rules, fails, strict=True) if r.severity == "error"]
    frame = typed.with_columns(
        *(failure_expr(r, columns).alias(f) for r, f in zip(rules, fails, strict=True))
    ).with_columns(
        (pl.any_horizontal(error_fails) if error_fails else pl.lit(False)).alias("__rejected")
    )
    counts = frame.select(pl.col(f).sum() for f in fails).row(0) if fails else ()
    rule_failures = {r.id: int(n) for r, n in zip(rules, counts, strict=True) if n}

    stamp = quarantined_at or datetime.now(UTC).replace(tzinfo=None)
    rejected = frame.filter(pl.col("__rejected"))
    kept, duplicates = _deduplicate(frame, contract)
    quarantined = pl.concat(
        [
            _quarantine_rejected(rejected, contract, rules, fails, columns, stamp),
            _quarantine_duplicates(duplicates, contract, rules, fails, columns, stamp),
        ],
        how="vertical",
    )
    published = _publish(kept, contract)
    if typed.height != published.height + quarantined.height:
        raise ReconciliationError(
            f"{contract.dataset}: {typed.height} rows in != {published.height} published + "
            f"{quarantined.height} quarantined"
        )
    pk_rule = contract.primary_key_rule
    if pk_rule is not None and duplicates.height:
        rule_failures[pk_rule.id] = duplicates.height

    extra_columns, extra_rows = _drift(typed)
    samples = _samples(frame, contract, rules, fails, columns, rule_failures)
    if pk_rule is not None and duplicates.height:
        samples[pk_rule.id] = _duplicate_samples(quarantined, pk_rule, contract)
    by_rule = quarantined.group_by("rule_id").len().sort("len", descending=True)
    return SplitResult(
        published=published,
        quarantined=quarantined,
        rows_in=typed.height,
        rule_failures=rule_failures,
        samples=samples,
        extra_columns=extra_columns,
        extra_column_rows=extra_rows,
        dropped_columns=_dropped(typed, contract),
        quarantined_by_rule=dict(by_rule.iter_rows()),
    )


# --------------------------------------------------------------------------------------------
# Input checks


def _check_input(typed: pl.DataFrame, contract: Contract) -> None:
    missing_lineage = [c for c in LINEAGE_COLUMNS if c not in typed.columns]
    if missing_lineage:
        raise SplitError(
            f"{contract.dataset}: the typed frame lacks lineage columns {missing_lineage}; "
            "quarantine reasons and deduplication need them"
        )
    missing = [c.name for c in contract.columns if c.name not in typed.columns]
    if missing:
        raise SplitError(
            f"{contract.dataset}: the typed frame lacks contract columns {missing} "
            f"({contract.path})"
        )
    for rule in contract.row_rules():
        for needed, use in rule.kind_spec.inputs(rule):
            if needed not in typed.columns:
                raise SplitError(
                    f"{contract.dataset}: rule {rule.id} {use}, which the typed frame does not have"
                )


# --------------------------------------------------------------------------------------------
# Deduplication and the quarantine rows


def _deduplicate(frame: pl.DataFrame, contract: Contract) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, duplicates) among the rows no error rule rejected (``__rejected`` false).

    The first row per primary key by (file, line) is kept. Kept rows carry only the columns
    ``_publish`` reads: gathering the typed frame's raw and delivered texts for every published
    row cost as much as the rest of the split. Duplicates (few) keep every column for their
    quarantine record, plus ``__kept_file``/``__kept_line`` of the row that was kept.
    """
    ordered = sort_unless_sorted(frame, _ROW_ORDER)
    passing = ~pl.col("__rejected")
    key = list(contract.primary_key)
    published = [c for c in _published_columns(contract) if c in ordered.columns]
    if not key:
        return ordered.select(published).filter(passing), ordered.clear()
    # A rejected row never shadows a passing one: the flag is part of what must be distinct.
    first = pl.struct([*key, "__rejected"]).is_first_distinct()
    masks = ordered.select((passing & first).alias("kept"), (passing & ~first).alias("dup"))
    kept = ordered.select(published).filter(masks.get_column("kept"))
    duplicates = ordered.filter(masks.get_column("dup"))
    if duplicates.is_empty():
        return kept, duplicates
    # Look the kept rows up only for the (few) duplicated keys, not with a window over all rows.
    kept_rows = kept.join(
        duplicates.select(key).unique(), on=key, how="semi", nulls_equal=True
    ).select(
        *key,
        pl.col("_source_file").alias("__kept_file"),
        pl.col("_source_line").alias("__kept_line"),
    )
    duplicates = duplicates.join(kept_rows, on=key, how="left", nulls_equal=True).sort(
        _ROW_ORDER, nulls_last=True, maintain_order=True
    )
    return kept, duplicates


def _published_columns(contract: Contract) -> list[str]:
    """Contract columns, platform columns and the lineage the published rows need."""
    names = [c.name for c in contract.columns] + [p.name for p in contract.platform_columns()]
    return list(dict.fromkeys([*names, *LINEAGE_COLUMNS]))


def _raw_record(columns: Collection[str], contract: Contract) -> pl.Expr:
    """The delivered values as JSON: the transform's ``_raw_record``, else its delivered columns
    (only rejected rows pay for the encoding), else rebuilt from the raw texts."""
    if "_raw_record" in columns:
        return pl.col("_raw_record").cast(pl.String)
    if delivered_columns(columns):
        return delivered_record(_record_order(columns, contract))
    fields = [
        (pl.col(raw_column(c.name)) if raw_column(c.name) in columns else pl.col(c.name))
        .cast(pl.String)
        .alias(c.name)
        for c in contract.columns
    ]
    return pl.struct(fields).struct.json_encode()


def _record_order(columns: Collection[str], contract: Contract) -> list[str]:
    """The delivered columns in the contract's column order (an alias at its column's place),
    then the others sorted by name: ``split`` holds the frame's columns in a frozenset, whose
    order changes with every process (``PYTHONHASHSEED``), and two clean runs must write the same
    ``raw_record`` bytes."""
    position: dict[str, int] = {}
    for index, column in enumerate(contract.columns):
        for name in (column.name, *column.aliases):
            position.setdefault(f"{DELIVERED_PREFIX}{name}", index)
    last = len(contract.columns)
    return sorted(delivered_columns(columns), key=lambda c: (position.get(c, last), c))


def _failed_rules(
    rules: Sequence[Rule], fails: Sequence[str], *, first: str | None = None
) -> pl.Expr:
    listed: list[pl.Expr] = [pl.lit(first)] if first else []
    listed += [pl.when(pl.col(f)).then(pl.lit(r.id)) for r, f in zip(rules, fails, strict=True)]
    if not listed:
        return pl.lit([], dtype=pl.List(pl.String))
    return pl.concat_list(listed).list.drop_nulls()


def _quarantine_rows(
    frame: pl.DataFrame,
    contract: Contract,
    columns: Collection[str],
    stamp: datetime,
    *,
    rule_id: pl.Expr,
    failed_rules: pl.Expr,
    reason: pl.Expr,
) -> pl.DataFrame:
    return quarantine_rows(
        frame,
        rule_id=rule_id,
        failed_rules=failed_rules,
        reason=reason,
        raw_record=_raw_record(columns, contract),
        quarantined_at=stamp,
    )


def _quarantine_rejected(
    rejected: pl.DataFrame,
    contract: Contract,
    rules: Sequence[Rule],
    fails: Sequence[str],
    columns: Collection[str],
    stamp: datetime,
) -> pl.DataFrame:
    errors = [(r, f) for r, f in zip(rules, fails, strict=True) if r.severity == "error"]
    if not errors or rejected.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    # coalesce over when/then picks the first failing error rule in contract order. The reason
    # is then built per rule on that rule's rows only: a when/then chain of reasons would format
    # every rule's reason for every rejected row.
    first_rule = pl.coalesce(
        [pl.when(pl.col(f)).then(pl.lit(i)) for i, (_, f) in enumerate(errors)]
    )
    labelled = rejected.with_columns(first_rule.alias("__first_rule"))
    parts = []
    for (index,), part in labelled.partition_by("__first_rule", as_dict=True).items():
        rule = errors[index][0]
        parts.append(
            _quarantine_rows(
                part,
                contract,
                columns,
                stamp,
                rule_id=pl.lit(rule.id),
                failed_rules=_failed_rules(rules, fails),
                reason=reason_expr(rule, columns),
            )
        )
    return pl.concat(parts, how="vertical").sort(_ROW_ORDER, nulls_last=True, maintain_order=True)


def _key_text(key: Sequence[str]) -> list[pl.Expr]:
    parts: list[pl.Expr] = []
    for i, name in enumerate(key):
        parts.append(pl.lit(f"{', ' if i else ''}{name}="))
        parts.append(pl.col(name).cast(pl.String).fill_null("null"))
    return parts


def _quarantine_duplicates(
    duplicates: pl.DataFrame,
    contract: Contract,
    rules: Sequence[Rule],
    fails: Sequence[str],
    columns: Collection[str],
    stamp: datetime,
) -> pl.DataFrame:
    pk_rule = contract.primary_key_rule
    if pk_rule is None or duplicates.is_empty():
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    warnings = [(r, f) for r, f in zip(rules, fails, strict=True) if r.severity == "warning"]
    reason = pl.concat_str(
        [
            pl.lit(f"{pk_rule.id}: duplicate of "),
            *_key_text(contract.primary_key),
            pl.lit(" kept from "),
            pl.col("__kept_file").cast(pl.String).fill_null("null"),
            pl.lit(" line "),
            pl.col("__kept_line").cast(pl.String).fill_null("null"),
            location_expr(columns),
        ]
    )
    return _quarantine_rows(
        duplicates,
        contract,
        columns,
        stamp,
        rule_id=pl.lit(pk_rule.id),
        failed_rules=_failed_rules(
            [r for r, _ in warnings], [f for _, f in warnings], first=pk_rule.id
        ),
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# Published rows


def _publish(kept: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    targets = [(c.name, c.dtype) for c in contract.columns]
    targets += [(p.name, p.dtype) for p in contract.platform_columns() if p.name in kept.columns]
    for name, dtype in targets:
        _refuse_lossy_cast(kept, contract, name, dtype)
    try:
        return kept.select(_cast(name, kept.schema[name], dtype) for name, dtype in targets)
    except pl.exceptions.PolarsError:
        for name, dtype in targets:  # find the column to name in the error
            try:
                kept.select(_cast(name, kept.schema[name], dtype))
            except pl.exceptions.PolarsError as exc:
                raise SplitError(
                    f"{contract.dataset}: column {name!r} ({kept.schema[name]}) does not cast to "
                    f"the contract's {dtype}: {exc}"
                ) from exc
        raise


def _cast(name: str, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if isinstance(source, pl.Datetime) and isinstance(target, pl.Datetime):
        # Naive timestamps are UTC by convention; convert rather than relabel aware ones.
        if source.time_zone and not target.time_zone:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        elif not source.time_zone and target.time_zone:
            column = column.dt.replace_time_zone("UTC")
    return column.cast(target, strict=True)


def _refuse_lossy_cast(
    kept: pl.DataFrame, contract: Contract, name: str, target: pl.DataType
) -> None:
    """Polars truncates 1.5 → 1 when casting floats to integers, even with ``strict``."""
    source = kept.schema[name]
    if not (source.is_float() and target.is_integer()):
        return
    fractional = kept.filter(pl.col(name) != pl.col(name).round(0))
    if fractional.height:
        first = fractional.row(0, named=True)
        raise SplitError(
            f"{contract.dataset}: column {name!r} has fractional values for integer type "
            f"{target}, e.g. {first[name]} ({first.get('_source_file')} line "
            f"{first.get('_source_line')}); add a type rule so the transform nulls them"
        )


def _dropped(typed: pl.DataFrame, contract: Contract) -> tuple[str, ...]:
    published = {c.name for c in contract.columns} | {p.name for p in contract.platform_columns()}
    flags = {r.flag for r in contract.rules if r.flag}
    return tuple(
        c
        for c in typed.columns
        if c not in published
        and c not in flags
        and c != "_raw_record"
        and not c.endswith(RAW_SUFFIX)
        and not c.startswith(DELIVERED_PREFIX)
    )


# --------------------------------------------------------------------------------------------
# Evidence: samples and drift


def _samples(
    frame: pl.DataFrame,
    contract: Contract,
    rules: Sequence[Rule],
    fails: Sequence[str],
    columns: Collection[str],
    rule_failures: dict[str, int],
) -> dict[str, list[dict[str, Any]]]:
    lazy = frame.lazy()
    wanted = [(r, f) for r, f in zip(rules, fails, strict=True) if r.id in rule_failures]
    queries = [
        lazy.filter(pl.col(f))
        .sort(_ROW_ORDER, nulls_last=True)
        .head(SAMPLE_SIZE)
        .select(
            pl.lit(r.id).alias("rule"),
            pl.col("_source_file").cast(pl.String).alias("file"),
            pl.col("_source_line").cast(pl.Int64).alias("line"),
            pl.lit(r.column, dtype=pl.String).alias("column"),
            value_expr(r, columns).alias("value"),
            reason_expr(r, columns).alias("reason"),
            _raw_record(columns, contract).alias("raw_record"),
        )
        for r, f in wanted
    ]
    results = pl.collect_all(queries) if queries else []
    return {r.id: rows.to_dicts() for (r, _), rows in zip(wanted, results, strict=True)}


def _duplicate_samples(
    quarantined: pl.DataFrame, pk_rule: Rule, contract: Contract
) -> list[dict[str, Any]]:
    rows = quarantined.filter(pl.col("rule_id") == pk_rule.id).head(SAMPLE_SIZE)
    return [
        {
            "rule": pk_rule.id,
            "file": row["_source_file"],
            "line": row["_source_line"],
            "column": ", ".join(contract.primary_key),
            "value": None,
            "reason": row["reason"],
            "raw_record": row["raw_record"],
        }
        for row in rows.iter_rows(named=True)
    ]


def _drift(typed: pl.DataFrame) -> tuple[tuple[str, ...], int]:
    """Names of undeclared delivered columns and how many rows carry them."""
    if "_extra_columns" not in typed.columns:
        return (), 0
    values = typed.get_column("_extra_columns").cast(pl.String).drop_nulls()
    values = values.filter(~values.str.strip_chars().is_in(["", "{}", "null"]))
    names: set[str] = set()
    # Distinct values are few (same columns, varying values); parsing a bounded number is enough
    # to name the columns without a Python loop over every row.
    for text in values.unique().head(_MAX_DRIFT_VALUES_PARSED):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            names.update(parsed)
    return tuple(sorted(names)), values.len()
