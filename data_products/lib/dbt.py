"""Every domain's dbt gold layer as Dagster assets: one translator, one factory.

The translator maps dbt nodes to the key grammar by *folder rules and ``meta``*, never by model
name, so a new domain is a new ``dbt_project/models/marts/<domain>/`` folder (plus its staging
sources) and one ``domain_dbt_assets(<domain>, ...)`` call:

- models under ``models/marts/<domain>/`` become ``[<domain>, gold, <model>]``, written to
  ``<domain>_gold.<model>`` (``macros/generate_schema_name.sql`` applies the same rule; the
  translator refuses a node whose table and key disagree);
- staging and intermediate models are ephemeral: dagster-dbt 0.29 skips ephemeral models and
  draws the dependency through them to the sources, so they never become assets;
- sources map to the upstream Dagster assets through ``meta.dagster.asset_key``, or failing that
  a source named ``<domain>_<layer>`` maps to ``[<domain>, <layer>, <table>]``;
- group, owner (the domain descriptor's), layer tag, table name, pool and backfill policy are
  platform policy (``data_products.lib.policy``), as for every other asset; description from
  the model YAML; dbt tests become asset checks (``severity: error`` ones
  blocking); kinds ``dbt`` and ``duckdb`` come from the adapter.

One ``dbt build`` runs per Dagster run for the whole domain selection (each dbt start-up costs
about 4 s), with the run's partition range and the warehouse path passed as ``--vars``.
"""

# No `from __future__ import annotations`: dagster inspects the asset function's annotations
# to find its context and resources, and does not resolve them from strings.
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from data_products.lib.compat.dagster_dbt import PlatformDbtCliResource, finished_events
from data_products.lib.compat.dbt_duckdb import release_warehouse
from data_products.lib.compat.environment import scoped
from data_products.lib.dbt_project import DBT_PROJECT, ENVIRONMENT_BIN
from data_products.lib.keys import LAYERS, DatasetName, validate_identifier
from data_products.lib.partitions import describe_keys, run_partition_keys
from data_products.lib.range_metadata import last_partition_only
from data_products.lib.settings import get_settings
from data_products.lib.warehouse import WAREHOUSE_KEY, Warehouse

MARTS_FOLDER = "marts"
"""``models/marts/<domain>/<model>.sql``: the only folder whose models become assets."""

GOLD = "gold"
PII_TAG = "pii"
"""A column tag in the model YAML; an asset with any such column is tagged ``pii=true``."""

PREPARE_COMMAND = "dagster-dbt project prepare-and-package --file data_products/lib/dbt_project.py"


class DbtLayoutError(ValueError):
    """A dbt node that cannot be placed in the ``[domain, layer, name]`` grammar."""


def _meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("config", {}).get("meta") or props.get("meta") or {}


def _where(props: Mapping[str, Any]) -> str:
    return f"dbt {props['resource_type']} {props.get('original_file_path', props['unique_id'])}"


def gold_dataset(props: Mapping[str, Any]) -> DatasetName:
    """The ``[domain, gold, name]`` of a model under ``models/marts/<domain>/``, checked against
    the table dbt will write, so the key always names the physical table."""
    fqn = props["fqn"]
    if len(fqn) != 4 or fqn[1] != MARTS_FOLDER:
        raise DbtLayoutError(
            f"{_where(props)}: only models directly under models/{MARTS_FOLDER}/<domain>/ become "
            "gold assets; staging and intermediate models must stay ephemeral"
        )
    dataset = DatasetName(fqn[2], GOLD, props["name"])
    schema, alias = props.get("schema"), props.get("alias") or props["name"]
    if (schema, alias) != (dataset.schema, dataset.name):
        raise DbtLayoutError(
            f"{_where(props)} writes {schema}.{alias} but its asset key {dataset} names "
            f"{dataset.table}: remove the schema/alias override"
        )
    return dataset


def source_dataset(props: Mapping[str, Any]) -> DatasetName:
    """The upstream asset of a dbt source: ``meta.dagster.asset_key``, else the source name read
    as ``<domain>_<layer>`` (the schema naming rule of ``DatasetName``)."""
    explicit = _meta(props).get("dagster", {}).get("asset_key")
    if explicit:
        return DatasetName.from_key(dg.AssetKey(list(explicit)))
    domain, _, layer = props["source_name"].rpartition("_")
    if layer not in LAYERS or not domain:
        raise DbtLayoutError(
            f"{_where(props)}: set meta.dagster.asset_key or name the source <domain>_<layer>"
        )
    return DatasetName(domain, layer, props["name"])


class DomainDbtTranslator(DagsterDbtTranslator):
    """Keys and tags from folder rules and ``meta`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(
            DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True)
        )

    def dataset(self, props: Mapping[str, Any]) -> DatasetName:
        if props["resource_type"] == "source":
            return source_dataset(props)
        return gold_dataset(props)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return self.dataset(dbt_resource_props).asset_key

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        # The YAML description only: dagster-dbt's default appends the raw SQL, which the code
        # reference already links to.
        description = dbt_resource_props.get("description") or ""
        return description.strip() or super().get_description(dbt_resource_props)

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        columns = dbt_resource_props.get("columns", {}).values()
        has_pii = any(PII_TAG in column.get("tags", []) for column in columns)
        tier = _meta(dbt_resource_props).get("tier")
        return {
            **super().get_tags(dbt_resource_props),
            PII_TAG: str(has_pii).lower(),
            **({"tier": str(tier)} if tier else {}),
        }


def _is_ephemeral(node: Mapping[str, Any] | None) -> bool:
    return (
        node is not None
        and node["resource_type"] == "model"
        and node.get("config", {}).get("materialized") == "ephemeral"
    )


def through_ephemeral_models(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with every node's ephemeral parents replaced by their nearest materialised
    ancestors (sources, tables), the same walk dagster-dbt does for asset dependencies.

    Why: dagster-dbt 0.29 builds column lineage from a model's *direct* parents only; a parent
    that is ephemeral has no table to describe, so every mart over the ephemeral staging layer
    lost its ``dagster/column_lineage``. dbt inlines ephemeral models as CTEs over the real
    tables, so once those tables are the listed parents, lineage runs from gold columns to the
    silver columns they come from. Only Dagster's copy changes; dbt parses its own manifest.
    """
    nodes = manifest["nodes"]
    resolved: dict[str, list[str]] = {}

    def materialised_parents(unique_id: str) -> list[str]:
        if unique_id not in resolved:
            parents: dict[str, None] = {}
            for parent in nodes[unique_id].get("depends_on", {}).get("nodes", []):
                if _is_ephemeral(nodes.get(parent)):
                    parents |= dict.fromkeys(materialised_parents(parent))
                else:
                    parents[parent] = None
            resolved[unique_id] = list(parents)
        return resolved[unique_id]

    patched_nodes = {
        unique_id: {
            **node,
            "depends_on": {**node["depends_on"], "nodes": materialised_parents(unique_id)},
        }
        if "depends_on" in node
        else node
        for unique_id, node in nodes.items()
    }
    parent_map = {
        unique_id: resolved.get(unique_id, parents)
        for unique_id, parents in manifest.get("parent_map", {}).items()
    }
    return {**manifest, "nodes": patched_nodes, "parent_map": parent_map}


def dbt_executable() -> str:
    """The dbt-core CLI of this Python environment, named explicitly rather than found on PATH
    (see ``use_environment_dbt``): another dbt, or dbt Fusion, which dagster-dbt prefers when
    installed, would not be the pinned dbt-core 1.11. The resource's private overrides live in
    ``data_products.lib.compat.dagster_dbt``."""
    beside_python = ENVIRONMENT_BIN / "dbt"
    return str(beside_python) if beside_python.exists() else "dbt"


def dbt_resource(project: DbtProject = DBT_PROJECT) -> PlatformDbtCliResource:
    """The ``dbt`` resource the gold assets ask for (bind it under the key ``dbt``)."""
    # DbtCliResource.__init__ takes a DbtProject (and reads its profiles and state paths); the
    # pydantic mypy plugin types the subclass's constructor from the fields (project_dir: str).
    return PlatformDbtCliResource(project_dir=project, dbt_executable=dbt_executable())  # type: ignore[arg-type]


RANGE_ENV = ("DATA_PRODUCTS_DBT_MIN_DATE", "DATA_PRODUCTS_DBT_MAX_DATE")
"""Where the run's first and last day reach dbt (``macros/run_date_range.sql``)."""


BUILD_ARGS = ("build", "--exclude-resource-type", "unit_test")
"""How a gold run invokes dbt: models and data tests, not unit tests (see domain_dbt_assets)."""


def dbt_build_vars(warehouse_path: Path) -> dict[str, str]:
    """``--vars`` for one run: the warehouse file, constant for a data home.

    The warehouse goes in as a var because profiles.yml needs it and dagster-dbt's in-process
    adapter (row counts, column metadata) parses the same vars. The run's days do not: a var
    that changes from run to run voids dbt's partial parsing (a full parse is ~2.5 s more per
    run), so they travel in the environment instead (:func:`dbt_range_env`).
    """
    return {"warehouse_path": str(warehouse_path)}


def dbt_range_env(partition_keys: Sequence[str]) -> dict[str, str | None]:
    """The run's first and last day for ``run_date_range``; ``None`` (unset) for an unpartitioned
    run, which leaves the project defaults: all history."""
    if not partition_keys:
        return dict.fromkeys(RANGE_ENV)
    days = sorted(key[:10] for key in partition_keys)  # hourly keys cover their days
    return dict(zip(RANGE_ENV, (days[0], days[-1]), strict=True))


def _with_run_metadata(
    events: Iterator[Any],
    metadata: Mapping[str, Any],
    context: dg.AssetExecutionContext,
    keys: Sequence[str],
) -> Iterator[Any]:
    """The run's metadata on every model's output; in a range, the schema and column lineage
    on the last day's event only (``range_metadata``)."""
    for event in events:
        if isinstance(event, dg.Output):
            event = event.with_metadata(
                last_partition_only(
                    context,
                    {**event.metadata, **metadata},
                    asset_key=context.asset_key_for_output(event.output_name),
                    partition_keys=keys,
                )
            )
        elif isinstance(event, dg.AssetMaterialization):
            event = event.with_metadata({**event.metadata, **metadata})
        yield event


def domain_dbt_assets(
    domain: str,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    project: DbtProject = DBT_PROJECT,
) -> dg.AssetsDefinition:
    """All gold models of ``models/marts/<domain>/`` as one multi-asset that runs one
    ``dbt build`` (models, and data tests as asset checks) per run.

    dbt unit tests are left out of the runs (``--exclude-resource-type unit_test``): they test
    the SQL on fixed fixture rows, so running them on every materialisation proves nothing new
    about the data and cost 0.5 s of each commerce run. dbt recommends running them in
    development and CI only; ``make test`` runs them (``tests/commerce/test_gold.py``).

    Partitioned: every model shares ``partitions_def`` with ``BackfillPolicy.single_run()``, so a
    range is one run and one dbt invocation; incremental models replace exactly the range's
    days, table models rebuild from all history. The warehouse file is the ``warehouse``
    resource's (by default ``get_settings().warehouse_path``), so dbt writes where every other
    asset does. Needs resources ``dbt`` (``dbt_resource()``) and ``warehouse``.
    """
    validate_identifier(domain, what="domain")
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"{project.manifest_path} is missing, so the dbt assets cannot be defined: run "
            f"`{PREPARE_COMMAND}` (`dagster dev` prepares it by itself)"
        )
    folder = project.project_dir / "models" / MARTS_FOLDER / domain
    if not folder.is_dir():
        raise DbtLayoutError(f"domain {domain!r} has no dbt models: {folder} does not exist")

    manifest = through_ephemeral_models(json.loads(project.manifest_path.read_text()))

    @dbt_assets(
        manifest=manifest,
        project=project,
        select=f"path:models/{MARTS_FOLDER}/{domain}",
        name=f"{domain}_{GOLD}_dbt",
        partitions_def=partitions_def,
        dagster_dbt_translator=DomainDbtTranslator(),
        # Declared as keys, not typed parameters (which Dagster does not allow together), so lib
        # names what it calls on the warehouse (a Protocol) without importing ``resources``.
        required_resource_keys={"dbt", WAREHOUSE_KEY},
    )
    def _gold(context: dg.AssetExecutionContext) -> Iterator[Any]:
        dbt: DbtCliResource = context.resources.dbt
        warehouse: Warehouse = getattr(context.resources, WAREHOUSE_KEY)
        keys = run_partition_keys(context) if partitions_def is not None else []
        warehouse_path = warehouse.database_path()
        warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        dbt_vars = dbt_build_vars(warehouse_path)
        range_env = dbt_range_env(keys)
        context.log.info(f"dbt build for {domain} gold, days {range_env}, vars {dbt_vars}")
        run_metadata = {"partitions": describe_keys(keys)} if keys else {}
        # One target folder per domain under the data home, kept between runs: dbt's partial
        # parsing state lives there (dagster-dbt's default is a new folder per run, ~5 MB each,
        # never removed, and a full parse every time). The warehouse pool serialises the runs
        # that share it.
        target_path = get_settings().home / "dbt" / "target" / domain
        args = [*BUILD_ARGS, "--vars", json.dumps(dbt_vars)]
        with scoped(range_env):  # dbt reads the days from its environment
            if isinstance(dbt, PlatformDbtCliResource):
                invocation = dbt.cli_overlapped(args, context=context, target_path=target_path)
            else:
                invocation = dbt.cli(args, context=context, target_path=target_path)
        try:
            yield from _with_run_metadata(finished_events(invocation), run_metadata, context, keys)
        finally:
            release_warehouse(invocation)

    return _gold
