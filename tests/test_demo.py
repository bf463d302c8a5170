"""The demo that `scripts/run` shows works: endpoint, semantic_text index and semantic search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.es, pytest.mark.smoke]
ROOT = Path(__file__).resolve().parent.parent


def test_demo_script(sidecar_url):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo"), sidecar_url], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "demo endpoint [demo-embeddings] (384 dims) is ready" in out.stdout
    assert "-> 'Photosynthesis turns sunlight" in out.stdout
    assert "ingest pipeline [demo-e5-rerank-ready] installed from pipelines/e5-rerank-ready.json" in out.stdout
    # Running it again reuses what exists.
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo"), sidecar_url], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
