"""Domain descriptors (`data_products/domains/<domain>.yaml`): owner team, description and the
data products each domain publishes. Found by walking the folder, so a domain is added by adding a
file. The owner is declared here and nowhere else: platform policy gives it to every asset of the
domain, and every contract of the domain inherits it (``Contract.owner``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

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

    Partitioned domains give ``start`` and ``end``: the slice is one single-run backfill of the
    domain's group over that range. ``prepare`` names a ``module:function`` that lands the slice's
    source data first (generators for synthetic domains); it takes the first and last partition
    keys as strings (``None`` for a domain without a range).

    Domains whose data arrives as micro-batches (an event log, a replication slot) are not a range:
    they name a ``runner`` instead, a ``module:function`` called as ``runner(defs, instance)`` that
    drives their batches and returns the ``SliceRun`` of every run it launched.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str | None = None
    end: str | None = None
    prepare: str | None = None
    runner: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _valid_key(cls, key: object) -> str | None:
        return None if key is None else validate_partition_key(str(key))

    @model_validator(mode="after")
    def _range_or_runner(self) -> DemoSlice:
        if (self.start is None) != (self.end is None):
            raise ValueError("demo: give both start and end, or neither")
        if self.start is None and self.runner is None:
            raise ValueError("demo: give a partition range (start, end) or a runner")
        for reference in (self.prepare, self.runner):
            if reference is not None and ":" not in reference:
                raise ValueError(f"demo: {reference!r} is not of the form module:function")
        return self

    def run_prepare(self) -> str | None:
        """Call ``prepare`` and return what it reports (a one-line summary)."""
        if self.prepare is None:
            return None
        # The reference is resolved at run time, so its result is only known to be a summary
        # by the descriptor's contract (``prepare`` returns ``str | None``).
        summary: str | None = _resolve(self.prepare)(self.start, self.end)
        return summary

    def resolve_runner(self) -> Callable[..., Any] | None:
        return None if self.runner is None else _resolve(self.runner)


def _resolve(reference: str) -> Callable[..., Any]:
    module_name, _, attribute = reference.partition(":")
    target: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
    return target


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


def load_domains(directory: Path | None = None) -> dict[str, Domain]:
    """Every domain descriptor, by name; a file's stem must equal its `name`.

    ``directory`` defaults to ``DOMAINS_DIR``, read at call time: tests that need a domain of
    their own (contracts of a made-up ``shop``) point it at a copy with one more descriptor."""
    return _load_domains(directory or DOMAINS_DIR)


@cache
def _load_domains(directory: Path) -> dict[str, Domain]:
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
