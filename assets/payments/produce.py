"""Producer CLI: simulate card transactions and append them to the payments event log.

    python -m assets.payments.produce --events 20000 --rate 5000
    python -m assets.payments.produce --realtime --rate 50000 --duration 300 --no-truth

``--rate`` paces appends (records per second; 0 = as fast as the disk allows). ``--realtime``
stamps event times from now at the same rate, so event time tracks wall-clock time (what latency
from event time to feature needs); long streams are simulated in segments to bound memory.
Ground truth (labels, settlement breaks) goes under ``truth/payments``, the settlement files under
``landing/payments/settlement`` (``--settlement``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import polars as pl

from assets.payments.reference import DOMAIN, PARTITIONS, TOPIC
from assets.payments.settlement import write_settlement
from assets.payments.simulator import SimulationConfig, encode_packed, simulate
from data_products.lib.eventlog import EventLog, Producer, partitions_for_keys
from data_products.lib.settings import get_settings
from data_products.lib.timer import PhaseTimer


@dataclass(frozen=True)
class ProduceReport:
    records: int
    distinct: int
    seconds: float
    appends: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")


def open_topic() -> EventLog:
    return EventLog.open(TOPIC, partitions=PARTITIONS)


def produce(
    config: SimulationConfig,
    *,
    rate: float | None = None,
    truth: bool = True,
    settlement: bool = False,
    log: EventLog | None = None,
) -> ProduceReport:
    """Simulate ``config`` and append it, in arrival order, keyed by card."""
    log = log or open_topic()
    stream = simulate(config)
    producer = Producer(log, rate=rate or None)
    timer = PhaseTimer()
    with timer.phase("append"):
        _send(producer, stream.events)
        producer.flush()
    if truth:
        folder = get_settings().truth / DOMAIN
        folder.mkdir(parents=True, exist_ok=True)
        stream.truth.write_parquet(
            folder / f"labels-{config.id_prefix}{config.segment:05d}.parquet"
        )
    if settlement:
        distinct = stream.events.filter(~pl.col("resend"))
        write_settlement(distinct, seed=config.seed)
    return ProduceReport(
        stream.events.height, stream.truth.height, timer.seconds("append"), producer.appends
    )


def produce_realtime(
    *, rate: float, duration_s: float, users: int, seed: int, segment_events: int = 250_000
) -> ProduceReport:
    """``rate`` events per second of event time and of wall time, for ``duration_s`` seconds:
    event times start now, and each segment is appended as its wall-clock time comes."""
    log = open_topic()
    producer = Producer(log, rate=rate)
    t0 = datetime.now(UTC)
    timer = PhaseTimer()
    total, distinct, segment = 0, 0, 0
    target = int(rate * duration_s)
    # Events delayed past their segment's end wait here and go out with the segment in which
    # they arrive, so lateness crosses segment boundaries as in one long simulation.
    pending: pl.DataFrame | None = None
    while total < target:
        n = min(segment_events, target - total)
        offset_s = total / rate
        config = SimulationConfig(
            events=n,
            users=users,
            events_per_second=rate,
            start=t0 + timedelta(seconds=offset_s),
            seed=seed,
            segment=segment,
            id_prefix=f"rt{seed}s{segment:05d}x",
        )
        stream = simulate(config)
        total += n
        distinct += stream.truth.height
        segment += 1
        fresh = stream.events.with_columns(pl.col("arrival_s") + offset_s)
        arrived = (fresh if pending is None else pl.concat([pending, fresh])).sort(
            "arrival_s", maintain_order=True
        )
        due = total / rate if total < target else float("inf")
        now, pending = (
            arrived.filter(pl.col("arrival_s") <= due),
            arrived.filter(pl.col("arrival_s") > due),
        )
        _send(producer, now)
    producer.flush()
    return ProduceReport(producer.sent, distinct, timer.elapsed(), producer.appends)


def _send(producer: Producer, events: pl.DataFrame) -> None:
    """Append ``events`` in order, keyed by card, as packed frames (no object per record)."""
    if events.height:
        keys = events["user_id"].to_list()
        partitions = partitions_for_keys(keys, producer.log.partitions)
        producer.send_packed(partitions, *encode_packed(events))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=0.0, help="records/s; 0: unpaced")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--late-share", type=float, default=0.02)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--settlement", action="store_true", help="write settlement files")
    parser.add_argument("--no-truth", action="store_true", help="do not write ground truth")
    parser.add_argument("--realtime", action="store_true", help="event time = wall time")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (--realtime)")
    args = parser.parse_args(argv)
    if args.realtime:
        if args.rate <= 0:
            parser.error("--realtime needs --rate > 0")
        report = produce_realtime(
            rate=args.rate, duration_s=args.duration, users=args.users, seed=args.seed
        )
    else:
        config = SimulationConfig(
            events=args.events,
            users=args.users,
            late_share=args.late_share,
            duplicate_share=args.duplicate_share,
            seed=args.seed,
        )
        config = replace(config, id_prefix=f"tx{args.seed}x")
        report = produce(
            config, rate=args.rate, truth=not args.no_truth, settlement=args.settlement
        )
    print(
        f"appended {report.records} records ({report.distinct} distinct transactions) to "
        f"{TOPIC} in {report.seconds:.2f}s = {report.rate:,.0f} records/s, {report.appends} appends"
    )


if __name__ == "__main__":
    main()
