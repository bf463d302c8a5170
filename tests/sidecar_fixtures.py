"""Fixtures that run the real sidecar process (``python -m sidecar``) in front of the test
Elasticsearch. Built-in model ids are pointed at the packaged MiniLM model and at tiny
random-initialised models built here, through ``SIDECAR_MODEL_ALIASES`` as operators would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.testing.process import SidecarProcess, free_port

__all__ = ["ROOT", "SidecarProcess", "free_port"]

ROOT = Path(__file__).resolve().parent.parent


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
