"""The ``feast`` CLI's entry to the ml domain's feature repository.

The objects are declared once, in ``assets.ml.feature_definitions``, and built here for the data
home the CLI runs on (the same ``DATA_PRODUCTS_HOME`` that ``feature_store.yaml`` expands), so
``feast apply``, ``feast ui`` and the Dagster assets register identical definitions. Feast
collects Feast objects found at module level, hence the names bound below.
"""

import os
import sys

from assets.ml.feature_definitions import build_repo_objects
from data_products.lib.settings import get_settings

if not os.environ.get("DATA_PRODUCTS_HOME"):
    sys.exit(
        "feature_repo: set DATA_PRODUCTS_HOME (e.g. DATA_PRODUCTS_HOME=$PWD/.data): "
        "feature_store.yaml and the file sources live under it"
    )

_settings = get_settings()
# Feast creates the registry's folder but not its parents: a fresh data home has neither.
_settings.features.mkdir(parents=True, exist_ok=True)
for _object in build_repo_objects(_settings.home):
    globals()[f"{type(_object).__name__.lower()}_{_object.name}"] = _object
