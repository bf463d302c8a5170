"""Drive ``scripts/es`` from tests: start a local Elasticsearch node, find out whether it was
already running, stop it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ES_SCRIPT = ROOT / "scripts" / "es"


def run_es(
    command: str, port: int | str, *, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/es COMMAND`` for ``port``; output is captured, the exit code not checked."""
    full_env = {**os.environ, **(env or {}), "ES_PORT": str(port)}
    return subprocess.run(
        [str(ES_SCRIPT), command],
        env=full_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


@dataclass
class EsNode:
    url: str
    port: int
    started_here: bool

    def stop(self) -> None:
        if self.started_here:
            run_es("stop", self.port)


def ensure_node(port: int) -> EsNode:
    """Start a node on ``port`` with scripts/es, or reuse the one scripts/es already runs there."""
    was_running = run_es("status", port).returncode == 0
    result = run_es("start", port)
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/es start failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    url = last_line(result.stdout)
    if not url.startswith("http://"):
        raise RuntimeError(f"scripts/es start printed no URL:\n{result.stdout}\n{result.stderr}")
    return EsNode(url=url, port=port, started_here=not was_running)
