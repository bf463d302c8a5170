"""The official Python client of each supported major, unchanged, through the sidecar.

Each client version is installed once into a folder of its own (pip ``--target``, kept in the
user cache) and runs ``tests/clients/flow.py`` in a subprocess, so 8.x and 9.x are tested side
by side whatever the project's own virtualenv holds. Elasticsearch 9 accepts both majors' clients
(``compatible-with=8`` and ``=9``); 8.19 refuses the 9.x client, and the sidecar then answers with
the node's own refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.es

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = {8: "8.19.3", 9: "9.5.1"}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es-inference-sidecar" / "clients"


def client_site(version: str) -> Path:
    """A folder holding ``elasticsearch==version`` and its dependencies, installed once."""
    target = CACHE / f"elasticsearch-{version}"
    marker = target / ".complete"
    if not marker.exists():
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
        subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        "--target", str(tmp), f"elasticsearch=={version}"], check=True, timeout=600)
        (tmp / ".complete").write_text(version)
        try:
            tmp.rename(target)
        except OSError:  # another run installed it meanwhile
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return target


def run_flow(version: str, url: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(client_site(version))}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "clients" / "flow.py"), url,
                          f"client-{version.replace('.', '-')}-{uuid.uuid4().hex[:6]}"],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def node_major(es_url) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{es_url}/_nodes/_local?filter_path=nodes.*.version", timeout=30) as r:
        version = next(iter(json.loads(r.read())["nodes"].values()))["version"]
    return int(version.split(".")[0])


@pytest.mark.parametrize("client_major", sorted(CLIENTS))
def test_official_client_works_unchanged(client_major, node_major, sidecar_url):
    version = CLIENTS[client_major]
    seen = run_flow(version, sidecar_url)
    assert seen["client"] == version
    if client_major not in (node_major, node_major - 1):
        # Elasticsearch 8 refuses the 9.x client's compatible-with=9; so does the sidecar.
        assert seen["status"] == 400, seen
        assert seen["error"]["error"]["type"] == "media_type_header_exception", seen
        assert f"must be either version {node_major} or {node_major - 1}, but found {client_major}" in \
            seen["error"]["error"]["caused_by"]["reason"]
        return
    assert "status" not in seen, seen
    assert seen["server"].split(".")[0] == str(node_major)
    assert seen["dims"] == seen["embedding"] == 384
    assert seen["mapping_type"] == "semantic_text"
    assert seen["indexed"] == 3
    assert seen["top"] == "0" and seen["copy_top"] == "0"
    assert seen["match_top"] == "2"
    assert seen["source_keys"] == ["tag", "text"]
    assert seen["simulated_dims"] == 384
    assert seen["reindexed"] == 3
