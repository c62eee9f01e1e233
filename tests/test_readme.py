"""The README is the product's front door: every command and path it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
MAKEFILE = (REPO / "Makefile").read_text()
TRACKED_TOP_LEVEL = {
    "data_products",
    "assets",
    "resources",
    "sensors",
    "contracts",
    "dbt_project",
    "tests",
    "bench",
    "scripts",
    ".ci",
}


def test_every_make_target_named_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    assert {"demo", "test"} <= named
    assert named - targets == set()


def test_the_two_setup_commands_are_demo_and_test() -> None:
    block = re.search(r"## Two commands\s+```bash\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_every_repository_path_named_exists() -> None:
    candidates = set(re.findall(r"`([a-z_.]+/[A-Za-z0-9_./<>{},-]*)`", README))
    checked = 0
    for candidate in sorted(candidates):
        top = candidate.split("/")[0]
        if "<" in candidate or "{" in candidate or top not in TRACKED_TOP_LEVEL:
            continue  # templates, and data-home paths that runs create
        path = candidate.rstrip("/")
        assert (REPO / path).exists(), f"README names {candidate}, which does not exist"
        checked += 1
    assert checked >= 5


def test_every_module_named_exists() -> None:
    for module in set(re.findall(r"`(data_products\.lib\.[a-z_]+)", README)):
        parts = module.split(".")
        assert (REPO.joinpath(*parts).with_suffix(".py")).exists() or REPO.joinpath(
            *parts
        ).is_dir(), module


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO / ".ci" / "run").read_text()
