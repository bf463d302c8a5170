"""Fixtures that run the real sidecar process (``python -m sidecar``) in front of the test
Elasticsearch. Built-in model ids are pointed at the packaged MiniLM model and at tiny
random-initialised models built here, through ``SIDECAR_MODEL_ALIASES`` as operators would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import http_util as http
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SidecarProcess:
    """A sidecar subprocess with its log captured to a file."""

    def __init__(self, es_url: str, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.es_url = es_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> SidecarProcess:
        env = {**os.environ, **self.env, "SIDECAR_ES_URL": self.es_url, "SIDECAR_PORT": str(self.port),
               "SIDECAR_HOST": "127.0.0.1"}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = http.request("GET", self.url + "/_sidecar/health", timeout=2)
                if status in (200, 503):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"sidecar did not come up in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tiny_models import make_tiny_rerank_model, make_tiny_sparse_model

    base = tmp_path_factory.mktemp("models")
    make_tiny_sparse_model(base / "tiny-sparse")
    make_tiny_rerank_model(base / "tiny-rerank")
    return base


@pytest.fixture(scope="session")
def sidecar_env(tiny_model_dir) -> dict[str, str]:
    from sidecar.endpoints.secrets import generate_key

    aliases = {
        ".elser_model_2": str(tiny_model_dir / "tiny-sparse"),
        ".elser_model_2_linux-x86_64": str(tiny_model_dir / "tiny-sparse"),
        ".rerank-v1": str(tiny_model_dir / "tiny-rerank"),
        ".multilingual-e5-small": "sentence-transformers/all-MiniLM-L6-v2",
        ".multilingual-e5-small_linux-x86_64": "sentence-transformers/all-MiniLM-L6-v2",
    }
    return {
        "SIDECAR_SECRETS_KEY": generate_key(),
        "SIDECAR_MODEL_ALIASES": ",".join(f"{k}={v}" for k, v in aliases.items()),
        "HF_HUB_OFFLINE": "1",
        "SIDECAR_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def sidecar(es_url, sidecar_env, tmp_path_factory) -> Iterator[SidecarProcess]:
    proc = SidecarProcess(es_url, sidecar_env, tmp_path_factory.mktemp("sidecar") / "sidecar.log").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sidecar_url(sidecar) -> str:
    return sidecar.url
