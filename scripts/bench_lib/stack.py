"""What a benchmark run needs running: Elasticsearch (the project's ``scripts/es``, or a
given URL) and the sidecar (``python -m sidecar``), plus reading the sidecar's memory."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import client

ROOT = Path(__file__).resolve().parents[2]
ES_SCRIPT = ROOT / "scripts" / "es"


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Elasticsearch:
    """A node on ``port`` started with ``scripts/es`` (stopped again by :meth:`stop` only if it
    was started here), or an existing node at ``url``."""

    def __init__(self, url: str | None = None, *, port: int = 9230, heap: str = "1g") -> None:
        self.url = url.rstrip("/") if url else f"http://127.0.0.1:{port}"
        self.port = port
        self.heap = heap
        self.given = url is not None
        self.started_here = False

    def _run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ES_PORT": str(self.port), "ES_HEAP": self.heap}
        return subprocess.run([str(ES_SCRIPT), command], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def start(self) -> str:
        if self.given:
            if not client.reachable(self.url):
                raise RuntimeError(f"Elasticsearch at {self.url} does not answer")
            return self.url
        running = self._run("status").returncode == 0
        if not running:
            log(f"starting Elasticsearch on port {self.port} (heap {self.heap}) with scripts/es")
            fetched = self._run("fetch")
            if fetched.returncode != 0:
                raise RuntimeError(f"scripts/es fetch failed:\n{fetched.stderr[-2000:]}")
        started = self._run("start")
        if started.returncode != 0:
            raise RuntimeError(f"scripts/es start failed:\n{started.stderr[-2000:]}")
        lines = [line.strip() for line in started.stdout.splitlines() if line.strip()]
        if lines and lines[-1].startswith("http"):
            self.url = lines[-1]
        self.started_here = not running
        return self.url

    def stop(self) -> None:
        if self.started_here:
            log(f"stopping the Elasticsearch started on port {self.port}")
            self._run("stop", timeout=120)
            self.started_here = False


class Sidecar:
    """The sidecar as users run it: ``python -m sidecar --es-url URL --port P``."""

    def __init__(self, es_url: str, port: int, log_path: Path, *, log_level: str = "INFO",
                 extra_env: dict[str, str] | None = None, uvloop: bool = False) -> None:
        self.es_url = es_url
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.uvloop = uvloop
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 120) -> Sidecar:
        env = {
            **os.environ,
            "SIDECAR_SECRETS_KEY": os.environ.get("SIDECAR_SECRETS_KEY") or secrets.token_urlsafe(32),
            "HF_HUB_OFFLINE": "1",
            "SIDECAR_LOG_LEVEL": self.log_level,
            **self.extra_env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        # With uvloop (an experiment: the event loop policy is installed before the sidecar
        # starts, so aiohttp's run_app runs on it).
        launcher = (["-c", "import runpy, uvloop; uvloop.install(); "
                           "runpy.run_module('sidecar', run_name='__main__', alter_sys=True)"]
                    if self.uvloop else ["-m", "sidecar"])
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, "--es-url", self.es_url, "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited with {self.proc.returncode}; see {self.log_path}")
            if client.reachable(self.url + "/_sidecar/health"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"the sidecar did not answer within {timeout}s; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory_mb(self) -> dict[str, float]:
        """Resident set size now and its peak since start (or since :meth:`reset_peak`), MB."""
        out: dict[str, float] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
        return out

    def reset_peak(self) -> bool:
        """Reset the kernel's peak-RSS mark (``clear_refs`` 5); False where not allowed."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


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
    import os as _os

    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = _os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def es_cpu_seconds(conn) -> float | None:
    """CPU time of the Elasticsearch node(s) (``_nodes/stats/process``)."""
    try:
        answer = conn.json("GET", "/_nodes/stats/process?filter_path=nodes.*.process.cpu.total_in_millis")
        return sum(n["process"]["cpu"]["total_in_millis"] for n in answer["nodes"].values()) / 1000.0
    except Exception:
        return None
