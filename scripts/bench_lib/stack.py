"""What a benchmark run needs running: Elasticsearch (the project's ``scripts/es``, or a
given URL) and the sidecar (``python -m sidecar``), plus reading the sidecar's memory."""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

from sidecar.testing.elasticsearch import Elasticsearch as LocalElasticsearch
from sidecar.testing.process import SidecarProcess

ROOT = Path(__file__).resolve().parents[2]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Elasticsearch(LocalElasticsearch):
    """A node on ``port`` started with ``scripts/es`` (stopped again by :meth:`stop` only if it
    was started here), or an existing node at ``url``."""

    def __init__(self, url: str | None = None, *, port: int = 9230, heap: str = "1g") -> None:
        super().__init__(url, port, heap, name="bench")


class Sidecar(SidecarProcess):
    """The sidecar as users run it: ``python -m sidecar --es-url URL --port P``."""

    def __init__(self, es_url: str, port: int, log_path: Path, *, log_level: str = "INFO",
                 extra_env: dict[str, str] | None = None) -> None:
        env = {
            "SIDECAR_SECRETS_KEY": os.environ.get("SIDECAR_SECRETS_KEY") or secrets.token_urlsafe(32),
            "HF_HUB_OFFLINE": "1",
            "SIDECAR_LOG_LEVEL": log_level,
            **(extra_env or {}),
        }
        super().__init__(es_url, env, log_path, port, stop_wait_s=30)


class RssSampler:
    """Samples a process's RSS in a background thread (peak and a time series)."""

    def __init__(self, sidecar: Sidecar, interval_s: float = 0.25) -> None:
        import threading

        self.sidecar = sidecar
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self._t0, self.sidecar.memory_mb()["rss_mb"]))
            except (OSError, KeyError):
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float | None:
        return max((mb for _, mb in self.samples), default=None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (its threads included)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def es_cpu_seconds(conn) -> float | None:
    """CPU time of the Elasticsearch node(s) (``_nodes/stats/process``)."""
    try:
        answer = conn.json("GET", "/_nodes/stats/process?filter_path=nodes.*.process.cpu.total_in_millis")
        return sum(n["process"]["cpu"]["total_in_millis"] for n in answer["nodes"].values()) / 1000.0
    except Exception:
        return None
