"""Running one implementation as a child process and measuring it from outside.

Wall time is taken around the whole process (interpreter start-up and imports included: that is
what a run costs). Peak memory is measured two ways and the larger is reported:

- ``ru_maxrss`` from ``wait4`` for that one child: exact, but for a process *tree* Linux gives the
  largest single process, not the sum of processes alive at the same time;
- the sum of resident sets of the child and all its descendants, sampled every 100 ms with
  psutil: catches a tree whose processes hold memory at once (the platform runs ``dbt`` as a
  subprocess while the Dagster process still holds its own heap), but can miss a short spike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
_SAMPLE_EVERY_S = 0.1


PROGRESS_MARK = "» "
"""Children prefix the lines meant for the user with this; the rest goes to the log file."""


@dataclass(frozen=True)
class ChildRun:
    """What the parent saw of one child process."""

    label: str
    returncode: int
    wall_s: float
    maxrss_bytes: int  # largest single process of the tree (wait4 ru_maxrss)
    tree_peak_bytes: int  # largest sampled sum over the tree (0 without psutil)
    tail: tuple[str, ...] = ()  # the last lines of its output, for error messages

    @property
    def peak_bytes(self) -> int:
        return max(self.maxrss_bytes, self.tree_peak_bytes)


class _TreeSampler(threading.Thread):
    """Samples the resident set of a process tree and prints a heartbeat now and then."""

    def __init__(self, pid: int, label: str, heartbeat_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.label = label
        self.heartbeat_s = heartbeat_s
        self.peak = 0
        self.stop = threading.Event()
        self.started = time.perf_counter()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:  # a dev dependency; without it only ru_maxrss is reported
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        next_beat = self.started + self.heartbeat_s
        while not self.stop.wait(_SAMPLE_EVERY_S):
            current = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in processes:
                try:
                    current += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, current)
            now = time.perf_counter()
            if self.heartbeat_s and now >= next_beat:
                print(
                    f"[{self.label}] … {now - self.started:.0f} s, resident "
                    f"{current / GIB:.2f} GiB (peak so far {self.peak / GIB:.2f} GiB)",
                    flush=True,
                )
                next_beat = now + self.heartbeat_s


def run_child(
    label: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: str | None = None,
    heartbeat_s: float = 20.0,
    quiet: bool = False,
) -> ChildRun:
    """Run ``command`` and return what it cost. Its progress lines are printed prefixed with
    ``[label]``; all of its output (dbt's included) goes to ``log_path``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    sampler = _TreeSampler(process.pid, label, 0 if quiet else heartbeat_s)
    sampler.start()
    tail: deque[str] = deque(maxlen=40)
    reader = threading.Thread(
        target=_relay, args=(process, label, quiet, log_path, tail), daemon=True
    )
    reader.start()
    # wait4, not Popen.wait: it returns this child's own rusage (RUSAGE_CHILDREN would mix the
    # children of earlier implementations into the figure).
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop.set()
    sampler.join(timeout=5)
    reader.join(timeout=5)
    return ChildRun(
        label=label,
        returncode=process.returncode,
        wall_s=wall,
        maxrss_bytes=usage.ru_maxrss * 1024,  # KiB on Linux
        tree_peak_bytes=sampler.peak,
        tail=tuple(tail),
    )


def _relay(
    process: subprocess.Popen[str], label: str, quiet: bool, log_path: Path, tail: deque[str]
) -> None:
    assert process.stdout is not None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        for line in process.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if not quiet and line.startswith(PROGRESS_MARK):
                sys.stdout.write(f"[{label}] {line[len(PROGRESS_MARK) :]}")
                sys.stdout.flush()
