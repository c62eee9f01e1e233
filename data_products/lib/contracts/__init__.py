"""Data contracts (ODCS v3 YAML under ``contracts/<domain>/``) compiled for the platform.

- ``loader``: YAML → validated ODCS model → ``Contract`` (and the conventions contracts follow);
- ``model``: the compiled values (``Contract``, ``Column``, ``Rule``);
- ``expressions``: each row rule as polars expressions, and the pandera schema built from them;
- ``checks``: Dagster check specs and results.
- ``registry`` and ``kinds/``: one module per rule kind (compile step, failure expression, reason,
  description, check evaluation), found by discovery; the modules above ask it and name no kind.

The quarantine split that applies a contract's row rules lives in ``data_products.lib.quarantine``.
"""

from data_products.lib.contracts.checks import evaluate_checks
from data_products.lib.contracts.loader import (
    CONTRACTS_DIR,
    ENGINE,
    PLATFORM_CHECK_NAMES,
    discover_contracts,
    load_contract,
    load_contract_for,
)
from data_products.lib.contracts.model import (
    DEFAULT_THRESHOLD_PCT,
    PLATFORM_COLUMNS,
    Column,
    Comparison,
    Contract,
    ContractError,
    Freshness,
    Rule,
)

__all__ = [
    "CONTRACTS_DIR",
    "DEFAULT_THRESHOLD_PCT",
    "ENGINE",
    "PLATFORM_CHECK_NAMES",
    "PLATFORM_COLUMNS",
    "Column",
    "Comparison",
    "Contract",
    "ContractError",
    "Freshness",
    "Rule",
    "discover_contracts",
    "evaluate_checks",
    "load_contract",
    "load_contract_for",
]
