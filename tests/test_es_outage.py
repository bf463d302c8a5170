"""While Elasticsearch is down the sidecar answers 503 in Elasticsearch's error shape, and it
recovers by itself when Elasticsearch comes back."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import http_util as http
import pytest
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("ES_OUTAGE_PORT", "9262"))


def _es(command: str) -> str:
    env = {**os.environ, "ES_PORT": str(PORT)}
    out = subprocess.run([str(ROOT / "scripts" / "es"), command], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


@pytest.fixture
def own_es():
    url = _es("start")
    yield url
    subprocess.run([str(ROOT / "scripts" / "es"), "stop"], env={**os.environ, "ES_PORT": str(PORT)},
                   capture_output=True, timeout=120)


def test_es_down_gives_503_then_recovers(own_es, sidecar_env, tmp_path):
    proc = SidecarProcess(own_es, sidecar_env, tmp_path / "sidecar.log").start()
    try:
        assert http.json_request("PUT", f"{proc.url}/outage", {"settings": {"number_of_replicas": 0}})[0] == 200
        _es("stop")
        for method, path in (("GET", "/outage/_search"), ("GET", "/_inference"), ("GET", "/")):
            status, body = http.json_request(method, proc.url + path)
            assert status == 503, (path, body)
            assert body["status"] == 503
            assert body["error"]["type"] == "status_exception"
            assert "Elasticsearch is unavailable" in body["error"]["reason"]
            assert body["error"]["root_cause"][0]["reason"] == body["error"]["reason"]
        status, health = http.json_request("GET", proc.url + "/_sidecar/health")
        assert status == 503 and health["elasticsearch"]["reachable"] is False

        _es("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _ = http.json_request("GET", proc.url + "/_cluster/health")
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200
        status, body = http.json_request("PUT", f"{proc.url}/back", {"settings": {"number_of_replicas": 0}})
        assert status == 200, body
        assert http.json_request("GET", proc.url + "/_inference")[0] == 200
        assert proc.proc.poll() is None
    finally:
        proc.stop()
