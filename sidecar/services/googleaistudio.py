"""Google AI Studio (Gemini API): ``text_embedding`` and ``completion`` (streamed).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
embeddings ``max_input_tokens``, ``dimensions`` (sent as ``outputDimensionality``),
``similarity`` (default ``dot_product``); ``rate_limit`` (360 a minute).

Requests go to ``https://generativelanguage.googleapis.com/v1/models/{model}:batchEmbedContents``,
``:generateContent`` and ``:streamGenerateContent?alt=sse``, the key in the ``key`` query
parameter (never shown in messages). The base can be redirected with
``ServiceContext.extras["provider_urls"]["googleaistudio"]`` or
``SIDECAR_PROVIDER_URL_GOOGLEAISTUDIO``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from yarl import URL

from ..protocol.registry import register
from ..protocol.service import Completion, DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.errors import SERVER_BUSY, ErrorPolicy, stream_error
from ..remote.responses import MalformedResponse, float_vectors, require
from ..remote.service import RemoteService
from ..remote.streams import json_event, sse_events

DEFAULT_BASE = "https://generativelanguage.googleapis.com"
TASK_TYPES = {
    InputType.INGEST: "RETRIEVAL_DOCUMENT",
    InputType.SEARCH: "RETRIEVAL_QUERY",
    InputType.CLASSIFICATION: "CLASSIFICATION",
    InputType.CLUSTERING: "CLUSTERING",
}
POLICY = ErrorPolicy(messages={503: SERVER_BUSY})


def candidate_texts(obj: Any, context: str) -> list[str]:
    """The text parts of every candidate in a Gemini response (Google AI Studio and Vertex AI)."""
    candidates = require(obj, "candidates", list, context)
    texts = []
    for candidate in candidates:
        parts = ((candidate or {}).get("content") or {}).get("parts") or []
        texts.extend(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    return texts


@register
class GoogleAiStudioService(RemoteService):
    name = "googleaistudio"
    display_name = "Google AI Studio"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION)
    streaming_tasks = (TaskType.COMPLETION,)
    default_rpm = {t: 360 for t in task_types}
    configuration = cfg.configuration(
        cfg.model_id(task_types, "ID of the LLM you're using."), cfg.api_key(task_types), cfg.rate_limit(task_types)
    )
    batch_size = 100

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        model_id = ss.string("model_id", required=True)
        if task_type != TaskType.TEXT_EMBEDDING:
            return {"model_id": model_id, "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type))}
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        similarity = common.similarity(ss)
        dimensions = ss.integer("dimensions", positive=True)
        return {
            "model_id": model_id,
            "max_input_tokens": max_input_tokens,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def _url(self, endpoint: Endpoint, method: str, **query: str) -> str:
        model = endpoint.service_settings["model_id"]
        url = URL(f"{self.base_url(DEFAULT_BASE)}/v1/models/{model}:{method}")
        return str(url.with_query({**query, "key": endpoint.secrets.get("api_key", "")}))

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = endpoint.service_settings
        model = settings["model_id"]

        def build(batch: list[str]) -> HttpRequest:
            requests = []
            for text in batch:
                item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
                if settings.get("dimensions") is not None:
                    item["outputDimensionality"] = settings["dimensions"]
                if input_type is not None:
                    item["taskType"] = TASK_TYPES[input_type]
                requests.append(item)
            return HttpRequest(self._url(endpoint, "batchEmbedContents"), json={"requests": requests})

        def parse(obj: Any) -> list[list[float]]:
            context = "Google AI Studio embeddings response"
            items = require(obj, "embeddings", list, context)
            return float_vectors([require(item, "values", list, context) for item in items], context)

        return await self.embed_batches(endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, truncate=True)

    @staticmethod
    def _body(inputs: Sequence[str]) -> dict[str, Any]:
        return {
            "contents": [{"parts": [{"text": text}], "role": "user"} for text in inputs],
            "generationConfig": {"candidateCount": 1},
        }

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        def parse(obj: Any) -> list[Completion]:
            texts = candidate_texts(obj, "Google AI Studio completion response")
            if not texts:
                raise MalformedResponse("Failed to find required field [text] in Google AI Studio completion response")
            return [Completion(texts[0])]

        request = HttpRequest(self._url(endpoint, "generateContent"), json=self._body(inputs))
        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)

    async def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        request = HttpRequest(self._url(endpoint, "streamGenerateContent", alt="sse"), json=self._body(inputs))
        async for event in sse_events(self.lines(endpoint, request, timeout=timeout, policy=POLICY)):
            data = json_event(endpoint, event.data)
            if isinstance(data, dict) and data.get("error"):
                raise stream_error(endpoint, data)
            try:
                texts = candidate_texts(data, "Google AI Studio streamed response")
            except MalformedResponse:
                continue
            if texts:
                yield {"completion": [{"delta": t} for t in texts]}
