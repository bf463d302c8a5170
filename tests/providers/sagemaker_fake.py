"""The SageMaker Runtime ``InvokeEndpoint`` API on loopback: every request's AWS Signature V4
(service ``sagemaker``) is recomputed and checked, and the endpoint answers in the schema its
name says: ``openai-*`` endpoints speak OpenAI's embeddings/chat bodies, ``elastic-*`` ones
Elasticsearch's own inference request and response shapes."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .harness import SECRET, Call, FakeProvider, Reply
from .openai_fake import fake_vector

ACCESS_KEY = "AKIASAGEMAKERTEST"
REGION = "eu-west-1"
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/sagemaker/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)
PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


class FakeSageMaker(FakeProvider):
    key: ClassVar[str] = SECRET

    def authorized(self, call: Call) -> bool:
        match = AUTH.fullmatch(call.headers.get("Authorization", ""))
        if not match or match["key"] != ACCESS_KEY or match["region"] != REGION:
            return False
        signed = match["signed"].split(";")
        if "x-amz-date" not in signed or "host" not in signed:
            return False
        headers = {name: call.headers[name] for name in call.headers if name.lower() in signed}
        request = AWSRequest(method=call.method, url=f"{self.url}{call.raw_path}", data=call.raw, headers=headers)
        request.context["timestamp"] = call.headers["X-Amz-Date"]
        auth = SigV4Auth(Credentials(ACCESS_KEY, self.key), "sagemaker", REGION)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        return expected == match["signature"]

    def error(self, status: int, message: str) -> Reply:
        if status == 401:
            status = 403  # AWS answers a bad signature with 403
        return Reply(status=status, json={"message": message}, headers={"x-amzn-ErrorType": "ValidationError"})

    def validate(self, call: Call) -> str | None:
        match = PATH.match(call.path)
        if call.method != "POST" or not match:
            return f"unknown route {call.method} {call.path}"
        if call.headers.get("Content-Type") != "application/json" or call.headers.get("Accept") != "application/json":
            return "expected JSON in and out"
        body = call.json
        name = match["name"]
        if name.startswith("openai-chat"):
            ok = body.get("n") == 1 and body["messages"][0]["role"] == "user"
            return None if ok else "bad chat body"
        if "input" not in body or not isinstance(body["input"], str | list):
            return "'input' is required"
        if name.startswith("openai"):
            return None if set(body) <= {"input", "user", "dimensions"} else f"unexpected fields {sorted(body)}"
        if set(body) - {"input", "input_type", "query", "task_settings"}:
            return f"unexpected fields {sorted(body)}"
        if body.get("input_type", "ingest") not in ("ingest", "search", "classification", "clustering"):
            return "bad input_type"
        return None

    def answer(self, call: Call) -> Reply:
        name = PATH.match(call.path)["name"]  # type: ignore[index]
        body = call.json
        texts = [] if "input" not in body else ([body["input"]] if isinstance(body["input"], str) else body["input"])
        if name.startswith("openai-chat"):
            return Reply(json={"id": "c1", "object": "chat.completion",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}}]})
        if name.startswith("openai"):
            dims = body.get("dimensions", 4)
            data = [{"object": "embedding", "index": i, "embedding": fake_vector(t, dims)} for i, t in enumerate(texts)]
            return Reply(json={"object": "list", "data": data, "model": name})
        return Reply(json=self.elastic_answer(name, body, texts))

    @staticmethod
    def elastic_answer(name: str, body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        if name.startswith("elastic-sparse"):
            return {"sparse_embedding": [
                {"is_truncated": False, "embedding": {w: 1.0 / (1 + i) for i, w in enumerate(t.split())}}
                for t in texts]}
        if name.startswith("elastic-rerank"):
            scores = [1.0 / (1 + len(t)) for t in texts]
            order = sorted(range(len(texts)), key=lambda i: -scores[i])
            return {"rerank": [{"index": i, "relevance_score": scores[i], "text": texts[i]} for i in order]}
        if name.startswith("elastic-completion"):
            return {"completion": [{"result": f"Hello world ({body.get('task_settings', {}).get('tone', 'plain')})"}]}
        if name.startswith("elastic-bytes"):
            return {"text_embedding_bytes": [{"embedding": [int(v * 100) - 50 for v in fake_vector(t)]} for t in texts]}
        search = 1.0 if body.get("input_type") == "search" else 0.0
        return {"text_embedding": [{"embedding": [search, *fake_vector(t, 3)]} for t in texts]}
