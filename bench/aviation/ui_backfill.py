"""A backfill launched the way the UI launches it, run by the daemon under ``dagster dev``.

``python -m bench.aviation.ui_backfill [--home H] [--start 2013-01-01] [--end 2013-01-03]``

Why a script and not only the in-process tests: the in-process runs never go through the
webserver, the run queue or the daemon. This starts ``dagster dev -w workspace.yaml`` on a
temporary data home (``DATA_PRODUCTS_HOME``/``DAGSTER_HOME`` inside it), lands the range's
drops, sends the ``launchPartitionBackfill`` mutation the UI sends when you select the asset
group ``aviation`` and a set of partitions, waits for the daemon to finish the backfill's runs,
stops the server (SIGTERM to its process group, which it started) and then checks, from the
instance and the warehouse, that every asset of the group was materialised for every partition
and that silver and gold hold the days. Exit status 0 only if all of that holds.

The group includes the unpartitioned reference assets: the backfill materialises them once,
before the daily assets that read them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from data_products.lib.keys import validate_partition_key
from data_products.lib.settings import REPO_ROOT

GROUP = "aviation"
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
BIN = Path(sys.executable).parent

REPOSITORIES = """
{ repositoriesOrError { __typename ... on RepositoryConnection {
    nodes { name location { name } } } } }
"""
ASSETS = """
query ($group: AssetGroupSelector!) {
  assetNodes(group: $group) { assetKey { path } isPartitioned } }
"""
LAUNCH = """
mutation ($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  } }
"""
BACKFILL = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status numPartitions
      runs { runId status tags { key value } assetSelection { path } }
      error { message }
    }
    ... on PythonError { message }
  } }
"""


@dataclass
class Outcome:
    """What the backfill did, as seen through the API and then in the instance and warehouse."""

    server_ready_s: float = 0.0
    backfill_id: str = ""
    status: str = ""
    backfill_s: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    rows_by_day: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.status == "COMPLETED_SUCCESS"
            and bool(self.runs)
            and all(r["status"] == "SUCCESS" for r in self.runs)
            and not self.missing
            and all(all(n > 0 for n in days.values()) for days in self.rows_by_day.values())
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def _wait_for(what: str, probe: Any, timeout_s: float, server: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster dev exited ({server.returncode}) while waiting for {what}")
        try:
            value = probe()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f} s")


@contextmanager
def dagster_dev(env: Mapping[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dagster dev`` in its own process group, stopped with SIGTERM to that group.

    SIGINT is reset to its default in the child: a process started from a background job
    inherits it ignored, and ``dagster dev`` then does not stop its daemon and code servers
    (the `set -m` pitfall, docs/pinned-stack.md).
    """
    command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1"]
    command += ["-p", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            yield server
        finally:
            _stop(server)


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _days(start: str, end: str) -> list[str]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _prepare(env: Mapping[str, str], start: str, end: str) -> None:
    """A fresh instance (our dagster.yaml) and the range's drops, each by its own entry point."""
    python = sys.executable
    ensure = "from data_products.lib.instance import ensure_dagster_home; ensure_dagster_home()"
    for command in ([python, "-c", ensure], [python, "-m", "assets.aviation.drops", start, end]):
        subprocess.run(command, cwd=REPO_ROOT, env=dict(env), check=True)


def _verify(home: Path, days: Sequence[str], outcome: Outcome) -> None:
    """Every partitioned asset of the group materialised for every day; rows in silver and gold."""
    import dagster as dg
    import duckdb

    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        for key in instance.get_asset_keys(prefix=[GROUP]):
            materialised = instance.get_materialized_partitions(key)
            if not materialised:  # unpartitioned: materialised at all?
                if instance.get_latest_materialization_event(key) is None:
                    outcome.missing[key.to_user_string()] = ["(unpartitioned)"]
                continue
            absent = [d for d in days if d not in materialised]
            if absent:
                outcome.missing[key.to_user_string()] = absent
    tables = {
        "aviation_silver.flights": "flight_date",
        "aviation_silver.weather": "obs_date_local",
        "aviation_gold.on_time_daily": "flight_date",
    }
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for table, column in tables.items():
            counts = dict(
                con.execute(
                    f"SELECT CAST({column} AS VARCHAR), count(*) FROM {table} GROUP BY 1"
                ).fetchall()
            )
            outcome.rows_by_day[table] = {d: int(counts.get(d, 0)) for d in days}


def run(home: Path, start: str, end: str, *, timeout_s: float = 900) -> Outcome:
    """Land, serve, launch, wait, stop, verify (see the module docstring)."""
    days = _days(validate_partition_key(start), validate_partition_key(end))
    env = {
        **os.environ,
        "DATA_PRODUCTS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "DATA_PRODUCTS_LINEAGE_TRANSPORT": "none",
    }
    _prepare(env, start, end)
    outcome = Outcome()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with dagster_dev(env, port, home / "dagster_dev.log") as server:

        def repositories() -> list[dict[str, Any]]:
            data = _graphql(url, REPOSITORIES)["repositoriesOrError"]
            return data.get("nodes", [])

        repository = _wait_for("the code location", repositories, 300, server)[0]
        outcome.server_ready_s = time.monotonic() - started
        group = {
            "groupName": GROUP,
            "repositoryName": repository["name"],
            "repositoryLocationName": repository["location"]["name"],
        }
        nodes = _graphql(url, ASSETS, {"group": group})["assetNodes"]
        params = {
            "assetSelection": [{"path": n["assetKey"]["path"]} for n in nodes],
            "partitionNames": days,
            "title": f"{GROUP} {start}...{end} (bench.aviation.ui_backfill)",
        }
        launched = _graphql(url, LAUNCH, {"backfillParams": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"launchPartitionBackfill failed: {launched}")
        outcome.backfill_id = launched["backfillId"]
        began = time.monotonic()

        def finished() -> dict[str, Any] | None:
            data = _graphql(url, BACKFILL, {"id": outcome.backfill_id})
            backfill = data["partitionBackfillOrError"]
            return backfill if backfill.get("status") in DONE else None

        backfill = _wait_for(f"backfill {outcome.backfill_id}", finished, timeout_s, server)
        outcome.backfill_s = time.monotonic() - began
        outcome.status = backfill["status"]
        outcome.runs = [
            {
                "run_id": r["runId"],
                "status": r["status"],
                "assets": sorted("/".join(a["path"]) for a in r["assetSelection"] or []),
                "partitions": {
                    t["key"]: t["value"]
                    for t in r["tags"]
                    if t["key"].startswith("dagster/asset_partition")
                    or t["key"] == "dagster/partition"
                },
            }
            for r in reversed(backfill["runs"])
        ]
    _verify(home, days, outcome)
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.aviation.ui_backfill", description=__doc__
    )
    parser.add_argument("--home", type=Path, help="data home to create (default: a temporary one)")
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-01-03")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data home")
    args = parser.parse_args(argv)
    home = (args.home or Path(tempfile.mkdtemp(prefix="ui-backfill-"))).resolve()
    if home.exists() and any(home.iterdir()):
        parser.error(f"{home} is not empty: give a new or empty data home")
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        outcome = run(home, args.start, args.end)
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print(f"dagster dev ready (code location loaded) in {outcome.server_ready_s:.0f} s")
    print(
        f"backfill {outcome.backfill_id}: {outcome.status} in {outcome.backfill_s:.0f} s, "
        f"{len(outcome.runs)} runs"
    )
    for run_info in outcome.runs:
        print(f"  run {run_info['run_id']}: {run_info['status']} {run_info['partitions'] or ''}")
        print(f"    assets: {', '.join(run_info['assets'])}")
    for table, days in outcome.rows_by_day.items():
        print(f"  {table}: rows by day {days}")
    print(f"  assets missing a partition: {outcome.missing or 'none'}")
    print(f"total {time.monotonic() - started:.0f} s: {'OK' if outcome.ok else 'FAILED'}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
