"""Hugging Face Inference Endpoints: ``text_embedding``, ``sparse_embedding`` (ELSER),
``rerank``, and ``completion``/``chat_completion`` (streamed) through an OpenAI-compatible URL.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret) and ``url`` (required, the
endpoint's URL; chat tasks point at ``…/v1/chat/completions``); text embeddings add
``similarity`` (default ``cosine``), ``dimensions``, ``max_input_tokens``; chat tasks add an
optional ``model_id``; every task has ``rate_limit`` (3000 a minute). Rerank
``task_settings``: ``return_documents``, ``top_n``.

Wire formats: embeddings ``{"inputs": [...]}`` → ``[[...], ...]`` or ``{"embeddings": [...]}``;
ELSER the same body → ``[{"token": weight, ...}, ...]``; rerank (text-embeddings-inference)
``{"texts", "query", "return_text", "top_n"}`` → ``[{"index", "score", "text"}]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, RankedDoc, SparseEmbedding, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.errors import RATE_LIMIT, UNSUCCESSFUL, ErrorPolicy
from ..remote.openai_style import OpenAiStyle
from ..remote.responses import MalformedResponse, float_vectors, ranked_docs
from ..remote.service import RemoteService

# Elasticsearch's HuggingFaceResponseHandler (the chat tasks use OpenAI's).
POLICY = ErrorPolicy(messages={502: RATE_LIMIT, 503: RATE_LIMIT, 403: UNSUCCESSFUL, 404: UNSUCCESSFUL})

ELSER_TOKEN_LIMIT = 512


def bearer(endpoint: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"}


def parse_embeddings(obj: Any) -> list[list[float]]:
    context = "Hugging Face embeddings response"
    rows = obj.get("embeddings") if isinstance(obj, dict) else obj
    if rows is None:
        raise MalformedResponse(f"Failed to find required field [embeddings] in {context}")
    return float_vectors(rows, context)


def parse_sparse(obj: Any) -> list[dict[str, float]]:
    context = "Hugging Face ELSER response"
    if not isinstance(obj, list):
        raise MalformedResponse(f"Expected a list of token weights in {context}")
    out = []
    for item in obj:
        if not isinstance(item, dict) or not all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in item.values()
        ):
            raise MalformedResponse(f"Expected an object of token weights in {context}")
        out.append({str(k): float(v) for k, v in item.items()})
    return out


async def sparse_embed(
    service: RemoteService, endpoint: Endpoint, inputs: Sequence[str], timeout: float | None
) -> list[SparseEmbedding]:
    """ELSER on a Hugging Face endpoint (shared by ``hugging_face`` and ``hugging_face_elser``)."""

    def build(batch: list[str]) -> HttpRequest:
        return HttpRequest(endpoint.service_settings["url"], json={"inputs": batch}, headers=bearer(endpoint))

    pairs = await service.run_batches(
        endpoint, inputs, build, parse_sparse, timeout=timeout, policy=POLICY, truncate=True
    )
    return [SparseEmbedding(tokens=tokens, is_truncated=cut) for tokens, cut in pairs]


def elser_settings(service: RemoteService, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
    return {
        "url": common.url(ss, required=True),
        "max_input_tokens": ELSER_TOKEN_LIMIT,
        "rate_limit": common.rate_limit(ss, service.name, service.rpm(task_type)),
    }


@register
class HuggingFaceService(OpenAiStyle):
    name = "hugging_face"
    display_name = "Hugging Face"
    task_types = (
        TaskType.TEXT_EMBEDDING,
        TaskType.SPARSE_EMBEDDING,
        TaskType.RERANK,
        TaskType.COMPLETION,
        TaskType.CHAT_COMPLETION,
    )
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {t: 3000 for t in task_types}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, required=True),
    )
    default_similarity = "cosine"
    batch_size = 20
    max_tokens_field = "max_tokens"
    request_model_wins = False

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.SPARSE_EMBEDDING:
            return elser_settings(self, task_type, ss)
        if task_type in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION):
            model_id = ss.string("model_id")
            url = common.url(ss, required=True)
            return {"model_id": model_id, "url": url, "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type))}
        url = common.url(ss, required=True)
        if task_type == TaskType.RERANK:
            return {"url": url, "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type))}
        similarity = common.similarity(ss)
        dimensions = ss.integer("dimensions", positive=True)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        return {
            "url": url,
            "similarity": similarity or self.default_similarity,
            "dimensions": dimensions,
            "max_input_tokens": max_input_tokens,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.RERANK:
            return {"return_documents": ts.boolean("return_documents"), "top_n": ts.integer("top_n", positive=True)}
        return {}

    # -- OpenAI-compatible chat ----------------------------------------------------------------
    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings["url"]

    # -- Hugging Face formats ------------------------------------------------------------------
    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        def build(batch: list[str]) -> HttpRequest:
            return HttpRequest(endpoint.service_settings["url"], json={"inputs": batch}, headers=bearer(endpoint))

        return await self.embed_batches(
            endpoint, inputs, build, parse_embeddings, timeout=timeout, policy=POLICY, truncate=True
        )

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        return await sparse_embed(self, endpoint, inputs, timeout)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {"texts": list(inputs), "query": query}
        if settings.get("return_documents") is not None:
            body["return_text"] = settings["return_documents"]
        top_n = settings.get("top_n")
        if top_n is not None:
            body["top_n"] = top_n

        def parse(obj: Any) -> list[RankedDoc]:
            return ranked_docs(
                obj,
                inputs,
                "Hugging Face rerank response",
                with_text=bool(settings.get("return_documents")),
                score_keys=("score", "relevance_score"),
                top_n=top_n,
            )

        request = HttpRequest(endpoint.service_settings["url"], json=body, headers=bearer(endpoint))
        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)
