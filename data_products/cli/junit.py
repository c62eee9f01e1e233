"""JUnit XML from slice runs, so a CI system can gate on what every check said
(``make checks``, and the report ``make demo`` leaves behind)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from data_products.cli.runs import SliceRun


def write_junit(runs: Sequence[SliceRun], path: Path) -> Path:
    """JUnit XML: one test case per check evaluation, failures for ERROR checks that failed,
    plus one case per failed or skipped asset, so a CI system can gate on it."""
    suites = ET.Element("testsuites", name="data-products checks")
    for run in runs:
        failures = 0
        suite = ET.SubElement(suites, "testsuite", name=f"run {run.run_id} {run.partitions}")
        for check in run.checks:
            case = ET.SubElement(
                suite, "testcase", classname=check.asset.replace("/", "."), name=check.check
            )
            if not check.passed:
                tag = "failure" if check.severity == "ERROR" else "skipped"
                failures += tag == "failure"
                node = ET.SubElement(case, tag, message=check.description[:500])
                node.text = "\n".join(f"{k}: {v}" for k, v in check.metadata.items())
        for step in run.failed_steps:
            failures += 1
            case = ET.SubElement(suite, "testcase", classname="steps", name=step)
            ET.SubElement(case, "failure", message=f"step {step} failed")
        for asset in run.skipped_assets:
            case = ET.SubElement(suite, "testcase", classname="assets", name=asset)
            ET.SubElement(case, "skipped", message="not materialised (upstream failed or blocked)")
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
    return path
