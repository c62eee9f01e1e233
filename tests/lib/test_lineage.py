"""The OpenLineage emitter: hooks fire for every step, events carry physical names and facets,
failures never fail a run, secrets never leave the process, and the file transport is safe for
concurrent writers."""

import json
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport.console import ConsoleTransport
from openlineage.client.transport.noop import NoopTransport

from data_products.lib.lineage import (
    DailyFileTransport,
    LineageConfigError,
    build_transport,
    dataset_from_uri,
    lineage_run_id,
    physical_dataset,
    read_events,
    with_lineage,
)
from data_products.lib.lineage.facets import output_statistics_facet
from data_products.lib.lineage.transport import DailyFileConfig
from data_products.lib.settings import get_settings
from tests.conftest import Receiver

SECRET = "sk-lineage-test-7f3a9c1e5b"

LANDING = dg.AssetKey(["commerce", "landing", "orders"])
BRONZE = dg.AssetKey(["commerce", "bronze", "orders"])
SILVER = dg.AssetKey(["commerce", "silver", "orders"])
GOLD = dg.AssetKey(["commerce", "gold", "revenue"])

BRONZE_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn("order_id", "VARCHAR"), dg.TableColumn("amount", "VARCHAR")]
)
SILVER_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("order_id", "VARCHAR", description="order number"),
        dg.TableColumn("order_total_usd", "DOUBLE"),
    ]
)


# -- helpers ------------------------------------------------------------------------------


def events_for(home: Path, job: str) -> list[dict[str, Any]]:
    return [e for e in read_events(home / "lineage") if e["job"]["name"] == job]


def one(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    matching = [e for e in events if e["eventType"] == event_type]
    assert len(matching) == 1, f"expected one {event_type}, got {[e['eventType'] for e in events]}"
    return matching[0]


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def step_start_time(instance: dg.DagsterInstance, run_id: str, step_key: str) -> str:
    (entry,) = [
        e
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if e.step_key == step_key
    ]
    return datetime.fromtimestamp(entry.timestamp, UTC).isoformat()


def duckdb_ns(home: Path) -> str:
    return f"duckdb://{home.resolve() / 'warehouse.duckdb'}"


# -- a small commerce graph ---------------------------------------------------------------


def commerce_graph(home: Path) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    landing = dg.AssetSpec(
        LANDING, metadata={"dagster/uri": f"file://{home}/landing/commerce/orders.csv"}
    )

    @dg.asset(key=BRONZE, deps=[LANDING])
    def bronze() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 7, "dagster/column_schema": BRONZE_SCHEMA}
        )

    @dg.asset(
        key=SILVER,
        deps=[BRONZE],
        description="Typed, deduplicated orders.",
        owners=["team:commerce"],
        check_specs=[dg.AssetCheckSpec("order_id_not_null", asset=SILVER)],
    )
    def silver() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": 5,
                "dagster/column_schema": SILVER_SCHEMA,
                "dagster/column_lineage": dg.TableColumnLineage(
                    deps_by_column={
                        "order_id": [dg.TableColumnDep(BRONZE, "order_id")],
                        "order_total_usd": [dg.TableColumnDep(BRONZE, "amount")],
                    }
                ),
                "quarantined_rows": 2,
            }
        )
        yield dg.AssetCheckResult(passed=True, metadata={"column": "order_id"})

    @dg.asset_check(asset=SILVER, metadata={"column": "order_total_usd"})
    def totals_positive() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, metadata={"negative_totals": 1})

    @dg.asset(
        key=GOLD,
        deps=[SILVER],
        metadata={"dagster/uri": f"file://{home}/lake/iceberg/commerce_gold/revenue"},
    )
    def gold() -> None:
        return None

    return [landing, *(with_lineage(a) for a in (bronze, silver, totals_positive, gold))]


@pytest.fixture
def graph_run(data_home: Path) -> tuple[dg.DagsterInstance, str]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(commerce_graph(data_home), instance=instance)
    assert result.success
    return instance, result.run_id


# -- the graph ------------------------------------------------------------------------------


def test_every_asset_gets_start_then_complete_under_one_step_run_id(
    data_home: Path, graph_run: tuple[dg.DagsterInstance, str]
) -> None:
    instance, run_id = graph_run
    for key in (BRONZE, SILVER, GOLD):
        events = events_for(data_home, ".".join(key.path))
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
        step_key = "__".join(key.path)
        assert {e["run"]["runId"] for e in events} == {lineage_run_id(run_id, step_key)}
        start, complete = events
        assert start["eventTime"] == step_start_time(instance, run_id, step_key)
        assert start["eventTime"] <= complete["eventTime"]
        parent = complete["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_id
        assert parent["job"] == {
            "namespace": "data-products",
            "name": "__ephemeral_asset_job__",
            "facets": {},
        }
        assert complete["job"]["namespace"] == "data-products"
        job_type = complete["job"]["facets"]["jobType"]
        assert (job_type["integration"], job_type["processingType"], job_type["jobType"]) == (
            "DAGSTER",
            "BATCH",
            "ASSET",
        )
        assert complete["run"]["facets"]["processing_engine"]["version"] == dg.__version__
        assert "dataProducts_partition" not in complete["run"]["facets"]


def test_inputs_and_outputs_carry_physical_names_that_join_across_steps(
    data_home: Path, graph_run: tuple[dg.DagsterInstance, str]
) -> None:
    bronze = one(events_for(data_home, "commerce.bronze.orders"), "COMPLETE")
    silver = one(events_for(data_home, "commerce.silver.orders"), "COMPLETE")
    gold = one(events_for(data_home, "commerce.gold.revenue"), "COMPLETE")

    landing_file = ("file", f"{data_home}/landing/commerce/orders.csv")
    bronze_table = (duckdb_ns(data_home), "warehouse.commerce_bronze.orders")
    silver_table = (duckdb_ns(data_home), "warehouse.commerce_silver.orders")
    gold_iceberg = ("file", f"{data_home}/lake/iceberg/commerce_gold/revenue")

    assert names(bronze["inputs"]) == [landing_file]
    assert names(bronze["outputs"]) == [bronze_table]
    assert names(silver["inputs"]) == [bronze_table]
    assert names(silver["outputs"]) == [silver_table]
    assert names(gold["inputs"]) == [silver_table]
    assert names(gold["outputs"]) == [gold_iceberg]


def test_input_from_another_run_is_named_as_its_producer_reported_it(data_home: Path) -> None:
    delta_uri = f"file://{data_home}/lake/delta/commerce_silver/sessions"

    @dg.asset(key=["commerce", "silver", "sessions"])
    def sessions() -> dg.MaterializeResult:
        # The location is only known at run time, so it is only in the materialisation.
        return dg.MaterializeResult(metadata={"dagster/uri": delta_uri})

    @dg.asset(key=["commerce", "gold", "sessions_daily"], deps=[sessions])
    def sessions_daily() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([with_lineage(sessions)], instance=instance).success
    # A later run of the downstream alone: the upstream is not even in its asset graph.
    assert dg.materialize([with_lineage(sessions_daily)], instance=instance).success

    (produced,) = one(events_for(data_home, "commerce.silver.sessions"), "COMPLETE")["outputs"]
    consumed = one(events_for(data_home, "commerce.gold.sessions_daily"), "COMPLETE")["inputs"]
    expected = ("file", f"{data_home}/lake/delta/commerce_silver/sessions")
    assert (produced["namespace"], produced["name"]) == expected
    assert names(consumed) == [expected]


def test_reported_schema_row_count_quarantine_and_column_lineage_become_facets(
    data_home: Path, graph_run: tuple[dg.DagsterInstance, str]
) -> None:
    (silver,) = one(events_for(data_home, "commerce.silver.orders"), "COMPLETE")["outputs"]
    fields = silver["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields] == [
        (c.name, c.type) for c in SILVER_SCHEMA.columns
    ]
    assert fields[0]["description"] == "order number"
    assert silver["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert silver["outputFacets"]["dataProducts_quarantine"]["quarantinedRowCount"] == 2
    assert silver["facets"]["documentation"]["description"] == "Typed, deduplicated orders."
    assert [o["name"] for o in silver["facets"]["ownership"]["owners"]] == ["team:commerce"]

    lineage = silver["facets"]["columnLineage"]["fields"]
    bronze_table = (duckdb_ns(data_home), "warehouse.commerce_bronze.orders")
    assert {
        column: [(f["namespace"], f["name"], f["field"]) for f in spec["inputFields"]]
        for column, spec in lineage.items()
    } == {
        "order_id": [(*bronze_table, "order_id")],
        "order_total_usd": [(*bronze_table, "amount")],
    }

    # Gold reports neither schema nor row count: no facet is invented for it.
    (gold,) = one(events_for(data_home, "commerce.gold.revenue"), "COMPLETE")["outputs"]
    assert "schema" not in gold["facets"]
    assert "outputStatistics" not in gold["outputFacets"]


def test_check_results_become_data_quality_assertions(
    data_home: Path, graph_run: tuple[dg.DagsterInstance, str]
) -> None:
    # A check evaluated in the asset's own step: an assertion on the output.
    (silver,) = one(events_for(data_home, "commerce.silver.orders"), "COMPLETE")["outputs"]
    (in_step,) = silver["facets"]["dataQualityAssertions"]["assertions"]
    assert (in_step["assertion"], in_step["success"], in_step["column"]) == (
        "order_id_not_null",
        True,
        "order_id",
    )

    # A separate @asset_check step is its own job reading the checked table; the column comes
    # from the check's spec metadata.
    events = events_for(data_home, "commerce.silver.orders.totals_positive")
    complete = one(events, "COMPLETE")
    assert complete["job"]["facets"]["jobType"]["jobType"] == "ASSET_CHECK"
    assert complete["outputs"] == []
    (checked,) = complete["inputs"]
    assert (checked["namespace"], checked["name"]) == (
        duckdb_ns(data_home),
        "warehouse.commerce_silver.orders",
    )
    (assertion,) = checked["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert (assertion["assertion"], assertion["success"], assertion["column"]) == (
        "totals_positive",
        False,
        "order_total_usd",
    )


# -- failures -------------------------------------------------------------------------------


def test_failing_asset_emits_fail_with_error_and_no_complete_and_keeps_secrets_out(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLINEAGE_API_KEY", SECRET)

    @dg.asset(key=["commerce", "silver", "payments"])
    def payments() -> None:
        raise ValueError(f"warehouse refused credentials {SECRET}")

    @dg.asset(key=["commerce", "gold", "payments_daily"], deps=[payments])
    def payments_daily() -> None:
        return None

    @dg.asset(key=["commerce", "silver", "refunds"])
    def refunds() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [with_lineage(a) for a in (payments, payments_daily, refunds)],
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success

    events = events_for(data_home, "commerce.silver.payments")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    fail = events[1]
    assert fail["eventTime"] >= events[0]["eventTime"]
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"].startswith("ValueError: warehouse refused credentials")
    assert error["programmingLanguage"] == "python"
    assert 'raise ValueError(f"warehouse refused credentials' in error["stackTrace"]
    assert fail["outputs"] == []

    # The sibling that succeeded is COMPLETE, never FAIL; the skipped downstream emits nothing.
    assert [e["eventType"] for e in events_for(data_home, "commerce.silver.refunds")] == [
        "START",
        "COMPLETE",
    ]
    assert events_for(data_home, "commerce.gold.payments_daily") == []

    written = "".join(p.read_text() for p in (data_home / "lineage").glob("*.jsonl"))
    assert "***" in written
    assert SECRET not in written


def test_failed_blocking_check_reports_what_was_written_and_the_failed_assertion(
    data_home: Path,
) -> None:
    key = dg.AssetKey(["commerce", "silver", "fx_rates"])

    @dg.asset(key=key, check_specs=[dg.AssetCheckSpec("rate_positive", asset=key, blocking=True)])
    def fx_rates() -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield dg.MaterializeResult(metadata={"dagster/row_count": 4})
        yield dg.AssetCheckResult(passed=False, metadata={"column": "usd_per_unit"})

    result = dg.materialize(
        [with_lineage(fx_rates)], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success

    events = events_for(data_home, "commerce.silver.fx_rates")
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    (written,) = events[1]["outputs"]
    assert written["name"] == "warehouse.commerce_silver.fx_rates"
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == 4
    (assertion,) = written["facets"]["dataQualityAssertions"]["assertions"]
    assert (assertion["assertion"], assertion["success"], assertion["column"]) == (
        "rate_positive",
        False,
        "usd_per_unit",
    )
    assert "rate_positive" in events[1]["run"]["facets"]["errorMessage"]["message"]


def test_transport_error_is_a_warning_not_a_failure(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_LINEAGE_TRANSPORT", "http")
    monkeypatch.setenv("OPENLINEAGE_API_KEY", SECRET)
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens on this port now
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://user:{SECRET}@127.0.0.1:{port}")

    @dg.asset(key=["commerce", "silver", "customers"])
    def customers() -> None:
        return None

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([with_lineage(customers)], instance=instance)
    assert result.success
    warnings = [
        e.user_message for e in instance.all_logs(result.run_id) if "OpenLineage" in e.user_message
    ]
    assert len(warnings) == 1
    assert "commerce__silver__customers" in warnings[0]
    assert SECRET not in warnings[0]


# -- multi-assets ---------------------------------------------------------------------------


def dbt_like_project() -> dg.AssetsDefinition:
    staging = dg.AssetKey(["commerce", "gold", "stg_orders"])
    facts = dg.AssetKey(["commerce", "gold", "fct_orders"])
    mart = dg.AssetKey(["commerce", "gold", "revenue_daily"])

    @dg.multi_asset(
        name="commerce_dbt_models",
        specs=[
            dg.AssetSpec(staging, deps=[SILVER], skippable=True),
            dg.AssetSpec(
                facts,
                deps=[staging],
                skippable=True,
                metadata={"dagster/table_name": "warehouse.commerce_gold.fct_orders"},
            ),
            dg.AssetSpec(mart, deps=[facts], skippable=True),
        ],
        can_subset=True,
    )
    def models(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        for key in (staging, facts, mart):  # topological order, as dbt runs them
            if key in context.selected_asset_keys:
                yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": 3})

    return with_lineage(models)


def test_multi_asset_step_is_one_job_naming_every_output(data_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([dbt_like_project()], instance=instance)
    assert result.success

    events = events_for(data_home, "commerce_dbt_models")
    complete = one(events, "COMPLETE")
    assert one(events, "START")["run"]["runId"] == complete["run"]["runId"]
    ns = duckdb_ns(data_home)
    assert sorted(names(complete["outputs"])) == [
        (ns, "warehouse.commerce_gold.fct_orders"),
        (ns, "warehouse.commerce_gold.revenue_daily"),
        (ns, "warehouse.commerce_gold.stg_orders"),
    ]
    # Models reading models of the same step are not inputs of the step.
    assert names(complete["inputs"]) == [(ns, "warehouse.commerce_silver.orders")]
    assert sorted(complete["run"]["facets"]["dataProducts_dagsterStep"]["assetKeys"]) == [
        "commerce/gold/fct_orders",
        "commerce/gold/revenue_daily",
        "commerce/gold/stg_orders",
    ]


def test_subset_of_multi_asset_reports_only_what_it_wrote(data_home: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [dbt_like_project()], instance=instance, selection=["commerce/gold/revenue_daily"]
    )
    assert result.success

    complete = one(events_for(data_home, "commerce_dbt_models"), "COMPLETE")
    ns = duckdb_ns(data_home)
    assert names(complete["outputs"]) == [(ns, "warehouse.commerce_gold.revenue_daily")]
    assert names(complete["inputs"]) == [(ns, "warehouse.commerce_gold.fct_orders")]


# -- partitions and jobs ----------------------------------------------------------------------


def partitioned_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=["commerce", "bronze", "fx_rates"],
        partitions_def=dg.DailyPartitionsDefinition(start_date="2026-01-01"),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def fx_rates(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": len(context.partition_keys)})

    return with_lineage(fx_rates)


def test_single_run_partition_range_is_a_run_facet(data_home: Path) -> None:
    result = dg.materialize(
        [partitioned_asset()],
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": "2026-01-01",
            "dagster/asset_partition_range_end": "2026-01-03",
        },
    )
    assert result.success

    events = events_for(data_home, "commerce.bronze.fx_rates")
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    for event in events:
        partition = event["run"]["facets"]["dataProducts_partition"]
        assert (partition["partitionRangeStart"], partition["partitionRangeEnd"]) == (
            "2026-01-01",
            "2026-01-03",
        )
        assert "partitionKey" not in partition
    # One output for the range, not one per partition.
    (output,) = events[1]["outputs"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_single_partition_is_a_run_facet(data_home: Path) -> None:
    result = dg.materialize(
        [partitioned_asset()], instance=dg.DagsterInstance.ephemeral(), partition_key="2026-01-05"
    )
    assert result.success
    complete = one(events_for(data_home, "commerce.bronze.fx_rates"), "COMPLETE")
    assert complete["run"]["facets"]["dataProducts_partition"]["partitionKey"] == "2026-01-05"


def test_hooks_fire_under_the_implicit_asset_job(data_home: Path) -> None:
    defs = dg.Definitions(assets=commerce_graph(data_home))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success

    complete = one(events_for(data_home, "commerce.silver.orders"), "COMPLETE")
    assert complete["run"]["facets"]["parent"]["job"]["name"] == job.name
    assert complete["run"]["facets"]["dataProducts_dagsterStep"]["jobName"] == job.name
    assert names(complete["inputs"]) == [(duckdb_ns(data_home), "warehouse.commerce_bronze.orders")]


def test_with_lineage_is_idempotent_and_skips_external_assets() -> None:
    @dg.asset(key=["commerce", "silver", "products"])
    def products() -> None:
        return None

    once = with_lineage(products)
    assert len(once.hook_defs) == 2
    assert with_lineage(once).hook_defs == once.hook_defs

    external = dg.Definitions(assets=[dg.AssetSpec(LANDING)]).resolve_assets_def(LANDING)
    assert with_lineage(external) is external


# -- transports -----------------------------------------------------------------------------


def test_http_transport_posts_events_with_the_key_only_in_the_header(
    data_home: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_LINEAGE_TRANSPORT", "http")
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", SECRET)

    @dg.asset(key=["commerce", "silver", "customers"])
    def customers() -> None:
        return None

    assert dg.materialize(
        [with_lineage(customers)], instance=dg.DagsterInstance.ephemeral()
    ).success

    assert list(zip(receiver.paths, receiver.auth, strict=True)) == [
        ("/api/v1/lineage", f"Bearer {SECRET}"),
        ("/api/v1/lineage", f"Bearer {SECRET}"),
    ]
    bodies = receiver.bodies
    assert [(b["eventType"], b["job"]["name"]) for b in bodies] == [
        ("START", "commerce.silver.customers"),
        ("COMPLETE", "commerce.silver.customers"),
    ]
    assert SECRET not in json.dumps(bodies)
    assert not (data_home / "lineage").exists()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("file", DailyFileTransport), ("console", ConsoleTransport), ("none", NoopTransport)],
)
def test_build_transport_follows_settings(
    data_home: Path, monkeypatch: pytest.MonkeyPatch, kind: str, expected: type
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_LINEAGE_TRANSPORT", kind)
    assert type(build_transport(get_settings())) is expected


def test_http_transport_without_url_is_a_clear_error(
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_LINEAGE_TRANSPORT", "http")
    with pytest.raises(LineageConfigError, match="OPENLINEAGE_URL"):
        build_transport(get_settings())


def test_transport_none_writes_nothing(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PRODUCTS_LINEAGE_TRANSPORT", "none")

    @dg.asset(key=["commerce", "silver", "customers"])
    def customers() -> None:
        return None

    assert dg.materialize(
        [with_lineage(customers)], instance=dg.DagsterInstance.ephemeral()
    ).success
    assert not (data_home / "lineage").exists()


def _append_events(lineage_dir: str, writer: int, count: int, padding: int) -> None:
    transport = DailyFileTransport(DailyFileConfig(lineage_dir=lineage_dir))
    for index in range(count):
        transport.emit(
            RunEvent(
                eventType=RunState.OTHER,
                eventTime=datetime.now(UTC).isoformat(),
                run=Run(runId=lineage_run_id(f"writer-{writer}", str(index))),
                job=Job(namespace="test", name=f"writer-{writer}-{index}-" + "x" * padding),
            )
        )


def test_file_transport_keeps_lines_whole_under_concurrent_writers(tmp_path: Path) -> None:
    # Events larger than a pipe buffer and the default write buffer, from several processes.
    writers, per_writer, padding = 3, 20, 100_000
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_append_events, args=(str(tmp_path), w, per_writer, padding))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        assert process.exitcode == 0

    (day_file,) = tmp_path.glob("events-*.jsonl")
    assert day_file.name == f"events-{datetime.now(UTC).date().isoformat()}.jsonl"
    lines = day_file.read_text().splitlines()
    assert len(lines) == writers * per_writer
    jobs = {json.loads(line)["job"]["name"].split("-x")[0] for line in lines}
    assert len(jobs) == writers * per_writer


def test_read_events_skips_a_torn_line(tmp_path: Path) -> None:
    (tmp_path / "events-2026-01-01.jsonl").write_text('{"eventType": "START"}\n{"eventTy')
    (tmp_path / "events-2026-01-02.jsonl").write_text('{"eventType": "COMPLETE"}\n')
    assert [e["eventType"] for e in read_events(tmp_path)] == ["START", "COMPLETE"]


# -- naming ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "file:///data/lake/iceberg/commerce_gold/revenue",
            ("file", "/data/lake/iceberg/commerce_gold/revenue"),
        ),
        ("file://nas01/share/orders.csv", ("file://nas01", "/share/orders.csv")),
        (
            "s3://bucket/commerce/orders/part-0.parquet",
            ("s3://bucket", "commerce/orders/part-0.parquet"),
        ),
        ("s3a://bucket/key", ("s3://bucket", "key")),
        (
            "postgres://db.internal:5433/shop.public.orders",
            ("postgres://db.internal:5433", "shop.public.orders"),
        ),
        (
            "postgresql://app:hunter2hunter2@db.internal/shop/public/orders?sslmode=require",
            ("postgres://db.internal:5432", "shop.public.orders"),
        ),
    ],
)
def test_uri_naming_follows_the_openlineage_spec_and_drops_credentials(
    uri: str, expected: tuple[str, str]
) -> None:
    assert dataset_from_uri(uri) == expected


def test_physical_dataset_rules(data_home: Path) -> None:
    settings = get_settings()
    ns = duckdb_ns(data_home)
    assert physical_dataset(SILVER, {}, settings=settings) == (
        ns,
        "warehouse.commerce_silver.orders",
    )
    table_name = {"dagster/table_name": dg.MetadataValue.text("commerce_gold.fct_orders")}
    assert physical_dataset(GOLD, table_name, settings=settings) == (
        ns,
        "warehouse.commerce_gold.fct_orders",
    )
    uri = {"dagster/uri": "s3://lake/commerce/revenue", "dagster/table_name": "ignored.when.uri"}
    assert physical_dataset(GOLD, uri, settings=settings) == ("s3://lake", "commerce/revenue")
    # Outside the [domain, layer, name] grammar and with no location: Dagster's own namespace.
    assert physical_dataset(LANDING, None, settings=settings) == (
        "dagster",
        "commerce/landing/orders",
    )
    with pytest.raises(ValueError, match="commerce/gold/revenue"):
        physical_dataset(GOLD, {"dagster/uri": "postgres://h:notaport/db.s.t"}, settings=settings)


def test_row_count_is_the_run_total_when_partitions_carry_their_own() -> None:
    per_day = {"dagster/row_count": dg.MetadataValue.int(900), "run_rows": 2_700}
    repeated = {"dagster/row_count": dg.MetadataValue.int(2_700)}
    facets = [output_statistics_facet(m) for m in (per_day, repeated)]
    assert [f.rowCount for f in facets if f is not None] == [2_700, 2_700]
    assert output_statistics_facet({}) is None
