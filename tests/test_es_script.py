"""scripts/es against a real Elasticsearch, on ports of its own (never the session's node)."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from es_node import last_line, run_es

pytestmark = pytest.mark.es

PORT = int(os.environ.get("ES_SCRIPT_TEST_PORT", "9250"))


def cluster_health(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_cluster/health", timeout=30) as resp:
        return json.loads(resp.read())


def unused_port() -> int:
    """A port with no listener and no node of scripts/es, from a range kept for these tests."""
    for port in range(9270, 9300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0 and run_es("status", port).returncode == 3:
                return port
    raise RuntimeError("no unused port in 9270-9299")


def parse_status(stdout: str) -> dict[str, str]:
    m = re.match(r"running (?P<url>\S+) pid (?P<pid>\d+) dir (?P<dir>\S+)", stdout.strip())
    assert m, f"unexpected status output: {stdout!r}"
    return m.groupdict()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fetch_twice_is_a_noop() -> None:
    first = run_es("fetch", PORT)
    assert first.returncode == 0, first.stderr
    second = run_es("fetch", PORT)
    assert second.returncode == 0, second.stderr
    assert "already fetched" in second.stderr
    assert "downloading" not in second.stderr


def test_start_status_restart_stop() -> None:
    url = f"http://127.0.0.1:{PORT}"
    run_es("stop", PORT)  # a node left over from an interrupted run
    try:
        started = run_es("start", PORT)
        assert started.returncode == 0, started.stderr
        assert last_line(started.stdout) == url
        assert cluster_health(url)["status"] in ("yellow", "green")

        status = run_es("status", PORT)
        assert status.returncode == 0, status.stdout + status.stderr
        info = parse_status(status.stdout)
        assert info["url"] == url
        pid = int(info["pid"])
        assert pid_alive(pid)
        assert Path(info["dir"]).is_dir()

        again = run_es("start", PORT)
        assert again.returncode == 0, again.stderr
        assert last_line(again.stdout) == url
        assert "already running" in again.stderr
        assert parse_status(run_es("status", PORT).stdout)["pid"] == str(pid)

        stopped = run_es("stop", PORT)
        assert stopped.returncode == 0, stopped.stderr
        assert not pid_alive(pid)
        assert not Path(info["dir"]).exists()
        after = run_es("status", PORT)
        assert after.returncode == 3
        assert after.stdout.startswith("stopped")
        with pytest.raises(urllib.error.URLError):
            cluster_health(url)
    finally:
        run_es("stop", PORT)


def test_stop_and_status_when_nothing_runs() -> None:
    port = unused_port()
    stopped = run_es("stop", port)
    assert stopped.returncode == 0
    assert "no Elasticsearch" in stopped.stderr
    status = run_es("status", port)
    assert status.returncode == 3
    assert status.stdout.strip() == f"stopped http://127.0.0.1:{port}"


def test_start_on_a_port_taken_by_another_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        if port > 65435:
            pytest.skip("the kernel picked a port too high for scripts/es")
        result = run_es("start", port, timeout=120)
    assert result.returncode != 0
    assert f"port {port} is taken" in result.stderr
    assert "http://" not in result.stdout
    assert run_es("status", port).returncode == 3


def test_failed_start_reports_the_log_and_cleans_up() -> None:
    port = unused_port()
    result = run_es("start", port, env={"ES_HEAP": "not-a-size"}, timeout=300)
    assert result.returncode != 0
    assert "failed to start" in result.stderr
    assert "--- last lines of" in result.stderr  # the log tail
    assert "http://" not in result.stdout
    assert run_es("status", port).returncode == 3
    assert not list(Path("/tmp").glob(f"es-sidecar-node-{port}.*"))


def test_bad_java_home_is_a_clear_error() -> None:
    result = run_es("start", unused_port(), env={"ES_JAVA_HOME": "/nonexistent/jdk"}, timeout=120)
    assert result.returncode != 0
    assert "ES_JAVA_HOME=/nonexistent/jdk is not a JDK" in result.stderr


def test_fetch_without_maven_is_a_clear_error(tmp_path: Path) -> None:
    result = run_es("fetch", PORT, env={"ES_CACHE_DIR": str(tmp_path), "MVN": "/nonexistent/mvn"})
    assert result.returncode != 0
    assert "Maven (/nonexistent/mvn) not found" in result.stderr
