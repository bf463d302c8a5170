"""NVIDIA (NIM and the NVIDIA API catalog): ``text_embedding``, ``rerank``, and
``completion``/``chat_completion`` (streamed). Elasticsearch 9.3 and later.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``url`` (optional, see below), ``rate_limit`` (3000 a minute); embeddings ``dimensions``,
``similarity`` (``dot_product`` unless given), ``max_input_tokens``. Embeddings
``task_settings``: ``input_type`` (``ingest``/``search``, sent as ``passage``/``query``) and
``truncate`` (``none``, ``start``, ``end``).

Default URLs: ``https://integrate.api.nvidia.com/v1/embeddings`` and ``/v1/chat/completions``
(OpenAI's bodies; chat with ``max_tokens`` and no ``stream_options``), and
``https://ai.api.nvidia.com/v1/retrieval/nvidia/reranking`` (``{"model", "query": {"text"},
"passages": [{"text"}]}`` → ``{"rankings": [{"index", "logit"}]}``). Without ``url`` both hosts
can be redirected with ``ServiceContext.extras["provider_urls"]["nvidia"]`` or
``SIDECAR_PROVIDER_URL_NVIDIA``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.openai_style import OpenAiStyle, embeddings_body, parse_embeddings
from ..remote.responses import ranked_docs, require

SINCE = (9, 3, 0)
DEFAULT_BASE = "https://integrate.api.nvidia.com"
RERANK_BASE = "https://ai.api.nvidia.com"
PATHS = {
    "embeddings": "/v1/embeddings",
    "chat": "/v1/chat/completions",
    "rerank": "/v1/retrieval/nvidia/reranking",
}
INPUT_TYPES = {"ingest": "passage", "internal_ingest": "passage", "search": "query", "internal_search": "query"}
TRUNCATIONS = ("none", "start", "end")


@register
class NvidiaService(OpenAiStyle):
    name = "nvidia"
    display_name = "Nvidia"
    since = SINCE
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {t: 3000 for t in task_types}
    # The best batch depends on the (unknown) model: kept small, as Elasticsearch does.
    batch_size = 20
    max_tokens_field = "max_tokens"
    stream_options = False
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types),
        model_id=cfg.field(
            "Model ID",
            "The name of the model to use for the inference task. Refer to the Nvidia models documentation for the "
            "list of available models.",
            task_types,
            required=True,
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        settings = {
            "model_id": ss.string("model_id", required=True),
            "url": common.url(ss),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }
        if task_type != TaskType.TEXT_EMBEDDING:
            return settings
        dimensions = ss.integer("dimensions", positive=True)
        similarity = common.similarity(ss)
        return {
            **settings,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "max_input_tokens": ss.integer("max_input_tokens", positive=True),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type != TaskType.TEXT_EMBEDDING:
            return {}
        return {"input_type": ts.enum("input_type", INPUT_TYPES), "truncate": ts.enum("truncate", TRUNCATIONS)}

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        given = endpoint.service_settings.get("url")
        if given:
            return given
        return self.base_url(RERANK_BASE if kind == "rerank" else DEFAULT_BASE) + PATHS[kind]

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        settings = self.effective_task_settings(endpoint, task_settings)
        kind = input_type.value if input_type is not None else settings.get("input_type") or "ingest"
        truncate = settings.get("truncate")
        model = endpoint.service_settings["model_id"]

        def build(batch: list[str]) -> HttpRequest:
            body = embeddings_body(batch, model, input_type=INPUT_TYPES[kind], truncate=truncate and truncate.upper())
            return self.request(endpoint, "embeddings", body)

        return await self.embed_batches(
            endpoint, inputs, build, parse_embeddings, timeout=timeout, policy=self.policy, truncate=True
        )

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        body = {
            "model": endpoint.service_settings["model_id"],
            "query": {"text": query},
            "passages": [{"text": text} for text in inputs],
        }
        context = "Nvidia rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = require(obj, "rankings", list, context)
            return ranked_docs(items, inputs, context, with_text=False, score_keys=("logit",))

        return await self.call(endpoint, self.request(endpoint, "rerank", body), parse, timeout=timeout, policy=self.policy)
