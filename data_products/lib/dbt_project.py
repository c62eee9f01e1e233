"""The repository's dbt project as a ``DbtProject``, in a module of its own.

Why a module of its own: ``dagster-dbt project prepare-and-package --file
data_products/lib/dbt_project.py`` imports this file to find the project and write
``dbt_project/target/manifest.json``; it must not import any asset definitions, which need that
manifest to exist. Under ``dagster dev`` the manifest is re-parsed at every code load instead, so
model edits show up without a separate step; anywhere else it must have been prepared.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtProject

from data_products.lib.compat.environment import prepend_to_path
from data_products.lib.settings import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

ENVIRONMENT_BIN = Path(sys.executable).parent
"""Where this interpreter's console scripts live: the pinned dbt-core 1.11 CLI is one of them."""


def use_environment_dbt() -> None:
    """Put this environment's ``bin`` first on PATH when it holds a ``dbt``.

    dagster-dbt's project preparer (``prepare_if_dev``, ``prepare-and-package``) runs whatever
    ``dbt`` PATH finds and offers no way to name the executable. Started as
    ``.venv/bin/dagster dev`` or ``.venv/bin/pytest`` without an activated environment, PATH has
    no dbt at all; with another dbt on PATH it would parse with the wrong version. Idempotent.
    """
    if (ENVIRONMENT_BIN / "dbt").exists():
        prepend_to_path(str(ENVIRONMENT_BIN))


use_environment_dbt()

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR)
"""profiles.yml lives in the project directory (the default ``profiles_dir``)."""

DBT_PROJECT.prepare_if_dev()
