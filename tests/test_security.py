"""Authorization of the sidecar's APIs on an Elasticsearch with security enabled, and the fence
around the sidecar's hidden indices.

The secured node runs on a port of its own (``ES_SECURE_PORT``, default 9241), started with
``ES_SECURITY=true scripts/es start``. Users and roles are created with the security API as
``elastic``; the sidecar itself connects as a dedicated user that may only touch its own indices.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import es_node
import http_util as http
import pytest
from sidecar_fixtures import SidecarProcess

from sidecar.errors import EsError
from sidecar.security.actions import (
    DELETE,
    GET,
    INFER,
    PUT,
    STATS,
    TASK_CANCEL,
    TASK_GET,
    UPDATE,
    action_for,
)
from sidecar.security.authorizer import denial_reason
from sidecar.security.body import FencedPayload, Violation
from sidecar.security.indices import IndexFence

pytestmark = pytest.mark.es

ES_PASSWORD = os.environ.get("ES_PASSWORD", "changeme")
SIDECAR_USER, SIDECAR_PASSWORD = "sidecar_system", "sidecar-own-password-5150"
USER_PASSWORD = "user-password-8086"
# A fixed key: endpoints left on the secured node by earlier runs stay readable.
SECURE_SECRETS_KEY = "secured-node-secrets-key-for-tests"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("elastic", ES_PASSWORD)


# ---- helpers shared with test_secrets_leak --------------------------------------------------------


class FakeOpenAi(BaseHTTPRequestHandler):
    """OpenAI's embeddings and chat APIs on loopback. Like OpenAI, a wrong key is echoed back in
    the 401; inputs starting with ``boom-`` make it fail with the key it received in the error."""

    protocol_version = "HTTP/1.1"
    keys: set[str] = set()
    seen_keys: list[str] = []

    def _send(self, code: int, payload, headers: dict[str, str] | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        kind = "text/event-stream" if raw.startswith(b"data:") else "application/json"
        self.send_response(code)
        for name, value in {"Content-Type": kind, "Content-Length": str(len(raw)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen_keys.append(key)
        if key not in self.keys:
            return self._send(401, {"error": {"message": f"Incorrect API key provided: {key}",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}})
        texts = body.get("input") or [m.get("content", "") for m in body.get("messages", [])]
        texts = [texts] if isinstance(texts, str) else texts
        boom = next((t for t in texts if isinstance(t, str) and t.startswith("boom-")), None)
        if boom == "boom-500":
            return self._send(500, {"error": {"message": f"server error while using key {key}"}})
        if boom == "boom-429":
            return self._send(429, {"error": {"message": f"rate limited for key {key}"}}, {"Retry-After": "0"})
        if boom == "boom-400":
            return self._send(400, {"error": {"message": f"bad request; your key {key} has no access"}})
        if boom == "boom-malformed":
            return self._send(200, f'{{"data": [{{"embedding": "{key}"'.encode())
        if boom == "boom-stream":
            return self._send(200, f'data: {{"error": {{"message": "stream broke for {key}"}}}}\n\n'.encode())
        if self.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3, 0.4]}
                    for i in range(len(texts))]
            return self._send(200, {"object": "list", "data": data, "model": body.get("model"), "usage": {}})
        if body.get("stream"):
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
            return self._send(200, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        return self._send(200, {"id": "c1", "object": "chat.completion", "model": body.get("model"),
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": "hi"}}]})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[str]:
    """The fake's base URL (``/v1/embeddings``, ``/v1/chat/completions``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def es_call(url: str, method: str, path: str, body=None, **kw):
    return http.json_request(method, url + path, body, headers={**ADMIN, **kw.pop("headers", {})}, **kw)


class FileRealm:
    """Users and roles of the secured node, written to its ``config/users``, ``users_roles`` and
    ``roles.yml`` (the file realm; Elasticsearch reloads them within seconds). The test node has
    no ``.security`` index (the module its mappings need is not in the distribution), so the
    native realm and API keys are not available there."""

    def __init__(self, url: str, config_dir: Path) -> None:
        self.url = url
        self.config_dir = config_dir
        self.roles: dict[str, dict] = {}
        self.users: dict[str, tuple[str, list[str]]] = {}

    @staticmethod
    def password_hash(password: str) -> str:
        salt = os.urandom(8)
        digest = hashlib.sha256(password.encode() + salt).digest()
        return "{SSHA256}" + base64.b64encode(salt).decode() + base64.b64encode(digest).decode()

    def write(self) -> None:
        # One role a line, its definition in JSON (which is YAML).
        (self.config_dir / "roles.yml").write_text(
            "".join(f"{name}: {json.dumps(role)}\n" for name, role in self.roles.items()))
        (self.config_dir / "users").write_text(
            "".join(f"{name}:{self.password_hash(password)}\n" for name, (password, _) in self.users.items()))
        members: dict[str, list[str]] = {}
        for name, (_, roles) in self.users.items():
            for role in roles:
                members.setdefault(role, []).append(name)
        (self.config_dir / "users_roles").write_text(
            "".join(f"{role}:{','.join(names)}\n" for role, names in members.items()))

    def wait_for(self, user: str, password: str, roles: list[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = http.json_request("GET", f"{self.url}/_security/_authenticate",
                                             headers=basic(user, password))
            if status == 200 and sorted(body["roles"]) == sorted(roles):
                return
            time.sleep(0.5)
        raise AssertionError(f"Elasticsearch did not load user [{user}] with roles {roles}")

    def set(self, roles: dict[str, dict] | None = None, users: dict[str, tuple[str, list[str]]] | None = None
            ) -> None:
        self.roles.update(roles or {})
        self.users.update(users or {})
        self.write()
        for name, (password, user_roles) in (users or {}).items():
            self.wait_for(name, password, user_roles)


def _config_dir(port: int) -> Path:
    state_dir = Path(os.environ.get("ES_STATE_DIR", f"/tmp/es-inference-sidecar-{os.getuid()}"))
    state = dict(line.split("=", 1) for line in (state_dir / f"es-{port}.state").read_text().splitlines()
                 if "=" in line)
    return Path(state["run_dir"]) / "config"


@pytest.fixture(scope="session")
def secure_es() -> Iterator[str]:
    """An Elasticsearch with security enabled (``scripts/es``, ``ES_SECURITY=true``)."""
    port = int(os.environ.get("ES_SECURE_PORT", "9241"))
    env = {"ES_SECURITY": "true", "ES_PASSWORD": ES_PASSWORD}
    was_running = es_node.run_es("status", port).returncode == 0
    result = es_node.run_es("start", port, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/es start failed:\n{result.stdout}\n{result.stderr}")
    url = es_node.last_line(result.stdout)
    status, _ = http.json_request("GET", url + "/_cluster/health")
    assert status == 401, f"the node on port {port} does not have security enabled; stop it or set ES_SECURE_PORT"
    try:
        yield url
    finally:
        if not was_running:
            es_node.run_es("stop", port, env=env)


@pytest.fixture(scope="session")
def realm(secure_es) -> FileRealm:
    """The secured node's file realm, with the sidecar's own user: it may use its own indices
    and read the mappings, settings, templates and pipelines of the indices it writes to."""
    realm = FileRealm(secure_es, _config_dir(int(secure_es.rsplit(":", 1)[1])))
    realm.set(roles={SIDECAR_USER: {
        "cluster": ["monitor", "manage_index_templates", "read_pipeline"],
        "indices": [{"names": [".sidecar-*"], "privileges": ["all"]},
                    {"names": ["*"], "privileges": ["view_index_metadata"]}],
    }}, users={SIDECAR_USER: (SIDECAR_PASSWORD, [SIDECAR_USER])})
    return realm


def secure_sidecar_env(sidecar_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**sidecar_env, "SIDECAR_SECRETS_KEY": SECURE_SECRETS_KEY, "SIDECAR_ES_USERNAME": SIDECAR_USER,
            "SIDECAR_ES_PASSWORD": SIDECAR_PASSWORD, **extra}


# ---- fixtures of this module -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def users(realm) -> dict[str, dict[str, str]]:
    """Roles and users: auth headers by user name."""
    people = {"reader": ["infer_reader"], "admin": ["infer_admin"], "mlmon": ["ml_monitor"],
              "nobody": ["no_cluster"], "wide": ["every_index"]}
    realm.set(roles={
        "infer_reader": {"cluster": ["monitor_inference"]},
        "infer_admin": {"cluster": ["manage_inference"]},
        "ml_monitor": {"cluster": ["monitor_ml"]},
        "no_cluster": {"indices": [{"names": ["limited-*"], "privileges": ["all"]}]},
        "every_index": {"cluster": ["monitor_inference"],
                        "indices": [{"names": ["*"], "privileges": ["all"], "allow_restricted_indices": False}]},
    }, users={name: (USER_PASSWORD, roles) for name, roles in people.items()})
    return {name: basic(name, USER_PASSWORD) for name in people} | {"elastic": ADMIN}


@pytest.fixture(scope="module")
def secured(secure_es, realm, sidecar_env, users, fake_openai, tmp_path_factory) -> Iterator[SidecarProcess]:
    FakeOpenAi.keys.add("sk-secured-test-key-1")
    env = secure_sidecar_env(sidecar_env, SIDECAR_HTTP_MAX_ATTEMPTS="1")
    proc = SidecarProcess(secure_es, env, tmp_path_factory.mktemp("secured") / "sidecar.log").start()
    yield proc
    proc.stop()


def openai_endpoint(fake_url: str, key: str) -> dict:
    return {"service": "openai", "service_settings": {
        "api_key": key, "model_id": "text-embedding-3-small", "url": f"{fake_url}/v1/embeddings", "dimensions": 4}}


@pytest.fixture(scope="module")
def endpoint(secured, users, fake_openai) -> Iterator[str]:
    inference_id = uid("sec-embed")
    status, body = http.json_request("PUT", f"{secured.url}/_inference/text_embedding/{inference_id}",
                                     openai_endpoint(fake_openai, "sk-secured-test-key-1"),
                                     headers=users["admin"])
    assert status == 200, body
    yield inference_id
    http.request("DELETE", f"{secured.url}/_inference/{inference_id}", headers=users["admin"])


def call(proc, method, path, body=None, user=None, headers=None):
    return http.json_request(method, proc.url + path, body, headers={**(user or {}), **(headers or {})})


def reason(body) -> str:
    return body["error"]["reason"]


# ---- authentication ---------------------------------------------------------------------------------


def test_no_credentials_get_elasticsearchs_401(secured):
    status, headers, raw = http.request("GET", f"{secured.url}/_inference/_all")
    body = json.loads(raw)
    assert status == 401
    assert body["error"]["type"] == "security_exception"
    assert reason(body) == "missing authentication credentials for REST request [/_inference/_all]"
    assert headers.get("WWW-Authenticate")  # Elasticsearch's challenge, passed on


def test_wrong_password_gets_401(secured, users):
    status, body = call(secured, "POST", "/_inference/text_embedding/x", {"input": "a"},
                        user=basic("reader", "not-the-password"))
    assert status == 401
    assert reason(body).startswith("unable to authenticate user [reader]")


# ---- privileges -------------------------------------------------------------------------------------


def test_missing_manage_inference_is_403_in_elasticsearchs_words(secured, users, fake_openai):
    status, body = call(secured, "PUT", f"/_inference/text_embedding/{uid('denied')}",
                        openai_endpoint(fake_openai, "sk-secured-test-key-1"), user=users["reader"])
    assert status == 403
    assert body["error"]["type"] == "security_exception"
    assert body["error"]["root_cause"][0]["type"] == "security_exception"
    assert reason(body) == (
        "action [cluster:admin/xpack/inference/put] is unauthorized for user [reader] with effective roles "
        "[infer_reader], this action is granted by the cluster privileges [manage_inference,manage,all]")
    assert body["status"] == 403


def test_missing_monitor_inference_is_403(secured, users, endpoint):
    for method, path, body, action in (
        ("GET", f"/_inference/{endpoint}", None, "cluster:monitor/xpack/inference/get"),
        ("GET", "/_inference/_services", None, "cluster:monitor/xpack/inference/services/get"),
        ("POST", f"/_inference/{endpoint}", {"input": ["x"]}, "cluster:monitor/xpack/inference"),
        ("POST", f"/_inference/completion/{endpoint}/_stream", {"input": ["x"]}, "cluster:monitor/xpack/inference"),
        ("DELETE", f"/_inference/{endpoint}", None, "cluster:admin/xpack/inference/delete"),
        ("PUT", f"/_inference/{endpoint}/_update", {"service_settings": {}}, "cluster:admin/xpack/inference/update"),
        ("GET", "/_ml/trained_models/_stats", None, "cluster:monitor/xpack/ml/inference/stats/get"),
        ("GET", "/_tasks/sidecar:1", None, "cluster:monitor/task/get"),
        ("POST", "/_tasks/sidecar:1/_cancel", None, "cluster:admin/tasks/cancel"),
    ):
        status, answer = call(secured, method, path, body, user=users["nobody"])
        assert status == 403, (method, path, answer)
        assert reason(answer).startswith(
            f"action [{action}] is unauthorized for user [nobody] with effective roles [no_cluster]"), answer


def test_monitor_inference_reads_and_infers_but_cannot_manage(secured, users, endpoint):
    status, body = call(secured, "GET", f"/_inference/{endpoint}", user=users["reader"])
    assert status == 200 and body["endpoints"][0]["inference_id"] == endpoint
    status, body = call(secured, "POST", f"/_inference/{endpoint}", {"input": ["a", "b"]}, user=users["reader"])
    assert status == 200 and len(body["text_embedding"]) == 2
    assert call(secured, "GET", "/_inference/_services", user=users["reader"])[0] == 200
    assert call(secured, "GET", "/_ml/trained_models/_stats", user=users["reader"])[0] == 200
    status, body = call(secured, "DELETE", f"/_inference/{endpoint}", user=users["reader"])
    assert status == 403 and "cluster:admin/xpack/inference/delete" in reason(body)


def test_monitor_ml_reads_trained_model_stats(secured, users):
    assert call(secured, "GET", "/_ml/trained_models/_stats", user=users["mlmon"])[0] == 200
    status, body = call(secured, "GET", "/_inference/_all", user=users["mlmon"])
    assert status == 403


def test_manage_inference_uses_the_sidecars_own_credentials_for_its_indices(secure_es, secured, users,
                                                                              fake_openai):
    # "admin" holds manage_inference and no index privilege at all: the endpoint is still stored,
    # because the sidecar writes its hidden indices as its own user.
    inference_id = uid("own-creds")
    status, body = call(secured, "PUT", f"/_inference/text_embedding/{inference_id}",
                        openai_endpoint(fake_openai, "sk-secured-test-key-1"), user=users["admin"])
    assert status == 200, body
    status, doc = es_call(secure_es, "GET", f"/.sidecar-inference/_doc/{inference_id}")
    assert status == 200 and doc["_source"]["inference_id"] == inference_id
    # The caller's credentials would not do that directly on Elasticsearch.
    status, _ = http.json_request("GET", f"{secure_es}/.sidecar-inference/_doc/{inference_id}",
                                  headers=users["admin"])
    assert status == 403
    assert call(secured, "POST", f"/_inference/{inference_id}", {"input": "x"}, user=users["admin"])[0] == 200
    status, body = call(secured, "DELETE", f"/_inference/{inference_id}", user=users["admin"])
    assert status == 200, body
    assert es_call(secure_es, "GET", f"/.sidecar-inference/_doc/{inference_id}")[0] == 404


def test_superuser_may_do_everything(secured, users, endpoint):
    assert call(secured, "GET", f"/_inference/{endpoint}", user=users["elastic"])[0] == 200
    assert call(secured, "POST", f"/_inference/{endpoint}", {"input": "x"}, user=users["elastic"])[0] == 200


def test_privilege_changes_apply_within_seconds(secured, realm, endpoint):
    name = uid("changing")
    realm.set(users={name: (USER_PASSWORD, ["infer_reader"])})
    user = basic(name, USER_PASSWORD)
    assert call(secured, "GET", f"/_inference/{endpoint}", user=user)[0] == 200
    realm.set(users={name: (USER_PASSWORD, ["no_cluster"])})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, _ = call(secured, "GET", f"/_inference/{endpoint}", user=user)
        if status == 403:
            break
        time.sleep(0.5)
    assert status == 403


# ---- hidden indices ---------------------------------------------------------------------------------


def ndjson(*lines) -> bytes:
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/.sidecar-inference/_search", None),
    ("GET", "/.sidecar-inference-secrets/_doc/anything", None),
    ("GET", "/%2Esidecar-inference-secrets/_search", None),
    ("POST", "/.sidecar-tasks/_doc", {"x": 1}),
    ("DELETE", "/.sidecar-inference", None),
    ("PUT", "/.sidecar-pipelines/_settings", {"index": {"number_of_replicas": 0}}),
    ("GET", "/.sidecar-inference/_mapping", None),
    ("GET", "/.sid*/_search", None),
    ("GET", "/.*/_search", None),
    ("GET", "/*/_search?expand_wildcards=all", None),
    ("GET", "/_search?expand_wildcards=hidden,open", None),
    ("GET", "/_all/_count?expand_wildcards=all", None),
    ("DELETE", "/*?expand_wildcards=all", None),
    ("GET", "/%3C.sidecar-inference-%7Bnow%2Fd%7D%3E/_search", None),
    ("POST", "/_mget", {"docs": [{"_index": ".sidecar-inference-secrets", "_id": "x"}]}),
    ("POST", "/limited-a/_search", {"query": {"terms": {"f": {
        "index": ".sidecar-inference-secrets", "id": "x", "path": "ciphertext"}}}}),
    ("POST", "/limited-a/_search", {"query": {"more_like_this": {
        "fields": ["f"], "like": [{"_index": ".sidecar-inference", "_id": "x"}]}}}),
    ("POST", "/_aliases", {"actions": [{"add": {"index": ".sidecar-inference-secrets", "alias": "peek"}}]}),
    ("POST", "/_reindex", {"source": {"index": ".sidecar-inference-secrets"}, "dest": {"index": "limited-copy"}}),
    ("PUT", "/_index_template/peek", {"index_patterns": [".sidecar-*"], "template": {"aliases": {"peek": {}}}}),
    ("POST", "/_query", {"query": "FROM .sidecar-inference-secrets | LIMIT 10"}),
    ("POST", "/limited-a/_search", b'{"query": {"terms": {"f": {"index": "\\u002esidecar-tasks", "id": "1", '
                                   b'"path": "x"}}}}'),
])
def test_hidden_indices_are_refused_even_to_superusers(secured, users, method, path, body):
    for user in ("elastic", "wide"):
        status, answer = call(secured, method, path, body, user=users[user])
        assert status == 403, (user, method, path, answer)
        assert answer["error"]["type"] == "security_exception"
        assert "sidecar" in reason(answer)


def test_msearch_and_bulk_bodies_are_checked_line_by_line(secured, users, secure_es):
    body = ndjson({"index": "limited-a"}, {"query": {"match_all": {}}},
                  {"index": ".sidecar-inference-secrets"}, {"query": {"match_all": {}}})
    status, answer = call(secured, "POST", "/_msearch", body, user=users["elastic"], headers=NDJSON)
    assert status == 403, answer
    doc_id = uid("smuggled")
    body = ndjson({"index": {"_index": "limited-bulk", "_id": "1"}},
                  {"note": "mentions .sidecar-tasks in a document, which is fine"},
                  {"delete": {"_index": "limited-bulk", "_id": "2"}},
                  {"index": {"_index": ".sidecar-tasks", "_id": doc_id}}, {"evil": True})
    status, answer = call(secured, "POST", "/_bulk", body, user=users["elastic"], headers=NDJSON)
    assert status == 403, answer
    es_call(secure_es, "POST", "/.sidecar-tasks/_refresh")
    assert es_call(secure_es, "GET", f"/.sidecar-tasks/_doc/{doc_id}")[0] in (404,)


def test_ordinary_requests_pass_through(secured, users, secure_es):
    index = uid("limited")
    body = ndjson({"index": {"_index": index, "_id": "1"}}, {"note": "about .sidecar-inference, harmless"},
                  {"index": {"_index": index, "_id": "2"}}, {"note": "two"})
    status, answer = call(secured, "POST", "/_bulk?refresh=true", body, user=users["nobody"], headers=NDJSON)
    assert status == 200 and not answer["errors"], answer
    status, answer = call(secured, "POST", f"/{index}/_search", {"query": {"match": {"note": "sidecar"}}},
                          user=users["nobody"])
    assert status == 200 and answer["hits"]["total"]["value"] == 1
    body = ndjson({"index": index}, {"query": {"match_all": {}}})
    status, answer = call(secured, "POST", "/_msearch", body, user=users["nobody"], headers=NDJSON)
    assert status == 200 and answer["responses"][0]["hits"]["total"]["value"] == 2
    status, answer = call(secured, "POST", "/_mget", {"docs": [{"_index": index, "_id": "1"}]}, user=users["nobody"])
    assert status == 200 and answer["docs"][0]["found"]
    # Elasticsearch's own authorization still applies to what passes through.
    status, answer = call(secured, "GET", "/other-index/_search", user=users["nobody"])
    assert status == 403 and "indices:data/read/search" in reason(answer)
    # Metadata reads may list hidden indices, as Elasticsearch shows them.
    status, raw_headers, raw = http.request("GET", f"{secured.url}/_cat/indices?expand_wildcards=all&h=index",
                                            headers=users["elastic"])
    assert status == 200 and b".sidecar-inference" in raw
    assert call(secured, "GET", "/*/_mapping?expand_wildcards=all", user=users["elastic"])[0] == 200
    # The sidecar's indices are intact.
    assert es_call(secure_es, "GET", "/.sidecar-inference")[0] == 200


def log_with(path: Path, expected: str, timeout: float = 5.0) -> str:
    """The sidecar's log once it holds ``expected`` (log lines are written out in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")
        if expected in text or time.monotonic() > deadline:
            assert expected in text, f"the sidecar's log never showed {expected}"
            return text
        time.sleep(0.05)


def test_secrets_of_the_sidecar_and_callers_never_logged(secured, users, endpoint):
    call(secured, "GET", f"/_inference/{endpoint}", user=users["reader"])
    call(secured, "GET", "/_inference/_all", user=basic("reader", "a-wrong-password-1234"))
    log_text = log_with(Path(secured.log_path), '"url.path":"/_inference/_all","http.response.status_code":401')
    for secret in (SIDECAR_PASSWORD, USER_PASSWORD, ES_PASSWORD, "a-wrong-password-1234", SECURE_SECRETS_KEY,
                   base64.b64encode(f"reader:{USER_PASSWORD}".encode()).decode()):
        assert secret not in log_text


# ---- a node without security ------------------------------------------------------------------------


def test_security_disabled_node_needs_no_credentials_but_keeps_the_fence(sidecar_url):
    status, body = http.json_request("GET", f"{sidecar_url}/_inference/_all")
    assert status == 200, body
    status, body = http.json_request("GET", f"{sidecar_url}/.sidecar-inference/_search")
    assert status == 403 and body["error"]["type"] == "security_exception"


# ---- units ------------------------------------------------------------------------------------------


def test_actions_of_the_sidecars_apis():
    assert action_for("PUT", "/_inference/text_embedding/x") is PUT
    assert action_for("PUT", "/_inference/x") is PUT
    assert action_for("PUT", "/_inference/x/_update") is UPDATE
    assert action_for("POST", "/_inference/sparse_embedding/x/_update") is UPDATE
    assert action_for("DELETE", "/_inference/x") is DELETE
    assert action_for("GET", "/_inference") is GET
    assert action_for("POST", "/_inference/x") is INFER
    assert action_for("POST", "/_inference/completion/x/_stream") is INFER
    assert action_for("GET", "/_ml/trained_models/abc/_stats") is STATS
    assert action_for("GET", "/_ml/trained_models/abc").name == "cluster:monitor/xpack/ml/inference/get"
    assert action_for("GET", "/_tasks/node:1") is TASK_GET
    assert action_for("POST", "/_tasks/node:1/_cancel") is TASK_CANCEL
    assert action_for("GET", "/_tasks") is None
    assert action_for("GET", "/my-index/_search") is None


def test_denial_wording_for_users_api_keys_and_service_accounts():
    who = {"username": "u", "roles": ["b", "a"], "authentication_type": "realm"}
    assert denial_reason(PUT, who) == ("action [cluster:admin/xpack/inference/put] is unauthorized for user [u] "
                                       "with effective roles [a,b], this action is granted by the cluster "
                                       "privileges [manage_inference,manage,all]")
    assert "for API key id [K1] of user [u]," in denial_reason(GET, {**who, "api_key": {"id": "K1"}})
    assert "for service account [elastic/kibana]," in denial_reason(GET, {
        "username": "elastic/kibana", "token": {"type": "_service_account_index"}})


@pytest.mark.parametrize("token,expand,expected", [
    (".sidecar-inference", False, "explicit"),
    (".sidecar-inference-secrets", False, "explicit"),
    (".sidecar-pipelines", False, "explicit"),
    (".sidecar-tasks", False, "explicit"),
    (".SIDECAR-TASKS", False, "explicit"),
    (".sidecar-tasks::data", False, "explicit"),
    ("<.sidecar-tasks-{now/d}>", False, "wildcard"),
    ("my-index", True, None),
    ("-.sidecar-tasks", True, None),
    ("remote:.sidecar-tasks", False, None),
    (".s*", False, "wildcard"),
    ("*", False, None),
    ("*", True, "wildcard"),
    ("_all", True, "wildcard"),
    ("logs-*", True, None),
    ("*-tasks", True, "wildcard"),
    (".kibana*", False, None),
    (".sidecar", False, None),
])
def test_index_expressions(token, expand, expected):
    assert IndexFence.for_prefix(".sidecar-inference").reach(token, expand) == expected


class _Chunks:
    def __init__(self, data: bytes, size: int) -> None:
        self.chunks = [data[i:i + size] for i in range(0, len(data), size)]

    async def readany(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


async def _drain(payload) -> bytes:
    return b"".join([chunk async for chunk in payload.iter_chunked(7)])


@pytest.mark.parametrize("size", [1, 5, 64, 10_000])
async def test_fenced_bulk_body_streams_unchanged(size):
    from sidecar.security.fence import Fence

    fence = Fence(IndexFence.for_prefix(".sidecar-inference"))
    body = ndjson({"index": {"_index": "a"}}, {"text": ".sidecar-tasks is just text"},
                  {"delete": {"_index": "a", "_id": "1"}}, {"update": {"_index": "a", "_id": "2"}},
                  {"doc": {"index": ".sidecar-tasks"}})
    payload = FencedPayload(_Chunks(body, size), fence.line_checker("_bulk", False), Violation())
    assert await _drain(payload) == body
    bad = body + ndjson({"create": {"_index": ".sidecar-tasks", "_id": "x"}}, {"y": 1})
    violation = Violation()
    payload = FencedPayload(_Chunks(bad, size), fence.line_checker("_bulk", False), violation)
    with pytest.raises(EsError) as err:
        await _drain(payload)
    assert err.value.status == 403 and violation.error is err.value


