"""``--workers N``: N sidecar processes on one port (SO_REUSEPORT), each answering
pass-through and the sidecar's own APIs; SIGTERM to the supervisor stops them all."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import pytest
from sidecar_fixtures import SidecarProcess

pytestmark = pytest.mark.es

ES_URL = os.environ.get("ES_URL", "http://127.0.0.1:9200")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _get(url: str) -> tuple[int, bytes]:
    # A new connection per request: the kernel picks the worker per connection.
    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return resp.status, resp.read()


def test_two_workers_share_one_port(tmp_path):
    from sidecar.endpoints.secrets import generate_key

    env = {"SIDECAR_WORKERS": "2", "SIDECAR_SECRETS_KEY": generate_key(), "HF_HUB_OFFLINE": "1"}
    sidecar = SidecarProcess(ES_URL, env, tmp_path / "sidecar.log").start()
    try:
        workers = _children(sidecar.pid)
        assert len(workers) == 2
        # Pass-through and the sidecar's own API answer on every connection.
        status, body = _get(sidecar.url + "/")
        assert status == 200 and b"cluster_name" in body
        assert _get(sidecar.url + "/_inference/_all")[0] == 200
        # Each worker counts the scrapes it answered: with one process the counts would run
        # 1, 2, 3, ...; two processes answering show some count twice (the second worker may
        # still be starting when the first answers, hence the deadline).
        counts: list[int] = []
        deadline = time.monotonic() + 60
        while len(set(counts)) == len(counts) and time.monotonic() < deadline:
            _, text = _get(sidecar.url + "/_sidecar/metrics")
            found = re.search(rb'sidecar_http_requests_total\{method="GET",route="/_sidecar/metrics",status="200"\} '
                              rb"(\d+)", text)
            counts.append(int(found.group(1)) if found else 0)
            time.sleep(0.05)
        assert len(set(counts)) < len(counts), counts
    finally:
        sidecar.stop()
    assert sidecar.proc.returncode == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_workers_below_one_are_refused(tmp_path):
    from sidecar.__main__ import main

    with pytest.raises(SystemExit, match="--workers must be at least 1"):
        main(["--workers", "0"])
