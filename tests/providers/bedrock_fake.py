"""Amazon Bedrock's runtime API: ``/model/{model}/invoke`` (Titan and Cohere embeddings),
``/converse`` and ``/converse-stream`` (binary AWS event-stream frames), every request's AWS
Signature V4 verified with botocore's signer."""

from __future__ import annotations

import re
from typing import ClassVar

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from . import eventstream
from .harness import SECRET, Call, FakeProvider, Reply
from .openai_fake import fake_vector

ACCESS_KEY = "AKIATESTACCESSKEY"
REGION = "us-east-1"
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


class FakeBedrock(FakeProvider):
    key: ClassVar[str] = SECRET

    def authorized(self, call: Call) -> bool:
        match = AUTH.fullmatch(call.headers.get("Authorization", ""))
        if not match or match["key"] != ACCESS_KEY or match["region"] != REGION:
            return False
        headers = {name: call.headers[name] for name in call.headers if name.lower() in match["signed"].split(";")}
        request = AWSRequest(method=call.method, url=f"{self.url}{call.raw_path}", data=call.raw, headers=headers)
        request.context["timestamp"] = call.headers["X-Amz-Date"]
        auth = SigV4Auth(Credentials(ACCESS_KEY, self.key), "bedrock", REGION)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        return expected == match["signature"]

    def error(self, status: int, message: str) -> Reply:
        if status == 401:
            status = 403
        return Reply(status=status, json={"message": message}, headers={"x-amzn-ErrorType": "Error"})

    def validate(self, call: Call) -> str | None:
        body = call.json
        if call.raw_path == "/model/amazon.titan-embed-text-v2%3A0/invoke":
            return None if set(body) <= {"inputText", "dimensions"} and isinstance(body["inputText"], str) else "bad titan"
        if call.path == "/model/cohere.embed-english-v3/invoke":
            return None if body.get("input_type") and isinstance(body.get("texts"), list) else "bad cohere"
        if call.path.endswith(("/converse", "/converse-stream")):
            if call.path.endswith("-stream") and call.headers.get("Accept") != "application/vnd.amazon.eventstream":
                return "bad accept header"
            content = body["messages"][0]["content"]
            return None if body["messages"][0]["role"] == "user" and content[0]["text"] else "bad converse"
        return f"unknown path {call.path}"

    def answer(self, call: Call) -> Reply:
        body = call.json
        if "titan-embed" in call.path:
            return Reply(json={"embedding": fake_vector(body["inputText"], body.get("dimensions", 4)), "inputTextTokenCount": 2})
        if "cohere.embed" in call.path:
            return Reply(json={"embeddings": [fake_vector(t) for t in body["texts"]], "id": "x", "texts": body["texts"]})
        if call.path.endswith("/converse-stream"):
            return self.stream_reply(["Hello", " world"])
        return Reply(
            json={
                "output": {"message": {"role": "assistant", "content": [{"text": "Hello world"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
            }
        )


    def stream_reply(self, texts: list[str]) -> Reply:
        return Reply(chunks=eventstream.converse_stream(texts), content_type="application/vnd.amazon.eventstream")
