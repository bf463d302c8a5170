"""AlibabaCloud AI Search (``alibabacloud-ai-search``): ``text_embedding``, ``sparse_embedding``,
``rerank`` and ``completion``.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``service_id``, ``host``,
``workspace`` (required), ``http_schema`` (``https`` default, or ``http``), ``rate_limit``
(1000 a minute); embeddings add ``similarity`` (default ``dot_product``), ``dimensions``,
``max_input_tokens``. ``task_settings``: embeddings ``input_type`` (``ingest``, ``search``);
sparse ``input_type`` and ``return_token``; completion ``parameters`` (an object passed through).

Requests go to ``{http_schema}://{host}/v3/openapi/workspaces/{workspace}/
{text-embedding|text-sparse-embedding|ranker|text-generation}/{service_id}`` with a bearer key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import (
    Completion,
    DenseEmbeddings,
    Endpoint,
    InputType,
    RankedDoc,
    SparseEmbedding,
    TaskType,
)
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.responses import MalformedResponse, float_vectors, ranked_docs, require
from ..remote.service import RemoteService

INPUT_TYPES = {"ingest": "document", "search": "query"}
PATHS = {
    TaskType.TEXT_EMBEDDING: "text-embedding",
    TaskType.SPARSE_EMBEDDING: "text-sparse-embedding",
    TaskType.RERANK: "ranker",
    TaskType.COMPLETION: "text-generation",
}


def _result(obj: Any, key: str, context: str) -> Any:
    return require(require(obj, "result", dict, context), key, list, context)


def _by_index(items: list[Any], context: str) -> list[Any]:
    if all(isinstance(i, dict) and isinstance(i.get("index"), int) for i in items):
        return sorted(items, key=lambda i: i["index"])
    raise MalformedResponse(f"Failed to find required field [index] in {context}")


@register
class AlibabaCloudAiSearchService(RemoteService):
    name = "alibabacloud-ai-search"
    display_name = "AlibabaCloud AI Search"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION)
    default_rpm = {t: 1000 for t in task_types}
    configuration = cfg.configuration(
        cfg.api_key(task_types, "A valid API key for the AlibabaCloud AI Search API."),
        cfg.rate_limit(task_types),
        service_id=cfg.field(
            "Project ID", "The name of the model service to use for the {infer} task.", task_types, required=True
        ),
        host=cfg.field(
            "Host",
            "The name of the host address used for the {infer} task. You can find the host address at "
            "https://opensearch.console.aliyun.com/cn-shanghai/rag/api-key[ the API keys section] "
            "of the documentation.",
            task_types,
            required=True,
        ),
        http_schema=cfg.field("HTTP Schema", "", task_types, required=True),
        workspace=cfg.field(
            "Workspace", "The name of the workspace used for the {infer} task.", task_types, required=True
        ),
    )
    batch_size = 32

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        out: dict[str, Any] = {
            "service_id": ss.string("service_id", required=True),
            "host": ss.string("host", required=True),
            "workspace": ss.string("workspace", required=True),
        }
        schema = ss.string("http_schema")
        if schema is not None and schema not in ("https", "http"):
            ss.error("Invalid value for [http_schema]. Must be one of [https, http]")
        out["http_schema"] = schema
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        if task_type == TaskType.TEXT_EMBEDDING:
            out["similarity"] = common.similarity(ss) or self.default_similarity
            out["dimensions"] = ss.integer("dimensions", positive=True)
            out["max_input_tokens"] = ss.integer("max_input_tokens", positive=True)
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.TEXT_EMBEDDING:
            return {"input_type": ts.enum("input_type", INPUT_TYPES)}
        if task_type == TaskType.SPARSE_EMBEDDING:
            return {"input_type": ts.enum("input_type", INPUT_TYPES), "return_token": ts.boolean("return_token")}
        if task_type == TaskType.COMPLETION:
            return {"parameters": ts.mapping("parameters")}
        return {}

    def _request(self, endpoint: Endpoint, body: dict[str, Any]) -> HttpRequest:
        settings = endpoint.service_settings
        url = (
            f"{settings.get('http_schema') or 'https'}://{settings['host']}/v3/openapi/workspaces/"
            f"{settings['workspace']}/{PATHS[endpoint.task_type]}/{settings['service_id']}"
        )
        return HttpRequest(url, json=body, headers={"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"})

    def _inputs_body(
        self, batch: list[str], input_type: InputType | None, settings: dict[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": batch}
        kind = input_type.value if input_type is not None else settings.get("input_type")
        if kind in INPUT_TYPES:
            body["input_type"] = INPUT_TYPES[kind]
        return body

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)

        def build(batch: list[str]) -> HttpRequest:
            return self._request(endpoint, self._inputs_body(batch, input_type, settings))

        def parse(obj: Any) -> list[list[float]]:
            context = "AlibabaCloud Search embeddings response"
            items = _by_index(_result(obj, "embeddings", context), context)
            return float_vectors([require(i, "embedding", list, context) for i in items], context)

        return await self.embed_batches(endpoint, inputs, build, parse, timeout=timeout)

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        settings = self.effective_task_settings(endpoint, task_settings)

        def build(batch: list[str]) -> HttpRequest:
            body = self._inputs_body(batch, input_type, settings)
            if settings.get("return_token") is not None:
                body["return_token"] = settings["return_token"]
            return self._request(endpoint, body)

        def parse(obj: Any) -> list[dict[str, float]]:
            context = "AlibabaCloud Search sparse embeddings response"
            out = []
            for item in _by_index(_result(obj, "sparse_embeddings", context), context):
                tokens: dict[str, float] = {}
                for token in require(item, "embedding", list, context):
                    name = token.get("token") if "token" in token else token.get("token_id")
                    weight = float(require(token, "weight", float, context))
                    if name is None or str(name) == "" or "." in str(name) or weight <= 0:
                        continue
                    tokens[str(name)] = weight
                out.append(tokens)
            return out

        pairs = await self.run_batches(endpoint, inputs, build, parse, timeout=timeout)
        return [SparseEmbedding(tokens=tokens) for tokens, _ in pairs]

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        top_n = settings.get("top_n")
        with_text = bool(settings.get("return_documents"))

        def parse(obj: Any) -> list[RankedDoc]:
            context = "AlibabaCloud Search rerank response"
            items = _result(obj, "scores", context)
            return ranked_docs(items, inputs, context, with_text=with_text, score_keys=("score",), top_n=top_n)

        request = self._request(endpoint, {"query": query, "docs": list(inputs)})
        return await self.call(endpoint, request, parse, timeout=timeout)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {"messages": [{"role": "user", "content": text} for text in inputs]}
        if settings.get("parameters"):
            body["parameters"] = settings["parameters"]

        def parse(obj: Any) -> list[Completion]:
            context = "AlibabaCloud Search completion response"
            return [Completion(require(require(obj, "result", dict, context), "text", str, context))]

        return await self.call(endpoint, self._request(endpoint, body), parse, timeout=timeout)
