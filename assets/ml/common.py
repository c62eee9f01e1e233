"""What every ml asset shares: the domain's keys, partitions, spec defaults and the contract
schema check."""

from __future__ import annotations

import dagster as dg
import polars as pl

from assets.aviation.partitions import DAILY
from data_products.lib.contracts import load_contract_for
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


def contract_schema_check(
    name: DatasetName, frame: pl.DataFrame, *, check_name: str = "schema"
) -> dg.AssetCheckResult:
    """The dataset's rows against its contract's pandera schema (types, required, unique)."""
    import pandera.errors
    import pandera.polars

    contract = load_contract_for(name.asset_key)
    try:
        contract.pandera_schema().validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases.head(10).with_columns(pl.col("failure_case").cast(pl.String))
        first = cases.row(0, named=True) if cases.height else {}
        return dg.AssetCheckResult(
            asset_key=name.asset_key,
            check_name=check_name,
            passed=False,
            description=(
                f"{name}: {exc.failure_cases.height} schema failure(s) against "
                f"{contract.path.name}; first: column {first.get('column')} check "
                f"{first.get('check')} value {first.get('failure_case')} (row {first.get('index')})"
            ),
            metadata={"failure_count": exc.failure_cases.height},
        )
    return dg.AssetCheckResult(
        asset_key=name.asset_key,
        check_name=check_name,
        passed=True,
        description=f"{frame.height} rows match {contract.path.name}",
        metadata={"rows": frame.height},
    )
