"""Where lineage events go, chosen by ``Settings.lineage_transport``.

``file`` (the default) appends JSON lines to ``<lineage_dir>/events-YYYY-MM-DD.jsonl``, one file
per UTC day. openlineage-python's ``FileTransport`` is not used for it: in append mode it writes
to one fixed path (no daily files), through a buffered text file, without a lock or fsync, so two
processes (the multiprocess executor, a CLI run beside ``dagster dev``) can interleave a long
event's bytes and a crash can lose the tail. ``DailyFileTransport`` writes each event with one
``write`` under an exclusive ``flock`` and fsyncs before returning.

``http`` is openlineage-python's ``HttpTransport`` to ``Settings.lineage_url``; the API key
comes from ``OPENLINEAGE_API_KEY`` (the variable the OpenLineage clients use) and only ever
travels in the ``Authorization`` header. ``console`` and ``none`` are the client's own.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attr
from openlineage.client.serde import Serde
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpConfig,
    HttpTransport,
    TokenProvider,
)
from openlineage.client.transport.noop import NoopConfig, NoopTransport
from openlineage.client.transport.transport import Config, Transport

from data_products.lib.settings import Settings

if TYPE_CHECKING:
    from openlineage.client.client import Event

log = logging.getLogger(__name__)

EVENT_FILE_GLOB = "events-*.jsonl"
API_KEY_ENV = "OPENLINEAGE_API_KEY"
ENDPOINT_ENV = "OPENLINEAGE_ENDPOINT"
# A lineage server that is down must not hold a run up for minutes: a short timeout and two
# retries (the client's default is five, with backoff) bound the delay to a few seconds.
HTTP_TIMEOUT_SECONDS = 5.0
HTTP_RETRY = {
    "total": 2,
    "read": 2,
    "connect": 2,
    "backoff_factor": 0.2,
    "status_forcelist": [500, 502, 503, 504],
    "allowed_methods": ["HEAD", "POST"],
}


class LineageConfigError(ValueError):
    """The lineage settings cannot produce a transport."""


def event_file(lineage_dir: Path, day: datetime) -> Path:
    return lineage_dir / f"events-{day.astimezone(UTC).date().isoformat()}.jsonl"


@attr.define
class DailyFileConfig(Config):
    lineage_dir: str

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> DailyFileConfig:
        if "lineage_dir" not in params:
            raise LineageConfigError("`lineage_dir` is required for the daily_file transport")
        return cls(lineage_dir=str(params["lineage_dir"]))


class DailyFileTransport(Transport):
    """Appends each event as one JSON line to the current UTC day's file."""

    kind = "daily_file"
    config_class = DailyFileConfig

    def __init__(self, config: DailyFileConfig) -> None:
        self.lineage_dir = Path(config.lineage_dir)

    def emit(self, event: Event) -> None:
        line = (Serde.to_json(event) + "\n").encode("utf-8")
        self.lineage_dir.mkdir(parents=True, exist_ok=True)
        path = event_file(self.lineage_dir, datetime.now(UTC))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # O_APPEND puts each write at the end; the lock keeps a short write (which os.write
            # may return for large buffers) from being split by another process's line.
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock


def build_transport(settings: Settings) -> Transport:
    """The transport ``settings`` asks for; raises ``LineageConfigError`` if it cannot."""
    kind = settings.lineage_transport
    if kind == "file":
        return DailyFileTransport(DailyFileConfig(lineage_dir=str(settings.lineage_dir)))
    if kind == "http":
        if not settings.lineage_url:
            raise LineageConfigError(
                "lineage transport 'http' needs a URL: set OPENLINEAGE_URL (e.g. http://localhost:5000)"
            )
        api_key = os.environ.get(API_KEY_ENV)
        auth = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else TokenProvider({})
        return HttpTransport(
            HttpConfig(
                url=settings.lineage_url,
                endpoint=os.environ.get(ENDPOINT_ENV) or "api/v1/lineage",
                timeout=HTTP_TIMEOUT_SECONDS,
                auth=auth,
                retry=HTTP_RETRY,
            )
        )
    if kind == "console":
        return ConsoleTransport(ConsoleConfig())
    if kind == "none":
        return NoopTransport(NoopConfig())
    raise LineageConfigError(
        f"unknown lineage transport {kind!r}: expected one of file, http, console, none"
    )


def read_events(lineage_dir: Path) -> list[dict[str, Any]]:
    """Every event under ``lineage_dir``, oldest day first, in write order within a day.

    A line that does not parse (only a crash mid-write can leave one) is skipped with a
    warning naming the file and line, so one torn line does not hide a day's lineage.
    """
    events: list[dict[str, Any]] = []
    for path in sorted(Path(lineage_dir).glob(EVENT_FILE_GLOB)):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    log.warning("skipping unreadable lineage event %s:%d: %s", path, number, exc)
    return events
