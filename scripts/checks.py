"""`make checks`: materialise every domain's sample range, run every asset check, write a JUnit
report and exit non-zero on any failed ERROR-severity check or failed step (a CI gate)."""

from __future__ import annotations

import sys

from data_products.cli.junit import write_junit
from data_products.lib.settings import get_settings
from scripts.slices import run_all_slices


def main() -> int:
    runs = run_all_slices()
    report = write_junit(runs, get_settings().reports_dir / "checks.xml")
    checks = [c for run in runs for c in run.checks]
    gate = [c for c in checks if c.is_gate_failure]
    failed_steps = [s for run in runs for s in run.failed_steps]
    print(f"{len(checks)} check evaluations, {len(gate)} failed at ERROR severity; JUnit: {report}")
    for check in gate:
        print(f"  FAILED {check.asset} :: {check.check}: {check.description}")
    for step in failed_steps:
        print(f"  FAILED step {step}")
    return 1 if gate or failed_steps else 0


if __name__ == "__main__":
    sys.exit(main())
