"""Wall time and peak resident memory of the stages of one process, and what the machine was.

psutil is not a dependency, so memory is read from /proc/self/status: VmRSS sampled by a
thread, and VmHWM (the kernel's own peak) reset at the start of every stage by writing 5 to
/proc/self/clear_refs (Linux >= 4.0). A stage's peak is the larger of the two: the kernel's
peak catches spikes shorter than the sampling interval, the sampler still works where
clear_refs is not writable. chDB runs inside this process, so its memory is included;
SeaweedFS is a child process and is reported apart (`child_rss`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIB = 1024 * 1024
# Resetting VmHWM also resets what getrusage reports as ru_maxrss, so the process peak is
# kept here across stages.
_seen_peak = 0


def _status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes (empty when it is gone)."""
    out = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def rss() -> int:
    return _status().get("VmRSS", 0)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_rss() -> dict[str, int]:
    """Resident memory of this process's direct children (the SeaweedFS server), by name."""
    me = str(os.getpid())
    out: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if text[text.rindex(")") + 2 :].split()[1] == me:
            out[name] = out.get(name, 0) + _status(stat.parent.name).get("VmRSS", 0)
    return out


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    rows: int | None = None
    peak_rss: int = 0
    rss_before: int = 0
    rss_after: int = 0
    # user + system CPU seconds of this process (chDB runs in it; SeaweedFS, a child, not)
    cpu_seconds: float = 0.0
    detail: dict = field(default_factory=dict)
    available: bool = True
    note: str = ""

    @property
    def rows_per_second(self) -> float | None:
        if not self.rows or not self.seconds:
            return None
        return self.rows / self.seconds

    def public(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["cpu_seconds"] = round(self.cpu_seconds, 3)
        out["rows_per_second"] = (
            None if self.rows_per_second is None else round(self.rows_per_second)
        )
        out["peak_rss_mib"] = round(self.peak_rss / MIB, 1)
        return out


class Meter:
    """Times stages and records each one's peak resident memory.

    with Meter() as meter:
        with meter.stage("ingest") as s:
            ...
            s.rows = n
    meter.stages  # in order
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.stages: list[Stage] = []
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> Meter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = rss()
            with self._lock:
                self._peak = max(self._peak, now)

    @contextlib.contextmanager
    def stage(self, name: str, rows: int | None = None) -> Iterator[Stage]:
        stage = Stage(name, rows=rows)
        hwm = _reset_hwm()
        stage.rss_before = rss()
        with self._lock:
            self._peak = stage.rss_before
        started, cpu = time.perf_counter(), process_cpu()
        try:
            yield stage
        finally:
            stage.seconds = time.perf_counter() - started
            stage.cpu_seconds = process_cpu() - cpu
            status = _status()
            stage.rss_after = status.get("VmRSS", 0)
            with self._lock:
                sampled = max(self._peak, stage.rss_after)
            stage.peak_rss = max(sampled, status.get("VmHWM", 0) if hwm else 0)
            _note_peak(stage.peak_rss)
            self.stages.append(stage)

    def skipped(self, name: str, note: str) -> Stage:
        stage = Stage(name, available=False, note=note)
        self.stages.append(stage)
        return stage


def process_cpu() -> float:
    """User + system CPU seconds of this process so far, all its threads (chDB's included):
    on a shared machine, what a stage costs whatever the other processes take."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _note_peak(value: int) -> None:
    global _seen_peak
    _seen_peak = max(_seen_peak, value)


def process_peak() -> int:
    """Peak resident memory of this whole process so far, in bytes: ru_maxrss, or the
    highest stage peak when a stage reset the kernel's counter after it."""
    return max(_seen_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict:
    """Cores, memory, CPU model, OS, Python and the git commit the bench ran on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    root = Path(__file__).resolve().parent.parent
    commit, dirty = "", None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem / 1024**3, 1),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
