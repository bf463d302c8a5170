"""``scripts/bench`` end to end on its smallest figure (pass-through, one-second rounds):
it starts the sidecar in front of the test Elasticsearch, measures, and writes its JSON.
Only the shape of the output is checked: timed targets live in the benchmark itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.es, pytest.mark.smoke]

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_bench_passthrough_writes_results(es_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench"), "passthrough", "--quick", "--duration", "1",
         "--es-url", es_url, "--out", str(tmp_path), "--no-png", "--no-profile"],
        cwd=ROOT, capture_output=True, text=True, timeout=110, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [p for p in tmp_path.glob("*.json")]
    assert len(results) == 1, list(tmp_path.iterdir())
    doc = json.loads(results[0].read_text())

    assert set(doc) >= {"meta", "figures", "targets", "errors"}
    assert doc["errors"] == {}
    assert doc["meta"]["quick"] is True
    assert {"cores", "cpu", "memory_gb"} <= set(doc["meta"]["machine"])
    figure = doc["figures"]["passthrough"]
    assert set(figure["scenarios"]) == {"search", "index"}
    for scenario in figure["scenarios"].values():
        assert {"direct", "sidecar", "throughput_ratio", "added_p50_ms", "added_sequential_p50_ms"} <= set(scenario)
        assert scenario["bare_proxy"]["req_per_s"] > 0  # the floor, measured in the same rounds
        assert scenario["bare_proxy_gc"]["req_per_s"] > 0  # and with the sidecar's GC settings
        assert scenario["sidecar_cpu_vs_bare_proxy"] > 0 and scenario["sidecar_cpu_vs_bare_proxy_gc"] > 0
        for side in ("direct", "sidecar"):
            assert scenario[side]["req_per_s"] > 0
            assert scenario[side]["errors"] == 0
            assert {"p50_ms", "p99_ms", "sequential_p50_ms", "sidecar_cpu_us_per_req"} <= set(scenario[side])
    names = {t["name"] for t in doc["targets"]}
    assert "search throughput via sidecar / direct" in names
    assert "index CPU per request vs the bare proxy" in names
    assert all({"value", "target", "op", "pass"} <= set(t) for t in doc["targets"])
    # The results table is printed for the README.
    assert "| figure | measure | sidecar | baseline | result | target |" in proc.stdout
