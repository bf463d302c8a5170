"""Provider API keys never leave the sidecar: not in any response (GETs, errors, streams),
not in its log (at DEBUG), not in ``/_sidecar/metrics``; stored only encrypted; and key
rotation (``es-inference-sidecar rotate-secrets``) re-encrypts them so the new key alone reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import http_util as http
import pytest
import test_security
from sidecar_fixtures import ROOT, SidecarProcess
from test_security import (
    SECURE_SECRETS_KEY,
    SIDECAR_PASSWORD,
    SIDECAR_USER,
    FakeOpenAi,
    basic,
    es_call,
    log_with,
    secure_sidecar_env,
)

from sidecar.endpoints.secrets import SecretBox
from sidecar.errors import EsError

pytestmark = pytest.mark.es

# Session fixtures shared with the security tests.
fake_openai = test_security.fake_openai
secure_es = test_security.secure_es
realm = test_security.realm


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def fresh_key(kind: str) -> str:
    return f"sk-{kind}-{uuid.uuid4().hex}"


EMBED_KEY = fresh_key("embed")
CHAT_KEY = fresh_key("chat")
NEW_KEY = fresh_key("updated")
WRONG_KEY = fresh_key("wrong")
WRONG_UPDATE_KEY = fresh_key("wrong-update")
ALL_KEYS = (EMBED_KEY, CHAT_KEY, NEW_KEY, WRONG_KEY, WRONG_UPDATE_KEY)
FAST_RETRIES = {"SIDECAR_HTTP_MAX_ATTEMPTS": "2", "SIDECAR_HTTP_RETRY_INITIAL_DELAY": "0.01",
                "SIDECAR_HTTP_RETRY_MAX_DELAY": "0.02", "SIDECAR_HTTP_RETRY_TIMEOUT": "5"}


def embed_config(fake_url: str, key: str) -> dict:
    return {"service": "openai", "service_settings": {
        "api_key": key, "model_id": "text-embedding-3-small", "url": f"{fake_url}/v1/embeddings", "dimensions": 4}}


class Recorder:
    """Every answer the sidecar gave during the test, for the final search for keys."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[tuple[str, int, bytes]] = []

    def __call__(self, method: str, path: str, body=None, **kw) -> tuple[int, object]:
        status, headers, raw = http.request(method, self.base + path, body, **kw)
        self.answers.append((f"{method} {path}", status, raw + json.dumps(headers).encode()))
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, text


@pytest.fixture(scope="module")
def leak_sidecar(es_url, sidecar_env, fake_openai, tmp_path_factory) -> Iterator[SidecarProcess]:
    FakeOpenAi.keys.update({EMBED_KEY, CHAT_KEY, NEW_KEY})
    env = {**sidecar_env, **FAST_RETRIES, "SIDECAR_LOG_LEVEL": "DEBUG"}
    proc = SidecarProcess(es_url, env, tmp_path_factory.mktemp("leak") / "sidecar.log").start()
    yield proc
    proc.stop()


def test_keys_appear_in_no_response_log_or_metric(leak_sidecar, es_url, sidecar_env, fake_openai):
    call = Recorder(leak_sidecar.url)
    embed, chat, broken = uid("leak-embed"), uid("leak-chat"), uid("leak-broken")
    status, body = call("PUT", f"/_inference/text_embedding/{embed}", embed_config(fake_openai, EMBED_KEY))
    assert status == 200, body
    status, body = call("PUT", f"/_inference/completion/{chat}", {"service": "openai", "service_settings": {
        "api_key": CHAT_KEY, "model_id": "gpt-4o-mini", "url": f"{fake_openai}/v1/chat/completions"}})
    assert status == 200, body
    try:
        # Used as intended.
        status, body = call("POST", f"/_inference/{embed}", {"input": ["one", "two"]})
        assert status == 200 and len(body["text_embedding"]) == 2, body
        assert call("POST", f"/_inference/{chat}", {"input": "hello"})[0] == 200
        status, text = call("POST", f"/_inference/completion/{chat}/_stream", {"input": "hello"})
        assert status == 200 and "hi" in text
        assert EMBED_KEY in FakeOpenAi.seen_keys and CHAT_KEY in FakeOpenAi.seen_keys
        # Providers that echo the key back in their errors.
        for trigger in ("boom-500", "boom-429", "boom-400", "boom-malformed"):
            status, body = call("POST", f"/_inference/{embed}", {"input": [trigger]})
            assert status >= 400, (trigger, body)
        status, text = call("POST", f"/_inference/completion/{chat}/_stream", {"input": "boom-stream"})
        assert "error" in str(text)
        assert call("POST", f"/_inference/{chat}", {"input": "boom-500"})[0] >= 400
        # A wrong key at creation: the provider's 401 names it.
        status, body = call("PUT", f"/_inference/text_embedding/{broken}", embed_config(fake_openai, WRONG_KEY))
        assert status >= 400, body
        assert WRONG_KEY in FakeOpenAi.seen_keys
        # Settings errors with the key among the settings.
        status, _ = call("PUT", f"/_inference/text_embedding/{uid('bad')}", {"service": "openai", "service_settings": {
            "api_key": EMBED_KEY, "model_id": 5, "url": f"{fake_openai}/v1/embeddings"}})
        assert status == 400
        status, _ = call("PUT", f"/_inference/text_embedding/{uid('bad')}", {
            "service": "openai", "service_settings": {"model_id": "m", "url": f"{fake_openai}/v1/embeddings"},
            "task_settings": {"api_key": EMBED_KEY}})
        assert status == 400
        # Key updates.
        status, body = call("PUT", f"/_inference/{embed}/_update", {"service_settings": {"api_key": NEW_KEY}})
        assert status == 200, body
        assert call("POST", f"/_inference/{embed}", {"input": ["after update"]})[0] == 200
        assert call("PUT", f"/_inference/{embed}/_update",
                    {"service_settings": {"api_key": WRONG_UPDATE_KEY}})[0] == 200
        status, body = call("POST", f"/_inference/{embed}", {"input": ["wrong key now"]})
        assert status == 401, body
        assert WRONG_UPDATE_KEY in FakeOpenAi.seen_keys
        # Every way of reading endpoints back.
        for path in ("/_inference", "/_inference/_all", f"/_inference/{embed}", f"/_inference/text_embedding/{embed}",
                     "/_inference/text_embedding/_all", f"/_inference/completion/{chat}", "/_inference/_services",
                     "/_ml/trained_models/_stats", "/_sidecar/health", "/_sidecar/ready", "/_sidecar/metrics"):
            status, _ = call("GET", path)
            assert status == 200, path
        # Stored: the definition has no secret, the secret is ciphertext only.
        for index in (".sidecar-inference", ".sidecar-inference-secrets"):
            status, headers, raw = http.request("GET", f"{es_url}/{index}/_doc/{chat}")
            assert status == 200
            call.answers.append((f"stored {index}", status, raw))
        status, doc = http.json_request("GET", f"{es_url}/.sidecar-inference-secrets/_doc/{chat}")
        ciphertext = doc["_source"]["ciphertext"]
        assert ciphertext != CHAT_KEY
        box = SecretBox(sidecar_env["SIDECAR_SECRETS_KEY"].encode())
        assert box.decrypt(ciphertext, chat) == {"api_key": CHAT_KEY}
    finally:
        for inference_id in (embed, chat, broken):
            call("DELETE", f"/_inference/{inference_id}?force=true")

    secrets = (*ALL_KEYS, sidecar_env["SIDECAR_SECRETS_KEY"])
    for what, status, raw in call.answers:
        for secret in secrets:
            assert secret.encode() not in raw, f"{what} ({status}) shows a secret: {raw[:500]!r}"
    log_text = log_with(Path(leak_sidecar.log_path), '"log.level":"DEBUG"')
    for secret in secrets:
        assert secret not in log_text, f"the sidecar's log shows {secret[:8]}…"
    metrics = http.request("GET", f"{leak_sidecar.url}/_sidecar/metrics")[2].decode()
    assert "sidecar_http_requests_total" in metrics
    for secret in secrets:
        assert secret not in metrics


# ---- rotation ---------------------------------------------------------------------------------------

NEWER_SECRETS_KEY = "secured-node-secrets-key-rotated"


def rotate(es: str, keys: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIDECAR_ES_URL": es, "SIDECAR_ES_USERNAME": SIDECAR_USER,
           "SIDECAR_ES_PASSWORD": SIDECAR_PASSWORD, "SIDECAR_SECRETS_KEY": keys}
    env.pop("SIDECAR_SECRETS_KEY_FILE", None)
    return subprocess.run([sys.executable, "-m", "sidecar", "rotate-secrets"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def stored_ciphertext(es: str, inference_id: str) -> str:
    status, doc = es_call(es, "GET", f"/.sidecar-inference-secrets/_doc/{inference_id}")
    assert status == 200, doc
    return doc["_source"]["ciphertext"]


def test_rotation_reencrypts_every_secret_with_the_newest_key(secure_es, realm, sidecar_env, fake_openai,
                                                              tmp_path):
    key = fresh_key("rotated")
    FakeOpenAi.keys.add(key)
    admin = basic("elastic", os.environ.get("ES_PASSWORD", "changeme"))
    # Start from empty stores: secrets written by other runs may use keys this test does not know.
    es_call(secure_es, "DELETE", "/.sidecar-inference,.sidecar-inference-secrets?ignore_unavailable=true")

    def sidecar(keys: str, name: str) -> SidecarProcess:
        env = secure_sidecar_env(sidecar_env, SIDECAR_SECRETS_KEY=keys, **FAST_RETRIES)
        return SidecarProcess(secure_es, env, tmp_path / f"{name}.log").start()

    inference_id = uid("rotated")
    old = sidecar(SECURE_SECRETS_KEY, "old")
    try:
        status, body = http.json_request("PUT", f"{old.url}/_inference/text_embedding/{inference_id}",
                                         embed_config(fake_openai, key), headers=admin)
        assert status == 200, body
    finally:
        old.stop()
    before = stored_ciphertext(secure_es, inference_id)

    result = rotate(secure_es, f"{NEWER_SECRETS_KEY},{SECURE_SECRETS_KEY}")
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 1 stored secret(s)" in result.stdout
    assert key not in result.stdout + result.stderr
    after = stored_ciphertext(secure_es, inference_id)
    assert after != before and key not in after
    assert SecretBox(NEWER_SECRETS_KEY.encode()).decrypt(after, inference_id) == {"api_key": key}
    with pytest.raises(EsError):
        SecretBox(SECURE_SECRETS_KEY.encode()).decrypt(after, inference_id)

    new = sidecar(NEWER_SECRETS_KEY, "new")
    try:
        status, body = http.json_request("POST", f"{new.url}/_inference/{inference_id}", {"input": ["x"]},
                                         headers=admin)
        assert status == 200, body
    finally:
        new.stop()
    stale = sidecar(SECURE_SECRETS_KEY, "stale")
    try:
        status, body = http.json_request("POST", f"{stale.url}/_inference/{inference_id}", {"input": ["x"]},
                                         headers=admin)
        assert status == 500 and "key does not match" in body["error"]["reason"], body
        assert key not in json.dumps(body)
    finally:
        stale.stop()

    # Keys that cannot read a stored secret: a clear error, nothing rewritten.
    result = rotate(secure_es, "an-unrelated-key")
    assert result.returncode == 1 and "cannot be decrypted" in result.stderr
    assert stored_ciphertext(secure_es, inference_id) == after
    # Back to the key the other tests of the secured node use.
    assert rotate(secure_es, f"{SECURE_SECRETS_KEY},{NEWER_SECRETS_KEY}").returncode == 0
    assert SecretBox(SECURE_SECRETS_KEY.encode()).decrypt(stored_ciphertext(secure_es, inference_id),
                                                          inference_id) == {"api_key": key}
    es_call(secure_es, "DELETE", f"/.sidecar-inference/_doc/{inference_id}")
    es_call(secure_es, "DELETE", f"/.sidecar-inference-secrets/_doc/{inference_id}")


def test_rotation_without_a_key_is_refused(secure_es):
    result = rotate(secure_es, "")
    assert result.returncode == 1 and "no secrets key" in result.stderr
