"""``scripts/soak --quick``: the soak's reliability checks at a small scale (large bulks with
bounded memory, Elasticsearch going away under traffic, client disconnects), so that CI proves
them; and the script's failure path (a broken property exits 1, naming it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.es, pytest.mark.smoke]

ROOT = Path(__file__).resolve().parent.parent
SOAK = ROOT / "scripts" / "soak"


def _soak(args: list[str], tmp_path: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / "soak.json"
    env = {**os.environ, "SOAK_NO_REEXEC": "1"}
    done = subprocess.run([sys.executable, str(SOAK), *args, "--json", str(report), "--workdir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(done.stdout)
    print(done.stderr[-3000:], file=sys.stderr)
    return done, (json.loads(report.read_text()) if report.exists() else {})


def test_quick_soak_holds(es_url, tmp_path):
    done, report = _soak(["--quick", "--es-url", es_url], tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "properties held" in done.stdout
    checks = report["checks"]
    phases = {c["phase"] for c in checks}
    assert phases == {"bulk-plain", "bulk-semantic", "outage-relay", "disconnect"}
    assert all(c["ok"] for c in checks)
    names = {(c["phase"], c["name"]) for c in checks}
    for expected in [("bulk-plain", "every document accounted for"), ("bulk-plain", "peak RSS bounded"),
                     ("bulk-semantic", "no document indexed without its embeddings"),
                     ("outage-relay", "ES-shaped 503s while Elasticsearch is down"),
                     ("outage-relay", "every request answered within the bound"),
                     ("outage-relay", "recovered without a sidecar restart"),
                     ("outage-relay", "sockets do not pile up"),
                     ("disconnect", "perform: inference stops after the client leaves"),
                     ("disconnect", "bulk: inference stops after the client leaves")]:
        assert expected in names, expected
    measured = report["measurements"]
    assert measured["bulk-plain"]["documents_sent"] == measured["bulk-plain"]["indexed"]
    assert measured["bulk-semantic"]["documents_sent"] == measured["bulk-semantic"]["indexed"]
    assert measured["outage-relay"]["es_shaped_503_while_down"] > 0
    assert measured["disconnect"]["perform_inferred_total"] < measured["disconnect"]["perform_items_requested"]


def test_a_broken_property_fails_the_soak(es_url, tmp_path):
    # A bound no sidecar can meet: the run must fail, say which property broke and what it measured.
    done, report = _soak(["--quick", "--es-url", es_url, "--only", "bulk-plain", "--bulk-mb", "2",
                          "--max-rss-mb", "1"], tmp_path, timeout=120)
    assert done.returncode == 1, done.stdout[-4000:]
    assert "FAILED" in done.stdout and "[bulk-plain] peak RSS bounded: VmHWM" in done.stdout
    assert not report["ok"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["peak RSS bounded"]
