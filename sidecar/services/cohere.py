"""Cohere: ``text_embedding``, ``rerank`` and ``completion`` (streamed), on Cohere's v2 API
as Elasticsearch uses it for new endpoints.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required;
``model`` is the deprecated spelling), ``url`` (kept and shown; Elasticsearch does not send
requests to it), ``similarity`` (default ``dot_product``), ``dimensions``, ``max_input_tokens``,
``embedding_type`` (``float`` default, ``byte``/``int8``, ``bit``/``binary``; shown as the
element type), ``rate_limit`` (10000 a minute). ``task_settings``: embeddings ``input_type``
(``ingest``, ``search``, ``classification``, ``clustering``) and ``truncate``
(``none``, ``start``, ``end``); rerank ``return_documents``, ``top_n``, ``max_chunks_per_doc``.

Requests go to ``https://api.cohere.ai/v2/{embed,rerank,chat}``; the base can be redirected
with ``ServiceContext.extras["provider_urls"]["cohere"]`` or ``SIDECAR_PROVIDER_URL_COHERE``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Completion, DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.errors import AUTHENTICATION, SERVER_ERROR, UNSUCCESSFUL, ErrorPolicy
from ..remote.responses import MalformedResponse, float_vectors, require
from ..remote.service import DocumentsRerankService
from ..remote.streams import json_event, sse_events

DEFAULT_BASE = "https://api.cohere.ai"

# embedding_type as given → (element type shown and stored, value sent to Cohere)
EMBEDDING_TYPES = {
    "float": ("float", "float"),
    "byte": ("byte", "int8"),
    "int8": ("byte", "int8"),
    "bit": ("bit", "binary"),
    "binary": ("bit", "binary"),
}
WIRE_TYPE = {"float": "float", "byte": "int8", "bit": "binary"}
INPUT_TYPES = {
    "ingest": "search_document",
    "search": "search_query",
    "classification": "classification",
    "clustering": "clustering",
}
TEXTS_TOO_LARGE = "invalid request: total number of texts must be at most"


def _refine(status: int, message: str | None) -> str | None:
    if status == 400 and message and TEXTS_TOO_LARGE in message:
        return "Received a texts array too large response"
    return None


# Elasticsearch's CohereResponseHandler.
POLICY = ErrorPolicy(
    messages={401: AUTHENTICATION, 403: UNSUCCESSFUL, 404: UNSUCCESSFUL, 413: UNSUCCESSFUL, 500: SERVER_ERROR},
    too_large=lambda status, message: False,
    refine=_refine,
)


@register
class CohereService(DocumentsRerankService):
    name = "cohere"
    display_name = "Cohere"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION)
    streaming_tasks = (TaskType.COMPLETION,)
    default_rpm = {t: 10_000 for t in task_types}
    configuration = cfg.configuration(cfg.model_id(task_types), cfg.api_key(task_types), cfg.rate_limit(task_types))
    batch_size = 96
    policy = POLICY
    rerank_task_keys = ("return_documents", "top_n", "max_chunks_per_doc")

    # -- settings ----------------------------------------------------------------------------
    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        url = common.url(ss)
        if task_type == TaskType.TEXT_EMBEDDING:
            similarity = common.similarity(ss)
            dimensions = ss.integer("dimensions", positive=True)
            max_input_tokens = ss.integer("max_input_tokens", positive=True)
        model_id = self._model_id(ss)
        rate = common.rate_limit(ss, self.name, self.rpm(task_type))
        if task_type != TaskType.TEXT_EMBEDDING:
            return {"url": url, "model_id": model_id, "rate_limit": rate}
        embedding_type = ss.enum("embedding_type", EMBEDDING_TYPES) or "float"
        return {
            "url": url,
            "similarity": similarity or self.default_similarity,
            "dimensions": dimensions,
            "max_input_tokens": max_input_tokens,
            "model_id": model_id,
            "rate_limit": rate,
            "embedding_type": EMBEDDING_TYPES.get(embedding_type, ("float", "float"))[0],
        }

    @staticmethod
    def _model_id(ss: SettingsReader) -> str | None:
        old = ss.string("model")
        model_id = ss.string("model_id") or old
        if model_id is None and not any("[model_id]" in e for e in ss.errors):
            ss.error("The [service_settings.model_id] field is required for the Cohere V2 API.")
        return model_id

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.TEXT_EMBEDDING:
            return {"input_type": ts.enum("input_type", INPUT_TYPES), "truncate": ts.enum("truncate", TRUNCATE)}
        if task_type == TaskType.RERANK:
            return {
                "return_documents": ts.boolean("return_documents"),
                "top_n": ts.integer("top_n", positive=True),
                "max_chunks_per_doc": ts.integer("max_chunks_per_doc", positive=True),
            }
        return {}

    # -- requests ----------------------------------------------------------------------------
    def _request(self, endpoint: Endpoint, path: str, body: dict[str, Any]) -> HttpRequest:
        return HttpRequest(
            f"{self.base_url(DEFAULT_BASE)}/v2/{path}",
            json=body,
            headers={
                "Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}",
                "Request-Source": "unspecified:elasticsearch",
            },
        )

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)
        element_type = endpoint.service_settings.get("embedding_type", "float")
        wire = WIRE_TYPE[element_type]
        kind = input_type.value if input_type is not None else settings.get("input_type", "search")

        def build(batch: list[str]) -> HttpRequest:
            body: dict[str, Any] = {
                "texts": batch,
                "model": endpoint.service_settings.get("model_id"),
                "input_type": INPUT_TYPES[kind],
                "embedding_types": [wire],
            }
            if settings.get("truncate"):
                body["truncate"] = settings["truncate"].upper()
            return self._request(endpoint, "embed", body)

        def parse(obj: Any) -> list[list[float]]:
            context = "Cohere embeddings response"
            embeddings = require(obj, "embeddings", (dict, list), context)
            rows = embeddings if isinstance(embeddings, list) else require(embeddings, wire, list, context)
            return float_vectors(rows, context)

        return await self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, element_type=element_type
        )

    def _chat(self, endpoint: Endpoint, text: str, stream: bool) -> HttpRequest:
        body = {
            "messages": [{"role": "user", "content": text}],
            "model": endpoint.service_settings.get("model_id"),
            "stream": stream,
        }
        return self._request(endpoint, "chat", body)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        def parse(obj: Any) -> list[Completion]:
            context = "Cohere chat response"
            content = require(require(obj, "message", dict, context), "content", list, context)
            texts = [require(part, "text", str, context) for part in content if part.get("type", "text") == "text"]
            if not texts:
                raise MalformedResponse(f"Failed to find required field [text] in {context}")
            return [Completion("".join(texts))]

        return await self.call(endpoint, self._chat(endpoint, inputs[0], False), parse, timeout=timeout, policy=POLICY)

    async def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        lines = self.lines(endpoint, self._chat(endpoint, inputs[0], True), timeout=timeout, policy=POLICY)
        async for event in sse_events(lines):
            data = json_event(endpoint, event.data)
            kind = data.get("type") if isinstance(data, dict) else None
            if kind == "message-end":
                return
            if kind == "content-delta":
                text = ((data.get("delta") or {}).get("message") or {}).get("content", {}).get("text")
                if text:
                    yield {"completion": [{"delta": text}]}


TRUNCATE = ("none", "start", "end")
