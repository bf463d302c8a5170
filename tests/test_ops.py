"""Operations: Prometheus metrics, liveness and readiness, HTTPS on the sidecar's listener and
TLS (with a CA file) to Elasticsearch."""

from __future__ import annotations

import datetime
import http.client as httplib
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import http_util as http
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sidecar_fixtures import ROOT, SidecarProcess, free_port

from sidecar import metrics

pytestmark = pytest.mark.es


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scrape(url: str) -> dict[str, list]:
    """Samples by metric family name."""
    status, headers, raw = http.request("GET", f"{url}/_sidecar/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(raw.decode())}


def sample(families: dict[str, list], name: str, **labels: str) -> float | None:
    family = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    for s in families.get(family, []):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


# ---- liveness and readiness -------------------------------------------------------------------------


def test_live_and_ready(sidecar_url):
    assert http.json_request("GET", f"{sidecar_url}/_sidecar/live") == (200, {"status": "ok"})
    status, body = http.json_request("GET", f"{sidecar_url}/_sidecar/ready")
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["checks"]["elasticsearch"]["ok"] and body["checks"]["indices"]["ok"]


def test_not_ready_while_elasticsearch_is_unreachable(sidecar_env, tmp_path):
    proc = SidecarProcess(f"http://127.0.0.1:{free_port()}", sidecar_env, tmp_path / "sidecar.log").start()
    try:
        assert http.json_request("GET", f"{proc.url}/_sidecar/live")[0] == 200
        status, body = http.json_request("GET", f"{proc.url}/_sidecar/ready")
        assert status == 503, body
        assert body["status"] == "not_ready" and not body["checks"]["elasticsearch"]["ok"]
    finally:
        proc.stop()


# ---- metrics ----------------------------------------------------------------------------------------


def test_metrics_count_requests_inference_and_deployments(sidecar_url, sidecar_env):
    inference_id = uid("metrics")
    status, body = http.json_request("PUT", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}", {
        "service": "elasticsearch",
        "service_settings": {"num_allocations": 1, "num_threads": 1, "model_id": ".elser_model_2"}})
    assert status == 200, body
    try:
        before = scrape(sidecar_url)
        inputs_before = sample(before, "sidecar_inference_inputs_total", service="elasticsearch",
                               task_type="sparse_embedding") or 0.0
        status, body = http.json_request("POST", f"{sidecar_url}/_inference/sparse_embedding/{inference_id}",
                                         {"input": ["first text", "second text", "third"]})
        assert status == 200, body
        assert http.json_request("POST", f"{sidecar_url}/_inference/text_embedding/{inference_id}",
                                 {"input": ["x"]})[0] == 400
        assert http.request("GET", f"{sidecar_url}/_cluster/health")[0] == 200
        after = scrape(sidecar_url)
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")

    route = "/_inference/{task_type}/{inference_id}"
    assert sample(after, "sidecar_http_requests_total", route=route, method="POST", status="200") >= 1
    assert sample(after, "sidecar_http_requests_total", route="proxy", method="GET", status="200") >= 1
    assert sample(after, "sidecar_http_request_duration_seconds_count", route=route, method="POST") >= 2
    assert sample(after, "sidecar_inference_inputs_total", service="elasticsearch",
                  task_type="sparse_embedding") == inputs_before + 3
    assert sample(after, "sidecar_inference_failures_total", service="elasticsearch",
                  task_type="sparse_embedding", status="400") >= 1
    assert sample(after, "sidecar_deployment_queue_depth", deployment_id=inference_id) == 0
    assert sample(after, "sidecar_deployment_queue_capacity", deployment_id=inference_id) > 0
    assert sample(after, "sidecar_deployment_inferences_total", deployment_id=inference_id) >= 3
    assert sample(after, "sidecar_deployment_batch_size_count", deployment_id=inference_id) >= 1
    assert sample(after, "sidecar_deployment_batch_size_sum", deployment_id=inference_id) >= 3
    assert "process_resident_memory_bytes" in after
    # Route templates only: no path with its values becomes a label.
    for family in after.values():
        for s in family:
            assert inference_id not in s.labels.get("route", "")
            assert "/_cluster/health" not in s.labels.get("route", "")
    text = http.request("GET", f"{sidecar_url}/_sidecar/metrics")[2].decode()
    assert sidecar_env["SIDECAR_SECRETS_KEY"] not in text


def test_requests_passed_through_leave_the_garbage_collector_idle(sidecar_url):
    """After start-up the server freezes what start-up built and collects the young generation
    only after 50,000 net allocations (sidecar.gc_tuning): a burst of pass-through requests
    runs no collection (CPython's defaults ran one every ~40 requests)."""
    import asyncio

    import aiohttp

    def collections() -> float:
        return sample(scrape(sidecar_url), "python_gc_collections_total", generation="0")

    async def burst(n: int) -> None:
        async with aiohttp.ClientSession() as session:
            async def one(i: int) -> None:
                async with session.get(f"{sidecar_url}/_cluster/health") as resp:
                    assert resp.status == 200
                    await resp.read()
            for start in range(0, n, 50):
                await asyncio.gather(*(one(i) for i in range(start, start + 50)))

    before = collections()
    asyncio.run(burst(2000))
    assert collections() - before <= 2


def test_counters_for_other_modules():
    before = metrics.PROVIDER_ERRORS.labels("openai", "429")._value.get()
    metrics.PROVIDER_ERRORS.labels(service="openai", status="429").inc()
    metrics.PROVIDER_RETRIES.labels(service="openai").inc()
    metrics.BATCH_SIZE.labels(deployment_id="d").observe(8)
    text = metrics.render()[0].decode()
    assert metrics.PROVIDER_ERRORS.labels("openai", "429")._value.get() == before + 1
    assert 'sidecar_provider_retries_total{service="openai"}' in text
    assert 'sidecar_inference_batch_size_bucket{deployment_id="d",le="8.0"}' in text


# ---- TLS --------------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``localhost``/``127.0.0.1``: (ca, cert, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "es-inference-sidecar test CA")])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("tls"))


class TlsRelay:
    """HTTPS in front of the plain-HTTP test Elasticsearch: TLS ends here, bytes go on as they are."""

    def __init__(self, target: str, cert: Path, key: Path) -> None:
        host, port = target.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.target = (host, int(port))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust us
            conn.close()
            return
        upstream = socket.create_connection(self.target)
        threading.Thread(target=self._pump, args=(upstream, tls), daemon=True).start()
        self._pump(tls, upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def tls_es(es_url, certificates) -> Iterator[str]:
    relay = TlsRelay(es_url, certificates[1], certificates[2])
    yield f"https://localhost:{relay.port}"
    relay.close()


def test_https_listener(sidecar_env, certificates, tmp_path, monkeypatch, es_url):
    ca, cert, key = certificates
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # this test's client trusts the test CA
    env = {**sidecar_env, "SIDECAR_TLS_CERT": str(cert), "SIDECAR_TLS_KEY": str(key)}
    proc = SidecarProcess(es_url, env, tmp_path / "sidecar.log")
    proc.url = f"https://localhost:{proc.port}"
    proc.start()
    try:
        assert http.json_request("GET", f"{proc.url}/_sidecar/live") == (200, {"status": "ok"})
        status, body = http.json_request("GET", f"{proc.url}/_cluster/health")
        assert status == 200 and body["status"] in ("green", "yellow")
        assert http.json_request("GET", f"{proc.url}/_inference/_all")[0] == 200
        with pytest.raises((OSError, httplib.HTTPException)):
            http.request("GET", f"http://127.0.0.1:{proc.port}/_sidecar/live", timeout=5)
        assert "listening on https://" in proc.log_path.read_text()
    finally:
        proc.stop()


def test_tls_settings_go_together(certificates):
    result = subprocess.run([sys.executable, "-m", "sidecar", "--tls-cert", str(certificates[1])], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--tls-cert and --tls-key must be given together" in result.stderr


def test_tls_to_elasticsearch_with_a_ca_file(tls_es, sidecar_env, certificates, tmp_path):
    env = {**sidecar_env, "SIDECAR_ES_CA_FILE": str(certificates[0])}
    proc = SidecarProcess(tls_es, env, tmp_path / "trusted.log").start()
    try:
        status, body = http.json_request("GET", f"{proc.url}/_sidecar/ready")
        assert status == 200, body
        status, body = http.json_request("GET", f"{proc.url}/_cluster/health")
        assert status == 200 and body["status"] in ("green", "yellow")
        assert http.json_request("GET", f"{proc.url}/_inference/_all")[0] == 200
    finally:
        proc.stop()


def test_tls_to_elasticsearch_verifies_the_certificate(tls_es, sidecar_env, tmp_path):
    proc = SidecarProcess(tls_es, sidecar_env, tmp_path / "untrusted.log").start()
    try:
        status, body = http.json_request("GET", f"{proc.url}/_sidecar/ready")
        assert status == 503, body
        status, body = http.json_request("GET", f"{proc.url}/_cluster/health")
        assert status == 503 and "certificate" in body["error"]["reason"].lower(), body
    finally:
        proc.stop()
