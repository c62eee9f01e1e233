"""The Feast repository the CLI uses (``feature_repo/``) is the one Dagster applies: its YAML
expands to the configuration built from the settings, and ``feast apply`` registers every view
on the data home given by DATA_PRODUCTS_HOME (and the repository refuses to load without it)."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from feast import FeatureStore, RepoConfig

from assets.ml.feature_definitions import VIEWS
from data_products.lib.feast_store import FEATURE_REPO, repo_config_dict
from data_products.lib.settings import REPO_ROOT

FEAST = str(Path(sys.executable).parent / "feast")


def test_yaml_expands_to_the_settings_configuration(data_home: Path) -> None:
    text = (FEATURE_REPO / "feature_store.yaml").read_text()
    assert yaml.safe_load(os.path.expandvars(text)) == repo_config_dict(str(data_home))


def _feast(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["DATA_PRODUCTS_HOME"] = str(home)
    return subprocess.run(
        [FEAST, "-c", "feature_repo", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_feast_cli_applies_the_repository_on_the_data_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    applied = _feast("apply", home=home)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert (home / "features" / "registry.db").exists()
    registry = FeatureStore(
        config=RepoConfig(repo_path=FEATURE_REPO, **repo_config_dict(str(home)))
    )
    assert sorted(v.name for v in registry.list_feature_views()) == sorted(v.name for v in VIEWS)
    [source] = [
        v.batch_source.path for v in registry.list_feature_views() if v.name == "origin_delay"
    ]
    assert Path(source).is_relative_to(home)  # exports under the data home, not the repository
    assert sorted(p.name for p in FEATURE_REPO.iterdir() if not p.name.startswith("__")) == [
        "feature_store.yaml",
        "repo.py",
    ]


def test_repo_without_a_data_home_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATA_PRODUCTS_HOME", raising=False)
    with pytest.raises(SystemExit, match="set DATA_PRODUCTS_HOME"):
        runpy.run_path(str(FEATURE_REPO / "repo.py"))
