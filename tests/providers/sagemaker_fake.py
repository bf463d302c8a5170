"""The SageMaker Runtime ``InvokeEndpoint`` and ``InvokeEndpointWithResponseStream`` APIs on
loopback: every request's AWS Signature V4 (service ``sagemaker``) is recomputed and checked, and
the endpoint answers in the schema its name says: ``openai-*`` endpoints speak OpenAI's
embeddings/chat bodies, ``elastic-*`` ones Elasticsearch's own inference request and response
shapes.

A streamed answer is AWS's binary event stream whose ``PayloadPart`` events carry the model's
own bytes: Server-Sent Events of ``chat.completion.chunk`` objects for ``openai``, one JSON
document per part for ``elastic`` (``{"completion":[{"delta":…}]}``, or a chat chunk for a chat
request)."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from . import eventstream
from .harness import SECRET, Call, FakeProvider, Reply
from .openai_fake import fake_vector

ACCESS_KEY = "AKIASAGEMAKERTEST"
REGION = "eu-west-1"
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/sagemaker/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)
PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations(?P<stream>-response-stream)?$")
EVENT_STREAM = "application/vnd.amazon.eventstream"
# The runtime's error codes (the x-amzn-ErrorType header) per status.
ERROR_CODES = {403: "InvalidSignatureException", 424: "ModelError", 429: "ThrottlingException",
               500: "InternalFailure", 503: "ServiceUnavailable"}
CHAT_KEYS = {"messages", "model", "max_completion_tokens", "stop", "temperature", "tool_choice", "tools", "top_p"}


def payload_part(data: bytes) -> bytes:
    return eventstream.frame(
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"}, data
    )


def model_stream_error(message: str) -> bytes:
    """How the runtime ends a stream whose model failed mid-way."""
    headers = {":exception-type": "ModelStreamError", ":content-type": "application/json", ":message-type": "exception"}
    return eventstream.frame(headers, json.dumps({"Message": message, "ErrorCode": "StreamBroken"}).encode())


def chunk(text: str | None = None, *, finish: str | None = None, usage: bool = False) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    out: dict[str, Any] = {"id": "chunk-1", "object": "chat.completion.chunk", "model": "llama",
                           "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        out["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    return out


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
        code = ERROR_CODES.get(status, "ValidationError")
        return Reply(status=status, json={"message": message},
                     headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/",
                              "x-amzn-RequestId": "req-0001"})

    def validate(self, call: Call) -> str | None:
        match = PATH.match(call.path)
        if call.method != "POST" or not match:
            return f"unknown route {call.method} {call.path}"
        accept = "X-Amzn-SageMaker-Accept" if match["stream"] else "Accept"
        if call.headers.get("Content-Type") != "application/json" or call.headers.get(accept) != "application/json":
            return "expected JSON in and out"
        body = call.json
        name = match["name"]
        if match["stream"]:
            return self.validate_stream(call, name, body)
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

    @staticmethod
    def validate_stream(call: Call, name: str, body: dict[str, Any]) -> str | None:
        if "X-Amzn-SageMaker-Target-Model" in call.headers or "X-Amzn-SageMaker-Enable-Explanations" in call.headers:
            return "InvokeEndpointWithResponseStream takes no target model or explanations"
        if name.startswith("openai"):
            ok = (body.get("n") == 1 and body.get("stream") is True and body.get("stream_options") == {"include_usage": True}
                  and isinstance(body.get("messages"), list) and "model" not in body)
            return None if ok else f"bad streamed chat body {body}"
        if "messages" in body:
            return None if set(body) <= CHAT_KEYS else f"unexpected fields {sorted(body)}"
        return None if "input" in body and set(body) <= {"input", "task_settings"} else f"bad body {body}"

    def stream_reply(self, texts: list[str], name: str = "openai-chat", chat: bool = False) -> Reply:
        """The event stream of an answer that says ``texts`` in pieces."""
        if name.startswith("openai"):
            events = [chunk(t) for t in texts] + [chunk(finish="stop"), chunk(usage=True)]
            parts = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
        elif chat:
            parts = [json.dumps(e).encode() for e in [chunk(t) for t in texts] + [chunk(finish="stop")]]
        else:
            parts = [json.dumps({"completion": [{"delta": t}]}).encode() for t in texts]
        return Reply(chunks=[payload_part(p) for p in parts], content_type=EVENT_STREAM)

    def answer(self, call: Call) -> Reply:
        match = PATH.match(call.path)
        name = match["name"]  # type: ignore[index]
        body = call.json
        if match["stream"]:  # type: ignore[index]
            words = ["Hello", " world"]
            if body.get("task_settings", {}).get("tone"):
                words.append(f" ({body['task_settings']['tone']})")
            return self.stream_reply(words, name, chat="messages" in body)
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
