"""``scripts/bench hybrid --quick`` end to end: SciFact's quick subset indexed through the
sidecar and searched with BM25, semantic, ``rrf`` and ``linear`` retrievers; only the shape of
the output is checked (the quality targets live in the benchmark itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.es, pytest.mark.smoke]

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(240)
def test_bench_hybrid_quick_writes_results(es_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "hybrid", "--quick", "--es-url", es_url,
         "--out", str(tmp_path), "--no-png", "--no-profile"],
        cwd=ROOT, capture_output=True, text=True, timeout=230, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert doc["errors"] == {}
    figure = doc["figures"]["hybrid"]
    assert {"bm25", "semantic", "rrf", "linear_minmax"} <= set(figure["methods"])
    for method in figure["methods"].values():
        assert 0.0 < method["ndcg@10"] <= 1.0
    assert figure["comparable_with_published"] is False
    # Either the reranked run is there or the figure says why not.
    assert "semantic_rerank" in figure["methods"] or figure["rerank_unavailable"]
    names = {t["name"] for t in doc["targets"]}
    assert "rrf nDCG@10 minus the better input's" in names
