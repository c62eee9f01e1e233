"""Fixtures every test of the platform library shares."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_products.lib import domains
from data_products.lib.domains import DOMAINS_DIR

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True, scope="module")
def shop_domain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The descriptors with one more, ``shop`` (tests/lib/fixtures/shop.yaml): a contract's
    owner comes from its domain's descriptor, so the test domain has one like any other."""
    directory = tmp_path_factory.mktemp("domains")
    for descriptor in [*DOMAINS_DIR.glob("*.yaml"), FIXTURES / "shop.yaml"]:
        shutil.copy(descriptor, directory / descriptor.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domains, "DOMAINS_DIR", directory)
        yield directory
