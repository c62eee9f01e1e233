"""The silver contract is the only declaration of the stream's row rules: editing a rule in a copy
of ``contracts/payments/transactions.yaml`` changes what the stream quarantines, under the rule's
id, and the published tables follow."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.payments.batch import BatchReport, process_batch
from assets.payments.reference import CONSUMER, TOPIC
from assets.payments.tables import SILVER, silver_contract
from data_products.lib.contracts import Contract, ContractError, load_contract_for
from data_products.lib.contracts.loader import CONTRACTS_DIR
from data_products.lib.eventlog import EventLog
from data_products.lib.microbatch import committed_ends, plan_batch
from data_products.lib.settings import get_settings
from tests.payments.helpers import SMALL, produce_small


def _edited_contract(root: Path, old: str, new: str) -> Contract:
    """A copy of the payments contracts under ``root`` with ``old`` replaced by ``new`` (once)
    in transactions.yaml, loaded from there."""
    shutil.copytree(CONTRACTS_DIR / "payments", root / "payments")
    path = root / "payments" / "transactions.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return load_contract_for(SILVER, root=root)


def _drain(
    log: EventLog, contract: Contract | None
) -> tuple[list[BatchReport], dict[str, pl.DataFrame]]:
    reports = []
    with duckdb.connect(str(get_settings().warehouse_path)) as con:
        while ranges := plan_batch(
            committed_ends(con, CONSUMER, log.topic, log.partitions), log.end_offsets(), 700
        ):
            reports.append(
                process_batch(
                    con, log, ranges, consumer=CONSUMER, batch_id=f"b{len(reports)}",
                    contract=contract,
                )
            )  # fmt: skip
        tables = {
            name: con.execute(f"SELECT * FROM payments_{name}").pl()
            for name in ("bronze.transactions", "silver.transactions", "silver.late_events")
        }
        tables["quarantine"] = con.execute(
            "SELECT * FROM payments_silver.transactions_quarantine "
            "ORDER BY _source_file, _source_line"
        ).pl()
    return reports, tables


@pytest.mark.parametrize(
    ("old", "new", "rule_id", "said", "breaks"),
    [
        (
            "pattern: ^[A-Z]{3}$",
            "pattern: ^(USD|EUR)$",
            "transactions.currency.pattern",
            "does not match ^(USD|EUR)$",
            lambda: ~pl.col("currency").str.contains(r"^(USD|EUR)$"),
        ),
        (
            "exclusiveMinimum: 0",
            "exclusiveMinimum: 50",
            "transactions.amount.range",
            "must be > 50",
            lambda: pl.col("amount") <= 50,
        ),
    ],
    ids=["currency_pattern", "amount_bound"],
)
def test_editing_a_rule_in_the_contract_changes_what_the_stream_quarantines(
    data_home: Path, tmp_path: Path, old: str, new: str, rule_id: str, said: str, breaks
) -> None:
    log, _ = produce_small(SMALL)
    # The repository's contract: the simulated stream breaks none of its rules.
    reports, tables = _drain(log, None)
    assert sum(r.quarantined for r in reports) == 0
    assert tables["quarantine"].is_empty()
    assert silver_contract().rule(rule_id)  # the edited rule exists before the edit too

    # The same records through a copy of the contract with one rule edited.
    edited = _edited_contract(tmp_path / "contracts", old, new)
    other_home = tmp_path / "edited-home"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATA_PRODUCTS_HOME", str(other_home))
        log, _ = produce_small(SMALL)
        reports, tables = _drain(log, edited)

    bronze = tables["bronze.transactions"]
    # The log position is the quarantine's lineage: <topic>/p<partition> and the offset.
    expected = bronze.filter(breaks()).select(
        pl.format("{}/p{}", pl.lit(TOPIC), "log_partition").alias("_source_file"),
        pl.col("log_offset").alias("_source_line"),
    )
    assert expected.height > 0, "the edit must reject some simulated records"
    quarantine = tables["quarantine"]
    assert (
        quarantine.select("_source_file", "_source_line").rows()
        == expected.sort("_source_file", "_source_line").rows()
    )
    assert set(quarantine["rule_id"]) == {rule_id}
    assert all(rule_id in rules for rules in quarantine["failed_rules"])
    # The reason names the rule as the contract now states it.
    assert quarantine["reason"].str.contains(f"{rule_id}: ", literal=True).all()
    assert quarantine["reason"].str.contains(said, literal=True).all()
    assert sum(r.quarantine_rules.get(rule_id, 0) for r in reports) == expected.height
    # Nothing the edited rule rejects was published, everything else was.
    published = pl.concat(
        [
            tables[t].select("currency", "amount")
            for t in ("silver.transactions", "silver.late_events")
        ]
    )
    assert not published.filter(breaks()).height
    for r in reports:
        assert r.records == r.bronze_rows == r.published + r.duplicates + r.quarantined, r


def test_a_rule_on_a_column_records_do_not_carry_is_refused(tmp_path: Path) -> None:
    """A contract rule the stream cannot evaluate must fail loudly, not be skipped."""
    from assets.payments.records import record_rules

    edited = _edited_contract(
        tmp_path / "contracts",
        "  - name: device_id\n",
        "  - name: terminal_id\n    logicalType: string\n    physicalType: VARCHAR\n"
        "    required: true\n    description: A column the stream's records do not carry.\n"
        "  - name: device_id\n",
    )
    with pytest.raises(ContractError, match="terminal_id"):
        record_rules(edited)
