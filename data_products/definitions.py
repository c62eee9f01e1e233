"""The code location: everything under ``assets/`` and ``sensors/`` plus the platform's policy.

This file names no domain. A domain appears by adding ``assets/<domain>/``, its contracts, its dbt
models and its descriptor in ``data_products/domains/``.
"""

import assets
import sensors
from data_products.lib.discovery import apply_platform_policy, discover
from resources import default_resources

defs = apply_platform_policy(discover(assets, sensors), resources=default_resources())
