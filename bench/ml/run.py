"""The ml benchmark (see ``bench.ml``)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import psutil

from bench.ml.latency import Latencies, time_calls
from bench.ml.stalls import Pause, RequestTimes, attribute
from data_products.lib.settings import REPO_ROOT
from resources.postgres_server import free_port

HTTP_P99_TARGET_MS = 50.0


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children_now() -> float:
    """CPU of finished child processes (the load generator, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured(record: dict[str, Any], label: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), cpu_now()
    yield
    record[label] = {
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(cpu_now() - cpu, 2),
    }
    print(
        f"  {label}: {record[label]['wall_s']} s wall, {record[label]['cpu_s']} s CPU", flush=True
    )


STEPS = ("feature_exports", "feast_apply", "online_materialize_and_parity", "training_set")
"""The ml build's steps in order (then the model); ``--steps`` picks some of them."""


def build(home: Path, start: str, end: str, steps: Sequence[str] = STEPS) -> dict[str, Any]:
    """Materialise what the ml domain reads (if missing) and the ml assets step by step: the
    chosen ``steps``, then the model (a rerun of one step reuses the home's earlier ones)."""
    import dagster as dg

    from assets.aviation import drops
    from assets.ml.common import (
        AVIATION_FLIGHTS,
        AVIATION_PLANES,
        AVIATION_ROTATIONS,
        AVIATION_WEATHER,
        DELAY_MODEL,
        FEATURE_REGISTRY,
        ONLINE_FEATURES,
        TRAINING_SET,
    )
    from assets.ml.demo import aviation_ready
    from assets.ml.feature_definitions import VIEWS
    from data_products.cli.runs import materialize_slice
    from data_products.lib.instance import ensure_dagster_home

    ensure_dagster_home()
    from data_products.definitions import defs

    instance = dg.DagsterInstance.get()
    timings: dict[str, Any] = {}

    def run(selection: dg.AssetSelection, label: str) -> None:
        if label not in (*steps, "aviation_inputs (not ml)", "delay_model"):
            return
        with measured(timings, label):
            result = materialize_slice(
                defs, selection, start=start, end=end, instance=instance, log_level="WARNING"
            )
        if not result.success:
            raise RuntimeError(f"{label} failed: {result.failed_steps}")
        failed = [f"{c.asset}:{c.check}" for c in result.gate_failures]
        timings[label]["gate_failures"] = failed

    if not aviation_ready(instance, start, end):
        drops.land(home / "landing", start, end)
        inputs = dg.AssetSelection.assets(
            *(
                n.asset_key
                for n in (AVIATION_FLIGHTS, AVIATION_WEATHER, AVIATION_PLANES, AVIATION_ROTATIONS)
            )
        )
        run(inputs.upstream().required_multi_asset_neighbors(), "aviation_inputs (not ml)")
    keys = dg.AssetSelection.assets
    run(keys(*(v.dataset.asset_key for v in VIEWS)), "feature_exports")
    run(keys(FEATURE_REGISTRY.asset_key), "feast_apply")
    run(keys(ONLINE_FEATURES.asset_key), "online_materialize_and_parity")
    if "online_materialize_and_parity" in timings:
        timings["online_materialize_and_parity"].update(_online_store_rates(timings))
    run(keys(TRAINING_SET.asset_key), "training_set")
    run(keys(DELAY_MODEL.asset_key), "delay_model")
    return timings


def _online_store_rates(timings: dict[str, Any]) -> dict[str, Any]:
    """What the online store holds after the materialisation, per second of it: entities (one
    per key and view) and SQLite rows (one per entity and feature, what Feast's writer inserts
    one ``execute`` at a time). Counted from the store, so a run over days already there reads
    as the whole store, not the run's share: run it on a fresh home."""
    import sqlite3

    from data_products.lib.feast_store import online_store_path
    from data_products.lib.keys import validate_identifier

    with closing(sqlite3.connect(online_store_path())) as con:
        tables = [
            validate_identifier(name, what="online store table")
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        counts = [
            con.execute(f'SELECT count(*), count(DISTINCT entity_key) FROM "{name}"').fetchone()
            for name in tables
        ]
    rows, entities = sum(c[0] for c in counts), sum(c[1] for c in counts)
    wall = timings["online_materialize_and_parity"]["wall_s"]
    return {
        "online_entities": entities,
        "online_rows": rows,
        "entities_per_s": round(entities / wall),
        "rows_per_s": round(rows / wall),
    }


def _flights(day: date) -> pl.DataFrame:
    from assets.ml.feature_definitions import VIEWS_BY_NAME
    from data_products.lib.feast_store import feature_exports

    view = VIEWS_BY_NAME["flight_schedule"]
    return feature_exports().read_days(view.dataset, [day]).sort("flight_id")


def python_lookups(day: date, count: int) -> dict[str, Any]:
    """Feast ``get_online_features`` as the endpoint calls it: the flight's schedule row by id,
    and the entity features of its origin, carrier, route and aircraft (five views, one call)."""
    from assets.ml.serving_api import ENTITY_VIEWS
    from data_products.lib.feast_store import feature_store

    store = feature_store()
    flights = _flights(day)
    rows = [
        {
            "origin": r["flight_origin"],
            "carrier": r["flight_carrier"],
            "route": f"{r['flight_origin']}-{r['flight_dest']}",
            "tailnum": r["flight_tailnum"] or "",
        }
        for r in flights.iter_rows(named=True)
    ]
    ids = flights["flight_id"].to_list()
    entity_refs = [f"{v.name}:{n}" for v in ENTITY_VIEWS for n in [*v.model_features, v.known_at]]
    schedule_refs = ["flight_schedule:flight_origin", "flight_schedule:sched_dep_hour"]

    def entity(i: int) -> object:
        return store.get_online_features(features=entity_refs, entity_rows=[rows[i % len(rows)]])

    def schedule(i: int) -> object:
        return store.get_online_features(
            features=schedule_refs, entity_rows=[{"flight_id": ids[i % len(ids)]}]
        )

    time_calls(entity, 100), time_calls(schedule, 100)  # warm-up: caches, first connections
    cpu = cpu_now()
    results = {
        "entity_features_5_views": time_calls(entity, count).summary(),
        "flight_schedule_by_id": time_calls(schedule, count).summary(),
    }
    results["cpu_s"] = round(cpu_now() - cpu, 2)
    return results


@contextmanager
def uvicorn_server(
    home: Path, record: Path, *, gc_freeze: bool = True
) -> Iterator[tuple[str, psutil.Process]]:
    """The scoring app under uvicorn (``bench.ml.server``: the app ``make serve-ml`` serves, plus
    handler times in a header and its GC pauses written to ``record`` when it stops)."""
    port = free_port()
    env = {**os.environ, "DATA_PRODUCTS_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.ml.server"),
            *("--port", str(port), "--record", str(record)),
            *([] if gc_freeze else ["--no-gc-freeze"]),
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer on {url} (exit {process.poll()})")
            time.sleep(0.5)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def http_lookups(
    home: Path,
    day: date,
    rate: float,
    seconds: float,
    *,
    client_process: bool = True,
    server_gc_freeze: bool = True,
) -> dict[str, Any]:
    """``GET /flights/{id}`` (schedule + entity features + model) at a fixed rate, open loop,
    with every request slower than the target attributed to a cause (``bench.ml.stalls``).

    ``client_process``: the load generator runs in a process of its own (``bench.ml.client``);
    False runs it in this process, as the benchmark did before, to show what that costs.
    ``server_gc_freeze`` False serves without the app's ``gc.freeze()`` (the app before it)."""
    from bench.ml.client import run_recorded, to_json

    ids = _flights(day)["flight_id"].to_list()
    scratch = home / "bench_http"
    scratch.mkdir(parents=True, exist_ok=True)
    record = scratch / "server_gc.json"
    with uvicorn_server(home, record, gc_freeze=server_gc_freeze) as (url, server):
        before = server.cpu_times()
        client_before = cpu_children_now() if client_process else cpu_now()
        if client_process:
            (scratch / "ids.txt").write_text("\n".join(ids))
            client_out = scratch / "client.json"
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.ml.client",
                    *("--url", url, "--ids", str(scratch / "ids.txt")),
                    *("--rate", str(rate), "--seconds", str(seconds), "--out", str(client_out)),
                ],
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                check=True,
            )
            del child
            client_cpu = cpu_children_now() - client_before
            measured_run = json.loads(client_out.read_text())
        else:
            run, recorder = run_recorded(url, ids, rate=rate, seconds=seconds, freeze=False)
            client_cpu = cpu_now() - client_before
            measured_run = to_json(run, recorder)
        after = server.cpu_times()
    server_gc = json.loads(record.read_text())  # written when the server stopped
    requests = [RequestTimes(**r) for r in measured_run["requests"]]
    pauses = [Pause(**p) for p in [*server_gc["pauses"], *measured_run["pauses"]]]
    from_due = Latencies([r.latency_ms for r in requests])
    service = Latencies([(r.done - r.sent) * 1000 for r in requests])
    return {
        "rate_requested": rate,
        "rate_achieved": round(measured_run["achieved_rate"], 1),
        "client": "own process" if client_process else "benchmark process",
        "server_gc_freeze": server_gc_freeze,
        "errors": measured_run["errors"],
        "latency_from_schedule": from_due.summary(),
        "service_time": service.summary(),
        "server_cpu_s": round((after.user + after.system) - (before.user + before.system), 2),
        "client_cpu_s": round(client_cpu, 2),
        "server_gc": server_gc["summary"],
        "client_gc": measured_run["gc"],
        "stalls": attribute(requests, pauses, threshold_ms=HTTP_P99_TARGET_MS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ml", description=__doc__)
    parser.add_argument("--home", type=Path, required=True, help="the benchmark's data home")
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--end", default="2013-12-31")
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="HTTP run length")
    parser.add_argument("--lookups", type=int, default=3000, help="Python API calls per kind")
    parser.add_argument("--skip-build", action="store_true", help="measure lookups only")
    parser.add_argument(
        "--steps",
        type=lambda text: text.split(","),
        default=list(STEPS),
        help=f"comma-separated build steps to run (default: all of {','.join(STEPS)})",
    )
    parser.add_argument(
        "--client-in-process",
        action="store_true",
        help="run the HTTP load generator in the benchmark's process (the old way, for comparison)",
    )
    parser.add_argument(
        "--server-no-gc-freeze",
        action="store_true",
        help="serve without the app's gc.freeze() after warm-up (for comparison)",
    )
    parser.add_argument("--skip-python-api", action="store_true", help="HTTP lookups only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    home = args.home.resolve()
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    os.environ.setdefault("DATA_PRODUCTS_LINEAGE_TRANSPORT", "file")
    last_day = date.fromisoformat(args.end)
    report: dict[str, Any] = {
        "home": str(home),
        "range": f"{args.start}...{args.end}",
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    print(f"ml benchmark on {home}, {report['range']}", flush=True)
    if not args.skip_build:
        report["build"] = build(home, args.start, args.end, args.steps)
        with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
            rows = con.execute("SELECT count(*) FROM ml_gold.training_set").fetchone()
        report["training_set_rows"] = rows[0] if rows else 0
    if not args.skip_python_api:
        print("Python API lookups …", flush=True)
        report["python_api"] = python_lookups(last_day, args.lookups)
        print(json.dumps(report["python_api"], indent=2))
    print(f"HTTP at {args.rate:g} requests/s for {args.seconds:g} s …", flush=True)
    report["http"] = http_lookups(
        home,
        last_day,
        args.rate,
        args.seconds,
        client_process=not args.client_in_process,
        server_gc_freeze=not args.server_no_gc_freeze,
    )
    print(json.dumps(report["http"], indent=2))
    report["targets"] = _targets(report)
    print(json.dumps(report["targets"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    http_p99 = report["http"]["latency_from_schedule"]["p99_ms"]
    targets: dict[str, Any] = {}
    if "python_api" in report:
        python_p99 = report["python_api"]["entity_features_5_views"]["p99_ms"]
        targets = {
            "python_api_p99_ms": python_p99,
            "python_api_p99_target_ms": 5,
            "python_api_p99_met": python_p99 <= 5,
        }
    return {
        **targets,
        "http_p99_ms": http_p99,
        "http_p99_target_ms": HTTP_P99_TARGET_MS,
        "http_p99_met": http_p99 <= HTTP_P99_TARGET_MS,
    }
