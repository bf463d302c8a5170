"""scripts/es against a real Elasticsearch, on ports of its own (never the session's node).

The tests run for the version in ``$ES_VERSION`` (scripts/es's default when unset): 8.x from the
integ-test-zip, 9.x from the jars and the launcher in scripts/es9node. The ``jar_node`` tests start a
9.x node whatever ``$ES_VERSION`` is; they are skipped when no JDK 21+ is installed."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path

import http_util as http
import pytest
from es_node import ES_SCRIPT, last_line, run_es

pytestmark = pytest.mark.es

PORT = int(os.environ.get("ES_SCRIPT_TEST_PORT", "9250"))
# The 9.x version the jar_node tests start (the one scripts/es9node is tested with).
JAR_VERSION = "9.5.3"


def default_version() -> str:
    m = re.search(r'^ES_VERSION="\$\{ES_VERSION:-([^}]+)\}"', ES_SCRIPT.read_text(), re.M)
    assert m, "scripts/es has no default ES_VERSION"
    return m.group(1)


VERSION = os.environ.get("ES_VERSION") or default_version()


def node_version(url: str, auth: dict[str, str] | None = None) -> str:
    status, body = http.json_request("GET", f"{url}/_nodes/_local?filter_path=nodes.*.version", headers=auth)
    assert status == 200, body
    return next(iter(body["nodes"].values()))["version"]


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


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
        assert node_version(url) == VERSION

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
        # A node of another version on the port is never taken for the one asked for.
        version = os.environ.get("ES_VERSION", "8.19.21")
        other = "9.5.3" if version.startswith("8.") else "8.19.21"
        mismatch = run_es("start", PORT, env={"ES_VERSION": other})
        assert mismatch.returncode != 0
        assert f"Elasticsearch {version} already runs on port {PORT}, not {other}" in mismatch.stderr

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


# ---- 9.x from jars (scripts/es9node), whatever $ES_VERSION is ---------------------------------


def jar_env(**extra: str) -> dict[str, str]:
    return {"ES_VERSION": JAR_VERSION, "ES_SECURITY": "false", **extra}


def skip_without_jdk21(result) -> None:
    if result.returncode != 0 and ("no JDK 21+ found" in result.stderr or "needs Java 21" in result.stderr):
        pytest.skip(f"Elasticsearch {JAR_VERSION} needs a JDK 21+: {result.stderr.strip().splitlines()[-1]}")


@pytest.fixture(scope="module")
def jar_node_fetched() -> None:
    """The 9.x jars and launcher are fetched; skips when no JDK 21+ is installed."""
    fetched = run_es("fetch", PORT, env=jar_env())
    skip_without_jdk21(fetched)
    assert fetched.returncode == 0, fetched.stderr
    again = run_es("fetch", PORT, env=jar_env())
    assert again.returncode == 0, again.stderr
    assert "already fetched" in again.stderr
    assert "downloading" not in again.stderr


def start_jar_node(port: int, env: dict[str, str]) -> str:
    run_es("stop", port, env=env)
    started = run_es("start", port, env=env)
    skip_without_jdk21(started)
    assert started.returncode == 0, started.stderr
    url = last_line(started.stdout)
    assert url == f"http://127.0.0.1:{port}"
    return url


def test_jar_node(jar_node_fetched) -> None:
    port = unused_port()
    env = jar_env()
    try:
        url = start_jar_node(port, env)
        status, headers, raw = http.request("GET", url + "/")
        assert status == 200, raw
        assert json.loads(raw)["version"]["number"] == JAR_VERSION
        assert header(headers, "X-Elastic-Product") == "Elasticsearch"
        # What an 8.x client sends.
        compat = "application/vnd.elasticsearch+json; compatible-with=8"
        status, headers, raw = http.request("GET", url + "/_cluster/health", headers={"Accept": compat})
        assert status == 200, raw
        assert "compatible-with=8" in (header(headers, "Content-Type") or "")

        index = url + "/jar-node-sparse"
        status, body = http.json_request("PUT", index, {"mappings": {"properties": {"ml": {"type": "sparse_vector"}}}})
        assert status == 200, body
        status, body = http.json_request("PUT", index + "/_doc/1?refresh=true", {"ml": {"foo": 1.5, "bar": 0.5}})
        assert status == 201, body
        status, body = http.json_request(
            "POST", index + "/_search",
            {"query": {"sparse_vector": {"field": "ml", "query_vector": {"foo": 2.0}}}})
        assert status == 200, body
        assert [h["_id"] for h in body["hits"]["hits"]] == ["1"]
        assert body["hits"]["hits"][0]["_score"] == pytest.approx(3.0)
        # Deprecations reach the client as Warning headers.
        status, headers, raw = http.request("PUT", url + "/.jar-node-dot")
        assert status == 200, raw
        assert "starts with a dot" in (header(headers, "Warning") or "")

        status_out = run_es("status", port, env=env)
        assert status_out.returncode == 0
        pid = int(parse_status(status_out.stdout)["pid"])
    finally:
        stopped = run_es("stop", port, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(pid)
    assert run_es("status", port, env=env).returncode == 3


def test_jar_node_with_security(jar_node_fetched) -> None:
    port = unused_port()
    password = "jar-node-password-6021"
    env = jar_env(ES_SECURITY="true", ES_PASSWORD=password)
    elastic = {"Authorization": "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"elastic:not-the-password").decode()}
    try:
        url = start_jar_node(port, env)
        assert http.request("GET", url + "/_cluster/health")[0] == 401
        assert http.request("GET", url + "/_cluster/health", headers=wrong)[0] == 401
        status, body = http.json_request("GET", url + "/_security/_authenticate", headers=elastic)
        assert status == 200, body
        assert body["username"] == "elastic" and "superuser" in body["roles"]
        assert node_version(url, elastic) == JAR_VERSION
        status, body = http.json_request(
            "POST", url + "/_security/user/_has_privileges",
            {"cluster": ["monitor"], "index": [{"names": ["x"], "privileges": ["read"]}]}, headers=elastic)
        assert status == 200, body
        assert body["has_all_requested"] is True
        # The password never appears on a command line.
        pid = int(parse_status(run_es("status", port, env=env).stdout)["pid"])
        assert password not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    finally:
        stopped = run_es("stop", port, env=env)
    assert stopped.returncode == 0, stopped.stderr
