"""Domain descriptors (`data_products/domains/<domain>.yaml`): owner team, description and the
data products each domain publishes. Found by walking the folder, so a domain is added by adding a
file; definitions and tests read owners and descriptions from here rather than from code."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from data_products.lib.keys import DatasetName, validate_identifier, validate_partition_key

DOMAINS_DIR = Path(__file__).resolve().parents[1] / "domains"


class DataProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    output_ports: tuple[str, ...]

    @field_validator("output_ports")
    @classmethod
    def _ports_follow_grammar(cls, ports: tuple[str, ...]) -> tuple[str, ...]:
        for port in ports:
            DatasetName.from_key(port)
        return ports


class DemoSlice(BaseModel):
    """The small slice ``make demo`` and ``make checks`` materialise for this domain.

    ``prepare`` names a ``module:function`` that lands the slice's source data (generators for
    synthetic domains); it takes the first and last partition keys as strings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str
    prepare: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _valid_key(cls, key: object) -> str:
        return validate_partition_key(str(key))

    def run_prepare(self) -> str | None:
        """Call ``prepare`` and return what it reports (a one-line summary)."""
        if self.prepare is None:
            return None
        module_name, _, attribute = self.prepare.partition(":")
        function = getattr(importlib.import_module(module_name), attribute)
        return function(self.start, self.end)


class Domain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    owner: str
    description: str
    data_products: tuple[DataProduct, ...] = ()
    demo: DemoSlice | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_identifier(name, what="domain")


@cache
def load_domains(directory: Path = DOMAINS_DIR) -> dict[str, Domain]:
    """Every domain descriptor, by name; a file's stem must equal its `name`."""
    domains: dict[str, Domain] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            domain = Domain.model_validate(yaml.safe_load(path.read_text()))
        except Exception as exc:
            raise ValueError(f"invalid domain descriptor {path}: {exc}") from exc
        if domain.name != path.stem:
            raise ValueError(f"{path}: name {domain.name!r} does not match the file name")
        domains[domain.name] = domain
    return domains


def domain(name: str) -> Domain:
    """The descriptor of one domain, with a clear error for an unknown one."""
    domains = load_domains()
    if name not in domains:
        raise KeyError(f"unknown domain {name!r}: add data_products/domains/{name}.yaml")
    return domains[name]
