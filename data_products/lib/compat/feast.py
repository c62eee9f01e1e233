"""Feast internals (written against feast 0.67.0).

``tests/lib/test_compat.py`` fails when the installed feast is not the version below or when the
internal function used here moved or changed its signature: re-check this module then.

``offline_store``: the offline store a feature store is configured with, as an object of its own.
``data_products.lib.feast_store`` joins an entity frame against a bounded copy of one feature view
(a scratch file source) without registering that copy; Feast's public
``FeatureStore.get_historical_features`` only joins registered views, and the offline store it
calls is built by ``feast.infra.offline_stores.offline_utils.get_offline_store_from_config``,
which is not part of Feast's public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

if TYPE_CHECKING:
    from feast.infra.offline_stores.offline_store import OfflineStore
    from feast.repo_config import RepoConfig

WRITTEN_AGAINST = "0.67.0"
"""The feast version this module's internal name was read from."""


def offline_store(config: RepoConfig) -> OfflineStore:
    """The offline store ``config`` names (file, DuckDB, ...), as ``FeatureStore`` builds it."""
    return get_offline_store_from_config(config.offline_store)
