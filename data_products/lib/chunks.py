"""Bounded-memory range runs: a single-run backfill covers many partitions, but holding all of
them in memory at once does not scale (7 days x 1M lines needs more than a laptop has). A range
is processed as consecutive chunks of whole partitions under a row budget, each written
atomically per partition, and the contract checks of every chunk are merged into one result
per check, so the UI still shows one evaluation per check for the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg


def plan_chunks(
    keys: Sequence[str], rows_by_key: Mapping[str, int], budget: int
) -> list[list[str]]:
    """Consecutive groups of partition keys whose row counts stay within ``budget``.

    A partition larger than the budget is a chunk of its own (partitions are never split: they
    are the unit of atomic replacement). Keys with no rows join the current chunk.
    """
    if budget < 1:
        raise ValueError(f"chunk budget must be positive, got {budget}")
    chunks: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for key in keys:
        size = rows_by_key.get(key, 0)
        if current and rows + size > budget:
            chunks.append(current)
            current, rows = [], 0
        current.append(key)
        rows += size
    if current:
        chunks.append(current)
    return chunks


ADDITIVE_METADATA = frozenset(
    {
        "rows_evaluated",
        "failing_rows",
        "rows_in",
        "rows_published",
        "rows_quarantined",
        "table_rows",
        "quarantine_table_rows",
        "duplicates_quarantined",
        "duplicate_rows_published",
        "failure_count",
        "rows_with_unexpected_columns",
    }
)
"""Check metadata counts scoped to a chunk's partitions, so they add up over a run."""


def merge_check_results(
    chunks: Sequence[tuple[str, Sequence[dg.AssetCheckResult]]],
    *,
    partitions: str,
) -> list[dg.AssetCheckResult]:
    """One result per check for the whole run: it passes only if it passed in every chunk.

    The first failing chunk's result is the representative (its description names the file,
    line and rule); counts (``ADDITIVE_METADATA``) are summed over chunks, and the metadata lists
    the chunks that failed, so a failure in one day of a 30-day backfill is never averaged away.
    """
    if not chunks:
        return []
    if len(chunks) == 1:
        return list(chunks[0][1])
    by_name: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for label, results in chunks:
        for result in results:
            by_name.setdefault(_name(result), []).append((label, result))
    merged = []
    for outcomes in by_name.values():
        failed = [(label, r) for label, r in outcomes if not r.passed]
        label, representative = failed[0] if failed else outcomes[-1]
        metadata = dict(representative.metadata or {})
        for key in ADDITIVE_METADATA & metadata.keys():
            counts = [_int((r.metadata or {}).get(key)) for _, r in outcomes]
            metadata[key] = dg.MetadataValue.int(sum(c or 0 for c in counts))
        evaluated, failing = (
            _int(metadata.get("rows_evaluated")),
            _int(metadata.get("failing_rows")),
        )
        if "failing_pct" in metadata and evaluated and failing is not None:
            metadata["failing_pct"] = dg.MetadataValue.float(round(100 * failing / evaluated, 4))
        metadata["partitions"] = dg.MetadataValue.text(partitions)
        metadata["chunks"] = dg.MetadataValue.int(len(outcomes))
        metadata["chunks_failed"] = dg.MetadataValue.json([lbl for lbl, _ in failed])
        description = representative.description or ""
        if failed:
            more = f" (and {len(failed) - 1} more chunks)" if len(failed) > 1 else ""
            description = f"[{label}] {description}{more}"
        else:
            description = f"passed in all {len(outcomes)} chunks; last: {description}"
        merged.append(
            dg.AssetCheckResult(
                asset_key=representative.asset_key,
                check_name=representative.check_name,
                passed=not failed,
                severity=representative.severity,
                description=description,
                metadata=metadata,
            )
        )
    return merged


def _name(result: dg.AssetCheckResult) -> str:
    return f"{result.asset_key.to_user_string() if result.asset_key else ''}:{result.check_name}"


def _int(value: object) -> int | None:
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
