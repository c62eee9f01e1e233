"""Seeded simulator of card transactions, with injected fraud, late events and re-sent duplicates.

The stream tests and the demo need a stream whose right answers are known without trusting the
code under test, so the simulator writes two things apart: the events as a source would deliver
them (in arrival order, late and duplicated), and the ground truth (which events are fraud, which
incident and pattern they belong to, how late they arrived, which rows are re-sends).

Fraud patterns, each an *incident* of one or more events:
- ``velocity``: 6-11 transactions of one card within 50 seconds;
- ``amount_spike``: one transaction 10-30x the card's usual amount;
- ``impossible_travel``: a transaction at home, then one >= 3,000 km away a few minutes later
  (only the far one is fraud).

Normal cards spend in their home country and currency around a per-card baseline (log-normal,
sigma 0.35), at a Poisson rate of ``events / users / span`` each. Every draw comes from one
``numpy`` generator seeded by ``seed``: the same configuration gives the same stream.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from assets.payments.reference import COUNTRIES

PATTERNS = ("velocity", "amount_spike", "impossible_travel")

_HOME_WEIGHTS = np.array([30, 6, 10, 8, 8, 6, 4, 8, 4, 6, 6, 4], dtype=float)
EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "merchant_id",
    "amount",
    "currency",
    "country",
    "device_id",
    "event_time",
)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``events`` counts distinct transactions (re-sends come on top)."""

    events: int = 20_000
    users: int = 1_000
    merchants: int = 300
    events_per_second: float = 5.0
    """Event-time rate: the stream spans ``events / events_per_second`` seconds."""
    start: datetime = datetime(2026, 3, 1, tzinfo=UTC)
    late_share: float = 0.02
    max_delay_s: float = 300.0
    jitter_s: float = 0.5
    """Every event arrives after an exponential network delay with this mean."""
    duplicate_share: float = 0.01
    velocity_per_10k: float = 8.0
    spikes_per_10k: float = 25.0
    travel_per_10k: float = 25.0
    warmup_share: float = 0.35
    """Amount spikes and travel start after this share of the span, so cards have a history."""
    id_prefix: str = "tx"
    seed: int = 7
    segment: int = 0
    """Long streams are simulated in segments: the cards (home, baseline, devices) come from
    ``seed`` alone, the events from ``(seed, segment)``."""


@dataclass(frozen=True)
class SimulatedStream:
    """``events``: the delivered stream in arrival order (``arrival_s`` is seconds after
    ``start``); ``truth``: one row per distinct event; ``transactions``: the distinct events."""

    events: pl.DataFrame
    truth: pl.DataFrame
    config: SimulationConfig


def simulate(config: SimulationConfig) -> SimulatedStream:
    """The whole stream of ``config`` (vectorised; about a second per million events)."""
    rng = np.random.default_rng([config.seed, config.segment, 1])
    span = config.events / config.events_per_second
    home, baseline_usd, devices = _cards(config.seed, config.users)

    n_velocity = _incidents(config.velocity_per_10k, config.events, rng)
    n_spikes = _incidents(config.spikes_per_10k, config.events, rng)
    n_travel = _incidents(config.travel_per_10k, config.events, rng)
    burst_sizes = rng.integers(6, 12, size=n_velocity)
    n_fraud_rows = int(burst_sizes.sum()) + n_spikes + 2 * n_travel
    n_normal = max(config.events - n_fraud_rows, 0)

    parts: list[dict[str, np.ndarray]] = []
    # Normal traffic.
    users = rng.integers(0, config.users, size=n_normal)
    parts.append(
        _rows(
            rng,
            users=users,
            times=rng.uniform(0, span, size=n_normal),
            country=home[users],
            amount_factor=np.exp(rng.normal(0.0, 0.35, size=n_normal)),
            baseline_usd=baseline_usd,
            merchants=config.merchants,
            pattern="",
            incident=np.full(n_normal, -1),
            fraud=np.zeros(n_normal, dtype=bool),
            device=devices[users],
        )
    )
    incident = 0
    # Velocity bursts: a stolen card tried many times within a minute, on a new device.
    burst_users = rng.integers(0, config.users, size=n_velocity)
    burst_starts = rng.uniform(0, max(span - 60, 0), size=n_velocity)
    rows_users = np.repeat(burst_users, burst_sizes)
    offsets = rng.uniform(0, 50, size=len(rows_users))
    parts.append(
        _rows(
            rng,
            users=rows_users,
            times=np.repeat(burst_starts, burst_sizes) + offsets,
            country=home[rows_users],
            amount_factor=np.exp(rng.normal(0.0, 0.35, size=len(rows_users))),
            baseline_usd=baseline_usd,
            merchants=config.merchants,
            pattern="velocity",
            incident=np.repeat(np.arange(incident, incident + n_velocity), burst_sizes),
            fraud=np.ones(len(rows_users), dtype=bool),
            device=np.full(len(rows_users), 9),
        )
    )
    incident += n_velocity
    late_start = config.warmup_share * span
    spike_users = rng.integers(0, config.users, size=n_spikes)
    parts.append(
        _rows(
            rng,
            users=spike_users,
            times=rng.uniform(late_start, span, size=n_spikes),
            country=home[spike_users],
            amount_factor=rng.uniform(10, 30, size=n_spikes),
            baseline_usd=baseline_usd,
            merchants=config.merchants,
            pattern="amount_spike",
            incident=np.arange(incident, incident + n_spikes),
            fraud=np.ones(n_spikes, dtype=bool),
            device=devices[spike_users],
        )
    )
    incident += n_spikes
    # Impossible travel: a genuine purchase at home, then a cloned card far away minutes later.
    travel_users = rng.integers(0, config.users, size=n_travel)
    t0 = rng.uniform(late_start, max(span - 1500, late_start), size=n_travel)
    far = np.array([_far_country(int(h), rng) for h in home[travel_users]], dtype=np.int64)
    ids = np.arange(incident, incident + n_travel)
    parts.append(
        _rows(
            rng,
            users=np.concatenate([travel_users, travel_users]),
            times=np.concatenate([t0, t0 + rng.uniform(120, 1200, size=n_travel)]),
            country=np.concatenate([home[travel_users], far]),
            amount_factor=np.exp(rng.normal(0.0, 0.35, size=2 * n_travel)),
            baseline_usd=baseline_usd,
            merchants=config.merchants,
            pattern="impossible_travel",
            incident=np.concatenate([ids, ids]),
            fraud=np.concatenate([np.zeros(n_travel, bool), np.ones(n_travel, bool)]),
            device=np.concatenate([devices[travel_users], np.full(n_travel, 8)]),
        )
    )

    table = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # Patterns can reach past the span (a burst's tail, travel's second leg): a stream segment
    # must not contain events from its future, so those are dropped.
    inside = table["time_s"] <= span
    table = {k: v[inside] for k, v in table.items()}
    order = np.argsort(table["time_s"], kind="stable")
    table = {k: v[order] for k, v in table.items()}
    n = len(order)
    late = rng.random(n) < config.late_share
    delay = rng.exponential(config.jitter_s, size=n) + np.where(
        late, rng.uniform(0, config.max_delay_s, size=n), 0.0
    )
    start_ms = int(config.start.timestamp() * 1000)
    event_ms = start_ms + np.round(table["time_s"] * 1000).astype(np.int64)
    codes = pl.DataFrame(
        {
            "i": np.arange(n),
            "user": table["user"],
            "merchant": table["merchant"],
            "country": table["country"],
            "device": table["device"],
        }
    )
    # Strings built column-wise (the simulator shares the cores with the consumer in the
    # stream benchmark): the same values as f"{prefix}{i:010d}" and friends, row by row.
    distinct = codes.select(
        event_id=pl.lit(config.id_prefix) + _zero_padded("i", 10),
        user_id=pl.lit("u") + _zero_padded("user", 7),
        merchant_id=pl.lit("m") + _zero_padded("merchant", 5),
        amount=pl.lit(table["amount"]),
        currency=pl.lit(pl.Series([c[1] for c in COUNTRIES])).gather(pl.col("country")),
        country=pl.lit(pl.Series([c[0] for c in COUNTRIES])).gather(pl.col("country")),
        device_id=pl.lit("d")
        + _zero_padded("user", 7)
        + pl.lit("-")
        + pl.col("device").cast(pl.String),
        event_time=pl.lit(pl.Series(event_ms)).cast(pl.Datetime("ms", "UTC")),
        arrival_s=pl.lit(table["time_s"] + delay),
    )
    truth = distinct.select(
        "event_id",
        "user_id",
        "event_time",
        pl.Series("is_fraud", table["fraud"]),
        pl.Series("pattern", table["pattern"]).replace("", None),
        pl.Series("incident_id", table["incident"]).replace(-1, None),
        pl.Series("delay_s", delay),
        pl.Series("injected_late", late),
    )
    # Re-sends: the same payload delivered again between 1 s and 2 min later.
    n_dups = round(config.duplicate_share * n)
    dup_rows = np.sort(rng.choice(n, size=n_dups, replace=False)) if n_dups else np.array([], int)
    resent = distinct[dup_rows.tolist()].with_columns(
        pl.col("arrival_s") + pl.Series(rng.uniform(1, 120, size=n_dups))
    )
    events = (
        pl.concat([distinct.with_columns(resend=pl.lit(False)), resent.with_columns(resend=True)])
        .sort("arrival_s", maintain_order=True)
        .with_columns(pl.col("amount").round(2))
    )
    truth = truth.with_columns(resent=pl.col("event_id").is_in(resent["event_id"].implode()))
    return SimulatedStream(events=events, truth=truth, config=config)


@functools.lru_cache(maxsize=2)
def _cards(seed: int, users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Home country, baseline amount (USD) and device index (d<user>-<0|1>) of every card.
    Cached: a long stream is simulated in segments that share their cards, and drawing ten
    million cards per five-second segment would cost the producer a third of a core."""
    cards = np.random.default_rng(seed)
    home = cards.choice(len(COUNTRIES), size=users, p=_HOME_WEIGHTS / _HOME_WEIGHTS.sum())
    baseline_usd = np.exp(cards.normal(3.4, 0.7, size=users))
    devices = cards.integers(0, 2, size=users)
    for array in (home, baseline_usd, devices):
        array.flags.writeable = False  # shared between calls: nobody may change them
    return home, baseline_usd, devices


def _zero_padded(column: str, width: int) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.zfill(width)


def _incidents(per_10k: float, events: int, rng: np.random.Generator) -> int:
    expected = per_10k * events / 10_000
    return math.floor(expected + rng.random())


def _rows(
    rng: np.random.Generator,
    *,
    users: np.ndarray,
    times: np.ndarray,
    country: np.ndarray,
    amount_factor: np.ndarray,
    baseline_usd: np.ndarray,
    merchants: int,
    pattern: str,
    incident: np.ndarray,
    fraud: np.ndarray,
    device: np.ndarray,
) -> dict[str, np.ndarray]:
    per_usd = np.array([c[4] for c in COUNTRIES])[country]
    return {
        "user": users.astype(np.int64),
        "time_s": times.astype(float),
        "country": country.astype(np.int64),
        "amount": np.round(baseline_usd[users] * amount_factor * per_usd, 2),
        "merchant": rng.integers(0, merchants, size=len(users)),
        "pattern": np.full(len(users), pattern, dtype=object),
        "incident": incident.astype(np.int64),
        "fraud": fraud,
        "device": device.astype(np.int64),
    }


def distance_km(a: int, b: int) -> float:
    """Great-circle distance between two countries' centroids (haversine)."""
    _, _, lat1, lon1, _ = COUNTRIES[a]
    _, _, lat2, lon2, _ = COUNTRIES[b]
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _far_country(home: int, rng: np.random.Generator) -> int:
    candidates = [i for i in range(len(COUNTRIES)) if distance_km(home, i) >= 3000]
    return int(rng.choice(candidates))


def encode_events(events: pl.DataFrame) -> list[bytes]:
    """The delivered payloads: one JSON line per event (newline-terminated, so any run of records
    read from the log is itself valid JSON lines), event time as ISO-8601 UTC with milliseconds."""
    payload = events.select(
        *EVENT_COLUMNS[:-1],
        pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
    )
    lines = payload.write_ndjson().encode().split(b"\n")
    return [line + b"\n" for line in lines if line]


def encode_packed(events: pl.DataFrame) -> tuple[bytes, np.ndarray]:
    """``encode_events`` as one buffer and the records' lengths, for ``Producer.send_packed``:
    the JSON lines are written by polars in one call and cut at their newlines (JSON escapes
    newlines inside strings, so every raw newline ends a record)."""
    payload = events.select(
        *EVENT_COLUMNS[:-1],
        pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
    )
    data = payload.write_ndjson().encode()
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    return data, np.diff(newlines, prepend=-1).astype(np.uint32)


def stream_span(config: SimulationConfig) -> timedelta:
    return timedelta(seconds=config.events / config.events_per_second)
