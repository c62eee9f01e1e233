"""The code location: everything under ``assets/`` and ``sensors/`` plus the platform's policy.

This file names no domain. A domain appears by adding ``assets/<domain>/``, its contracts, its dbt
models and its descriptor in ``data_products/domains/``.
"""

import warnings

import dagster as dg

# We deliberately use Dagster features it labels beta/preview (single-run backfill policies,
# module loaders, freshness policies); the notices are for us, not for every run's log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

import assets  # noqa: E402 - after the warning filters, which must precede the asset modules
import sensors  # noqa: E402
from data_products.lib.discovery import apply_platform_policy, discover  # noqa: E402
from resources import default_resources  # noqa: E402

defs = apply_platform_policy(discover(assets, sensors), resources=default_resources())
