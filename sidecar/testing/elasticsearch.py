"""A local Elasticsearch node driven by the project's ``scripts/es`` (a source checkout), or an
existing node given by its URL."""

from __future__ import annotations

import os
import subprocess
import sys

from .process import PACKAGE_PARENT, SetupError, answers

ES_SCRIPT = PACKAGE_PARENT / "scripts" / "es"


class Elasticsearch:
    """The node on ``port`` that ``scripts/es`` runs (fetched and started by :meth:`start` when
    it is not running; stopped again by :meth:`stop` only when it was started here), or, when
    ``url`` is given, an existing node that is never started or stopped."""

    def __init__(self, url: str | None = None, port: int = 9230, heap: str = "1g", *, name: str = "run") -> None:
        self.given = url is not None
        self.url = (url or f"http://127.0.0.1:{port}").rstrip("/")
        self.port = port
        self.heap = heap
        self.name = name
        self.started_here = False

    @property
    def can_restart(self) -> bool:
        """Whether :meth:`stop_node` and :meth:`start_node` may be used (not on a given node)."""
        return not self.given

    def _run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        if not ES_SCRIPT.exists():
            raise SetupError(f"{ES_SCRIPT} is missing: a local Elasticsearch needs a source checkout")
        env = {**os.environ, "ES_PORT": str(self.port), "ES_HEAP": self.heap}
        return subprocess.run([str(ES_SCRIPT), command], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def _checked(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = self._run(command, timeout)
        if done.returncode != 0:
            raise SetupError(f"scripts/es {command} failed:\n{done.stderr[-2000:]}")
        return done

    def start(self) -> str:
        """Make sure the node runs and return its URL."""
        if self.given:
            if not answers(self.url, timeout=5):
                raise SetupError(f"Elasticsearch at {self.url} does not answer")
            return self.url
        running = self._run("status").returncode == 0
        if not running:
            print(f"{self.name}: starting Elasticsearch on port {self.port} (heap {self.heap}) with scripts/es",
                  file=sys.stderr, flush=True)
            self._checked("fetch")
        started = self._checked("start")
        lines = [line.strip() for line in started.stdout.splitlines() if line.strip()]
        if lines and lines[-1].startswith("http"):
            self.url = lines[-1]
        self.started_here = self.started_here or not running
        return self.url

    def stop_node(self) -> None:
        """Stop the node now (an outage); only where :attr:`can_restart`."""
        assert self.can_restart, "a given Elasticsearch is never stopped"
        self._checked("stop", timeout=180)

    def start_node(self) -> None:
        """Start the node again after :meth:`stop_node`."""
        self._checked("start")

    def stop(self) -> None:
        """Stop the node if it was started here."""
        if self.started_here:
            print(f"{self.name}: stopping the Elasticsearch started on port {self.port}", file=sys.stderr, flush=True)
            self._run("stop", timeout=180)
            self.started_here = False

