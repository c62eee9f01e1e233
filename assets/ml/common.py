"""What every ml asset shares: the domain's keys, partitions and spec defaults."""

from __future__ import annotations

from assets.aviation.partitions import DAILY
from data_products.lib.keys import DatasetName

DOMAIN = "ml"
PARTITIONS = DAILY
"""The aviation days: every partitioned ml asset is incremental by the day its flights fly."""

AVIATION_FLIGHTS = DatasetName("aviation", "silver", "flights")
AVIATION_WEATHER = DatasetName("aviation", "silver", "weather")
AVIATION_PLANES = DatasetName("aviation", "silver", "planes")
AVIATION_ROTATIONS = DatasetName("aviation", "gold", "delay_propagation")

FEATURE_REGISTRY = DatasetName(DOMAIN, "serving", "feature_registry")
ONLINE_FEATURES = DatasetName(DOMAIN, "serving", "online_features")
TRAINING_SET = DatasetName(DOMAIN, "gold", "training_set")
DELAY_MODEL = DatasetName(DOMAIN, "gold", "delay_model")
