"""Load DuckDB extensions from the ``duckdb-extension-*`` wheels, offline.

``INSTALL`` downloads from extensions.duckdb.org, which this platform must never need at run
time; the wheels (pinned next to ``duckdb`` in pyproject.toml) carry the binaries, so we LOAD them
by file path. The path is built from the installed DuckDB version, so a wheel that does not match
the engine fails here with a clear message instead of a cryptic ABI error later.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

__all__ = ["KNOWN_EXTENSIONS", "extension_path", "load_extensions"]

KNOWN_EXTENSIONS: tuple[str, ...] = ("avro", "delta", "httpfs", "iceberg")
# The iceberg extension reads manifest lists with avro and does not load it by itself offline.
_PREREQUISITES: dict[str, tuple[str, ...]] = {"iceberg": ("avro",)}


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` wheel."""
    if name not in KNOWN_EXTENSIONS:
        raise ValueError(f"unknown DuckDB extension {name!r}: expected one of {KNOWN_EXTENSIONS}")
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"DuckDB extension {name!r} is not installed: add "
            f"duckdb-extension-{name}=={duckdb.__version__} to the project dependencies"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    path = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        shipped = sorted(p.name for p in root.glob("v*")) if root.is_dir() else []
        raise FileNotFoundError(
            f"{package} has no build for DuckDB {duckdb.__version__} (it ships {shipped}); "
            "pin the wheel to the same version as duckdb"
        )
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> tuple[str, ...]:
    """LOAD the named extensions (and their prerequisites, first) into ``con``.

    Returns the extensions loaded, in load order. Loading an extension twice is harmless, so
    callers need not track what a connection already has.
    """
    order: list[str] = []
    for name in names:
        for needed in (*_PREREQUISITES.get(name, ()), name):
            if needed not in order:
                order.append(needed)
    paths = [extension_path(name) for name in order]  # fail before loading anything
    for path in paths:
        # load_extension takes the path as an argument: nothing is formatted into SQL.
        con.load_extension(str(path))
    return tuple(order)
