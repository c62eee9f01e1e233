"""`make demo`: land every domain's demo slice, materialise it bronze → gold in one run per
domain, run every check, then print what was built and where to look."""

from __future__ import annotations

import sys
from collections import Counter

import duckdb

from data_products.cli.junit import write_junit
from data_products.cli.runs import SliceRun
from data_products.lib.lineage import read_events
from data_products.lib.settings import get_settings
from scripts.slices import run_all_slices


def _layer_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int]]:
    # Gold marts are tables; bronze and silver are views over their Parquet partitions.
    tables = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema LIKE '%\\_%' ESCAPE '\\' "
        "ORDER BY table_schema, table_name"
    ).fetchall()
    rows = []
    for schema, table, _ in tables:
        # Names come from the catalog itself, so quoting them is enough here.
        (count,) = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
        rows.append((schema, table, count))
    return rows


def _quarantine_by_rule(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str, int]]):
    counts: Counter[tuple[str, str]] = Counter()
    for schema, table, _ in tables:
        if table.endswith("_quarantine"):
            for rule, n in con.execute(
                f'SELECT rule_id, count(*) FROM "{schema}"."{table}" GROUP BY 1 ORDER BY 2 DESC'
            ).fetchall():
                counts[(f"{schema}.{table}", rule)] = n
    return counts


def summarise(runs: list[SliceRun]) -> int:
    settings = get_settings()
    print("\n=== data-products demo ===")
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        tables = _layer_rows(con)
        print(f"\nRows per layer (DuckDB warehouse {settings.warehouse_path}):")
        for schema, table, count in tables:
            print(f"  {schema + '.' + table:<48} {count:>10,}")
        print("\nRows quarantined, by rule:")
        for (table, rule), n in sorted(
            _quarantine_by_rule(con, tables).items(), key=lambda i: -i[1]
        ):
            print(f"  {table:<40} {rule:<40} {n:>6,}")
    checks = [c for run in runs for c in run.checks]
    failed = [c for c in checks if not c.passed]
    print(
        f"\nChecks: {len(checks) - len(failed)} passed, {len(failed)} failed "
        f"({sum(c.is_gate_failure for c in failed)} at ERROR severity)"
    )
    for c in failed:
        print(
            f"  {'FAIL' if c.severity == 'ERROR' else 'WARN'} {c.asset} :: {c.check}: "
            f"{c.description}"
        )
    report = write_junit(runs, settings.reports_dir / "checks.xml")
    events = read_events(settings.lineage_dir)
    by_type = Counter(e.get("eventType") for e in events)
    print(
        f"\nLineage: {len(events)} OpenLineage events ({dict(by_type)}) in {settings.lineage_dir}"
    )
    print(f"JUnit check report: {report}")
    print(
        "\nBrowse it: `make dev`, then open http://127.0.0.1:3000 (Assets → Lineage; each run "
        "above is under Runs)."
    )
    gate = any(c.is_gate_failure for c in checks) or any(r.failed_steps for r in runs)
    if gate:
        print("\nDemo FAILED: a blocking check or a step failed (see above).")
    return 1 if gate else 0


def main() -> int:
    return summarise(run_all_slices())


if __name__ == "__main__":
    sys.exit(main())
