"""Sampling profile of the running sidecar with ``py-spy record`` (collapsed stacks, one
root frame per thread), summarised as: how busy each kind of thread was, where the time
went by category, and the hottest functions. The raw file opens in speedscope or
flamegraph.pl."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .stats import rnd

RATE = 100

# (category, pattern on "function (file:line)" frames), tested from the leaf towards the root.
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("tokenisation", re.compile(r"tokeniz|tokenization_|/tokenizers/")),
    ("model forward (torch)", re.compile(r"torch/|transformers/models/|sentence_transformers/models/")),
    ("chunking", re.compile(r"sidecar/chunking/")),
    ("logging", re.compile(r"/logging/|sidecar/logs\.py")),
    ("JSON encode/decode", re.compile(r"\(json/|orjson|render\.py|dumps|loads")),
    ("semantic_text fill / bulk", re.compile(r"sidecar/semantic/")),
    ("proxy", re.compile(r"sidecar/proxy\.py")),
    ("HTTP (aiohttp)", re.compile(r"aiohttp/|multidict|yarl/")),
    ("sidecar, other", re.compile(r"sidecar/")),
    ("asyncio event loop", re.compile(r"asyncio/|selectors\.py|uvloop")),
]


def executable() -> str | None:
    """py-spy on PATH or beside this Python (a virtualenv's bin/)."""
    import sys

    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def available() -> bool:
    return executable() is not None


class Profile:
    def __init__(self, pid: int, path: Path, rate: int = RATE) -> None:
        self.pid = pid
        self.path = path
        self.rate = rate
        self.proc: subprocess.Popen | None = None
        self.seconds = 0.0
        self._t0 = 0.0
        self.error: str | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [executable() or "py-spy", "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
             "--threads", "--nonblocking", "-o", str(self.path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._t0 = time.monotonic()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.seconds += time.monotonic() - self._t0
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        if not self.path.exists():
            self.error = (out or b"").decode(errors="replace")[-500:]
        self.proc = None

    def summary(self, top: int = 12) -> dict[str, Any]:
        if self.error or not self.path.exists():
            return {"error": self.error or "no profile written"}
        return summarise(self.path.read_text(encoding="utf-8", errors="replace"), self.seconds, self.rate, top)


def _thread_kind(name: str) -> str:
    if name.startswith("MainThread"):
        return "event loop (MainThread)"
    if name.startswith("infer-"):
        return "model workers (infer-*)"
    return "other threads"


def _frame_name(frame: str) -> str:
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/sidecar/", "python3.11/"):
        if marker in path:
            path = ("sidecar/" if marker == "/sidecar/" else "") + path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarise(raw: str, seconds: float, rate: int, top: int = 12) -> dict[str, Any]:
    threads: Counter[str] = Counter()
    kinds_threads: dict[str, set[str]] = {}
    categories: dict[str, Counter[str]] = {}
    leaf: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        head = frames[0]
        name = head.split(": ", 1)[1] if ": " in head else head
        kind = _thread_kind(name)
        threads[kind] += count
        kinds_threads.setdefault(kind, set()).add(head.split(":", 1)[0])
        body = frames[1:]
        category = "other"
        for frame in reversed(body):
            hit = next((c for c, rx in CATEGORIES if rx.search(frame)), None)
            if hit:
                category = hit
                break
        categories.setdefault(kind, Counter())[category] += count
        if body:
            leaf.setdefault(kind, Counter())[_frame_name(body[-1])] += count
        for f in {_frame_name(f) for f in body if "sidecar/" in f}:
            inclusive.setdefault(kind, Counter())[f] += count
    possible = max(1e-9, seconds * rate)
    out: dict[str, Any] = {"seconds": rnd(seconds, 1), "rate_hz": rate, "threads": {}}
    for kind, samples in threads.most_common():
        n_threads = len(kinds_threads[kind])
        out["threads"][kind] = {
            "threads": n_threads,
            "samples": samples,
            # Share of the profiled wall time these threads were running Python or native
            # code (py-spy samples active threads only), per thread.
            "busy_per_thread": rnd(samples / possible / n_threads, 3),
            "by_category": {c: rnd(v / samples, 3) for c, v in categories[kind].most_common()},
            "top_self": [[f, rnd(v / samples, 3)] for f, v in leaf.get(kind, Counter()).most_common(top)],
            "top_sidecar_inclusive": [[f, rnd(v / samples, 3)]
                                      for f, v in inclusive.get(kind, Counter()).most_common(top)],
        }
    return out
