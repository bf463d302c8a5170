"""Google Vertex AI: ``text_embedding``, ``rerank``, and (Gemini models) ``completion`` and
``chat_completion``, both streamed.

Elasticsearch's settings: secret ``service_account_json`` (the key file's JSON text);
embeddings ``service_settings`` ``location``, ``project_id``, ``model_id`` (required),
``max_input_tokens``, ``dimensions``, ``similarity`` (default ``dot_product``), ``rate_limit``
(30000 a minute) and ``task_settings`` ``auto_truncate``, ``input_type``; rerank
``service_settings`` ``project_id`` (required), ``model_id``, ``rate_limit`` (300 a minute) and
``task_settings`` ``top_n``; completion and chat completion ``service_settings`` ``location``,
``project_id``, ``model_id`` (required), ``rate_limit`` (1000 a minute), no ``task_settings``.

Authentication: the service account signs a JWT (google-auth's signer) that is exchanged at the
key's ``token_uri`` for an OAuth access token (scope ``cloud-platform``), cached until shortly
before it expires and sent as ``Authorization: Bearer``.

Requests: embeddings ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/
locations/{location}/publishers/google/models/{model}:predict``; rerank
``https://discoveryengine.googleapis.com/v1/projects/{project}/locations/global/rankingConfigs/
default_ranking_config:rank``; completion ``https://{location}-aiplatform.googleapis.com/v1/
projects/{project}/locations/global/publishers/google/models/{model}:generateContent`` (streamed:
``:streamGenerateContent?alt=sse``), as Elasticsearch builds it. The hosts can be replaced with
``ServiceContext.extras["provider_urls"]["googlevertexai"]`` or
``SIDECAR_PROVIDER_URL_GOOGLEVERTEXAI``.

Completion inputs go up as one ``user`` message each; a chat request is translated to Gemini's
format (see :mod:`sidecar.remote.gemini`) with the request's ``model`` replacing the endpoint's. Gemini's answers
come back as ``chat.completion.chunk`` events for ``chat_completion`` and as text deltas for a
streamed ``completion``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from ..errors import status_exception
from ..protocol.registry import register
from ..protocol.service import Completion, DenseEmbeddings, Endpoint, InputType, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote import gemini as gemini
from ..remote.access_tokens import TokenCache, token_lifetime
from ..remote.client import HttpRequest
from ..remote.errors import SERVER_BUSY, ErrorPolicy, malformed, stream_error
from ..remote.responses import MalformedResponse, float_vectors, ranked_docs, require
from ..remote.service import RemoteService
from ..remote.streams import json_event, sse_events

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
TASK_TYPES = {
    "ingest": "RETRIEVAL_DOCUMENT",
    "search": "RETRIEVAL_QUERY",
    "classification": "CLASSIFICATION",
    "clustering": "CLUSTERING",
}
POLICY = ErrorPolicy(messages={503: SERVER_BUSY})


class AccessTokens:
    """OAuth access tokens for service accounts, fetched with a signed JWT and cached."""

    def __init__(self, service: RemoteService) -> None:
        self.service = service
        self.cache = TokenCache()

    async def bearer(self, endpoint: Endpoint) -> dict[str, str]:
        info = self._account(endpoint)
        key = hashlib.sha256(f"{info.get('client_email')}|{info.get('private_key')}".encode()).hexdigest()
        token = await self.cache.get(key, lambda: self._fetch(endpoint, info))
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def _account(endpoint: Endpoint) -> dict[str, Any]:
        try:
            info = orjson.loads(endpoint.secrets.get("service_account_json", ""))
        except orjson.JSONDecodeError:
            info = None
        if not isinstance(info, dict) or not info.get("private_key") or not info.get("client_email"):
            raise status_exception(
                400,
                f"Failed to read the [service_account_json] of inference entity id [{endpoint.inference_id}]: "
                "expected a service account key with [client_email] and [private_key]",
            )
        return info

    async def _fetch(self, endpoint: Endpoint, info: dict[str, Any]) -> tuple[str, float]:
        from google.auth import crypt, jwt

        token_uri = info.get("token_uri") or DEFAULT_TOKEN_URI
        try:
            signer = crypt.RSASigner.from_service_account_info(info)
        except (ValueError, TypeError):
            raise status_exception(
                400,
                f"Failed to read the [service_account_json] of inference entity id [{endpoint.inference_id}]: "
                "the private key is not valid",
            ) from None
        now = int(time.time())
        assertion = jwt.encode(
            signer,
            {"iss": info["client_email"], "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600},
        )
        form = f"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion.decode()}"
        request = HttpRequest(
            token_uri, data=form.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

        def parse(obj: Any) -> tuple[str, float]:
            return require(obj, "access_token", str, "OAuth token response"), token_lifetime(obj)

        return await self.service.http.call(endpoint, request, parse, timeout=None, rate_limited=False)


@register
class GoogleVertexAiService(RemoteService):
    name = "googlevertexai"
    display_name = "Google Vertex AI"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    secret_keys = ("service_account_json",)
    default_rpm = {
        TaskType.TEXT_EMBEDDING: 30_000,
        TaskType.RERANK: 300,
        TaskType.COMPLETION: 1000,
        TaskType.CHAT_COMPLETION: 1000,
    }
    configuration = cfg.configuration(
        cfg.model_id(task_types, "ID of the LLM you're using."),
        cfg.rate_limit(task_types),
        location=cfg.field(
            "GCP Region",
            "Please provide the GCP region where the Vertex AI API(s) is enabled. "
            "For more information, refer to the {geminiVertexAIDocs}.",
            [t for t in task_types if t != TaskType.RERANK],
            required=True,
        ),
        project_id=cfg.field(
            "GCP Project",
            "The GCP Project ID which has Vertex AI API(s) enabled. For more information "
            "on the URL, refer to the {geminiVertexAIDocs}.",
            task_types,
            required=True,
        ),
        service_account_json=cfg.secret("Credentials JSON", cfg.API_KEY_DESCRIPTION, task_types),
    )
    batch_size = 250

    def __init__(self, context: Any = None) -> None:
        super().__init__(context)
        self.tokens = AccessTokens(self)

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.RERANK:
            return {
                "project_id": ss.string("project_id", required=True),
                "model_id": ss.string("model_id"),
                "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
            }
        location = ss.string("location", required=True)
        project_id = ss.string("project_id", required=True)
        model_id = ss.string("model_id", required=True)
        if task_type in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION):
            return {
                "project_id": project_id,
                "location": location,
                "model_id": model_id,
                "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
            }
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        similarity = common.similarity(ss)
        dimensions = ss.integer("dimensions", positive=True)
        return {
            "location": location,
            "project_id": project_id,
            "model_id": model_id,
            "max_input_tokens": max_input_tokens,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
            "dimensions_set_by_user": True if dimensions is not None else None,
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.RERANK:
            return {"top_n": ts.integer("top_n", positive=True)}
        if task_type != TaskType.TEXT_EMBEDDING:
            return {}
        return {"auto_truncate": ts.boolean("auto_truncate"), "input_type": ts.enum("input_type", TASK_TYPES)}

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        return common.secrets(ss, required=("service_account_json",))

    async def _authorized(self, endpoint: Endpoint) -> Any:
        async def prepare(request: HttpRequest, body: bytes) -> dict[str, str]:
            return await self.tokens.bearer(endpoint)

        return prepare

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = endpoint.service_settings
        task = self.effective_task_settings(endpoint, task_settings)
        kind = input_type.value if input_type is not None else task.get("input_type")
        location, project, model = settings["location"], settings["project_id"], settings["model_id"]
        url = (
            f"{self.base_url(f'https://{location}-aiplatform.googleapis.com')}/v1/projects/{project}"
            f"/locations/{location}/publishers/google/models/{model}:predict"
        )
        prepare = await self._authorized(endpoint)

        def build(batch: list[str]) -> HttpRequest:
            instances = [{"content": text} | ({"task_type": TASK_TYPES[kind]} if kind else {}) for text in batch]
            body: dict[str, Any] = {"instances": instances}
            if task.get("auto_truncate") is not None:
                body["parameters"] = {"autoTruncate": task["auto_truncate"]}
            return HttpRequest(url, json=body, prepare=prepare)

        def parse(obj: Any) -> list[list[float]]:
            context = "Google Vertex AI embeddings response"
            predictions = require(obj, "predictions", list, context)
            rows = [require(require(p, "embeddings", dict, context), "values", list, context) for p in predictions]
            return float_vectors(rows, context)

        return await self.embed_batches(endpoint, inputs, build, parse, timeout=timeout, policy=POLICY)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = endpoint.service_settings
        task = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {}
        if settings.get("model_id"):
            body["model"] = settings["model_id"]
        body["query"] = query
        body["records"] = [{"id": str(i), "content": text} for i, text in enumerate(inputs)]
        if task.get("top_n") is not None:
            body["topN"] = task["top_n"]
        return_documents = task.get("return_documents")
        if return_documents is not None:
            body["ignoreRecordDetailsInResponse"] = not return_documents
        url = (
            f"{self.base_url('https://discoveryengine.googleapis.com')}/v1/projects/{settings['project_id']}"
            "/locations/global/rankingConfigs/default_ranking_config:rank"
        )

        def parse(obj: Any) -> list[RankedDoc]:
            context = "Google Discovery Engine rank response"
            return ranked_docs(
                require(obj, "records", list, context),
                inputs,
                context,
                with_text=return_documents is not False,
                score_keys=("score",),
                index_key="id",
                text_of=lambda record: record.get("content"),
            )

        request = HttpRequest(url, json=body, prepare=await self._authorized(endpoint))
        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)

    # -- completion and chat completion (Gemini) --------------------------------------------
    async def _gemini_request(self, endpoint: Endpoint, request: dict[str, Any], stream: bool) -> HttpRequest:
        settings = endpoint.service_settings
        location, project = settings["location"], settings["project_id"]
        model = request.get("model") or settings["model_id"]
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = (
            f"{self.base_url(f'https://{location}-aiplatform.googleapis.com')}/v1/projects/{project}"
            f"/locations/global/publishers/google/models/{model}:{action}"
        )
        return HttpRequest(url, json=gemini.request_body(request), prepare=await self._authorized(endpoint))

    @staticmethod
    def _completion_request(inputs: Sequence[str]) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text} for text in inputs]}

    async def complete(
        self, endpoint: Endpoint, inputs: Sequence[str], task_settings: dict[str, Any], timeout: float | None = None
    ) -> list[Completion]:
        def parse(obj: Any) -> list[Completion]:
            require(obj, "candidates", list, "Google Vertex AI completion response")
            return [Completion(text) for text in gemini.texts_of(obj)]

        request = await self._gemini_request(endpoint, self._completion_request(inputs), stream=False)
        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)

    def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        return self._gemini_stream(endpoint, self._completion_request(inputs), timeout, chat=False)

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        gemini.request_body(request)  # refuse what Gemini cannot take before the stream starts
        return self._gemini_stream(endpoint, request, timeout, chat=True)

    async def _gemini_stream(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None, *, chat: bool
    ) -> AsyncIterator[dict[str, Any]]:
        upstream = await self._gemini_request(endpoint, request, stream=True)
        lines = self.lines(endpoint, upstream, timeout=timeout, policy=POLICY)
        async with contextlib.aclosing(lines):
            async for event in sse_events(lines):
                data = json_event(endpoint, event.data)
                if isinstance(data, dict) and data.get("error"):
                    raise stream_error(endpoint, data)
                try:
                    chunk = gemini.chat_chunk_of(data)
                except MalformedResponse as exc:
                    raise malformed(endpoint, exc) from None
                if chat:
                    yield chunk
                    continue
                deltas = [c["delta"]["content"] for c in chunk.get("choices", []) if c["delta"].get("content")]
                if deltas:
                    yield {"completion": [{"delta": d} for d in deltas]}
