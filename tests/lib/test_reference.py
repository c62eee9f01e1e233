"""Reference snapshots (the factories' unpartitioned option, ``data_products.lib.bronze`` and
``silver``): which delivered snapshot is the newest, and an unpartitioned bronze → contract-governed
silver pair materialised in-process on a tiny
airlines snapshot under the test's data home (the real ``aviation.silver.airlines`` contract)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.aviation import transforms
from data_products.lib.bronze import REFERENCE_FOLDER, bronze_asset, latest_reference_drop
from data_products.lib.keys import InvalidIdentifierError
from data_products.lib.silver import silver_asset
from resources.warehouse import WarehouseResource

CARRIERS = [f"C{i}" for i in range(10)]  # the contract wants at least 10 carriers


def _deliver(landing: Path, snapshot: str, dataset: str, text: str) -> Path:
    path = landing / "aviation" / REFERENCE_FOLDER / snapshot / f"{dataset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _airlines(rows: list[tuple[str, str]]) -> str:
    return "carrier,name\n" + "".join(f"{c},{n}\n" for c, n in rows)


def test_latest_snapshot_is_the_newest_dated_folder_that_has_the_dataset(tmp_path: Path) -> None:
    _deliver(tmp_path, "2013-01-01", "airlines", _airlines([("AA", "American")]))
    newest = _deliver(tmp_path, "2013-06-01", "airlines", _airlines([("AA", "American")]))
    _deliver(tmp_path, "2013-09-01", "planes", "tailnum\nN1\n")  # newer, but no airlines.csv
    _deliver(tmp_path, "latest", "airlines", "carrier,name\n")  # not a snapshot date
    _deliver(tmp_path, "2013-6-30", "airlines", "carrier,name\n")  # not ISO: ignored

    assert latest_reference_drop(tmp_path, "aviation", "airlines") == ("2013-06-01", newest)
    snapshot, _ = latest_reference_drop(tmp_path, "aviation", "planes")
    assert snapshot == "2013-09-01"


def test_no_snapshot_names_the_folder_it_looked_in(tmp_path: Path) -> None:
    _deliver(tmp_path, "2013-01-01", "planes", "tailnum\nN1\n")
    expected = f"{tmp_path}/aviation/reference/<YYYY-MM-DD>/airlines.csv"
    with pytest.raises(FileNotFoundError, match=expected):
        latest_reference_drop(tmp_path, "aviation", "airlines")
    with pytest.raises(FileNotFoundError, match="aviation/bronze/airlines"):
        latest_reference_drop(tmp_path / "nowhere", "aviation", "airlines")


@pytest.mark.parametrize(("domain", "dataset"), [("../aviation", "airlines"), ("aviation", "a b")])
def test_names_are_validated_before_any_path_is_built(
    tmp_path: Path, domain: str, dataset: str
) -> None:
    with pytest.raises(InvalidIdentifierError):
        latest_reference_drop(tmp_path, domain, dataset)


def _materialise(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    bronze = bronze_asset("aviation", "airlines", description="airlines as delivered")
    silver = silver_asset(
        "aviation.silver.airlines",
        inputs={"bronze": "aviation/bronze/airlines"},
        build=transforms.type_airlines,
    )
    return dg.materialize(
        [bronze, silver],
        instance=instance,
        resources={"warehouse": WarehouseResource()},
        raise_on_error=False,
    )


def _table(home: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM {name}").pl()


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def _materialisations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    return {
        e.asset_key.to_user_string(): {
            k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()
        }
        for e in result.all_events
        if e.is_step_materialization
    }


def test_reference_silver_publishes_the_newest_snapshot_and_quarantines_its_bad_rows(
    data_home: Path,
) -> None:
    landing = data_home / "landing"
    old = [(c, f"Old {c}") for c in CARRIERS]
    _deliver(landing, "2013-01-01", "airlines", _airlines([*old, ("ZZ", "Gone Airways")]))
    new = [(c, f"Airline {c}") for c in CARRIERS]
    _deliver(landing, "2013-06-01", "airlines", _airlines([*new, ("XX", "NA")]))

    with dg.DagsterInstance.ephemeral() as instance:
        result = _materialise(instance)
    assert result.success

    # Bronze: the newest snapshot only, as delivered, stamped with its date.
    bronze = _table(data_home, "aviation_bronze.airlines")
    assert sorted(bronze["carrier"]) == sorted([*CARRIERS, "XX"])
    assert set(bronze["partition_date"].cast(pl.String)) == {"2013-06-01"}

    # Silver: the ten named carriers published; the nameless one quarantined with its rule.
    silver = _table(data_home, "aviation_silver.airlines")
    assert sorted(silver.select("carrier", "name").rows()) == sorted(new)
    quarantine = _table(data_home, "aviation_silver.airlines_quarantine")
    assert quarantine.height == 1
    assert quarantine["rule_id"].to_list() == ["airlines.name.required"]

    reported = _materialisations(result)
    assert reported["aviation/silver/airlines"]["rows_in"] == 11
    assert reported["aviation/silver/airlines"]["dagster/row_count"] == 10
    assert reported["aviation/silver/airlines"]["quarantined_rows"] == 1
    assert reported["aviation/bronze/airlines"]["snapshot"] == "2013-06-01"
    checks = _checks(result)
    assert checks["airlines__snapshot__row_count"] is True
    assert checks["rows_reconcile"] is True
    # Quarantined, not hidden: the rule's check reports the rejected row.
    assert checks["airlines__name__required"] is False

    # A newer, truncated snapshot replaces the table whole and fails the row-count rule.
    _deliver(landing, "2013-09-01", "airlines", _airlines(new[:3]))
    with dg.DagsterInstance.ephemeral() as instance:
        rerun = _materialise(instance)
    assert sorted(_table(data_home, "aviation_silver.airlines")["carrier"]) == CARRIERS[:3]
    assert _table(data_home, "aviation_silver.airlines_quarantine").height == 0
    assert _checks(rerun)["airlines__snapshot__row_count"] is False


def test_a_daily_step_with_references_refuses_ambiguous_or_unknown_inputs() -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2013-01-01")
    with pytest.raises(ValueError, match=r"aliases \['bronze'\] are both input and reference"):
        silver_asset(
            "aviation.silver.flights",
            inputs={"bronze": "aviation/bronze/flights"},
            references={"bronze": "aviation/silver/airports"},
            build=lambda bronze: bronze,
            partitions_def=daily,
        )

    def needs_weather(bronze: pl.DataFrame, weather: pl.DataFrame) -> pl.DataFrame:
        return bronze

    with pytest.raises(ValueError, match=r"asks for \['weather'\]"):
        silver_asset(
            "aviation.silver.flights",
            inputs={"bronze": "aviation/bronze/flights"},
            references={"airports": "aviation/silver/airports"},
            build=needs_weather,
            partitions_def=daily,
        )
