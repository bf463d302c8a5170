"""Llama (a Llama Stack server): ``text_embedding``, and ``completion``/``chat_completion``
(streamed). Elasticsearch 9.2 and later.

Elasticsearch's settings: ``service_settings`` ``url`` and ``model_id`` (both required),
``api_key`` (secret, optional: a Llama Stack server may run without authentication; sent as a
bearer token when given), ``rate_limit`` (3000 a minute); embeddings ``dimensions``,
``similarity`` (``cosine`` unless given), ``max_input_tokens``.

Wire formats: embeddings ``{"model_id", "contents": [...]}`` → ``{"embeddings": [[...], ...]}``
(or a bare list of vectors), at most 20 texts a call; chat the OpenAI body with ``max_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.openai_style import OpenAiStyle
from .hugging_face import parse_embeddings

SINCE = (9, 2, 0)


@register
class LlamaService(OpenAiStyle):
    name = "llama"
    display_name = "Llama"
    since = SINCE
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {t: 3000 for t in task_types}
    default_similarity = "cosine"
    # The best batch depends on the unknown hardware behind the server: kept small.
    batch_size = 20
    max_tokens_field = "max_tokens"
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, required=True),
        model_id=cfg.field(
            "Model", "Refer to the Llama models documentation for the list of available models.", task_types, required=True
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        model_id = ss.string("model_id", required=True)
        url = common.url(ss, required=True)
        if task_type != TaskType.TEXT_EMBEDDING:
            return {"model_id": model_id, "url": url, "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type))}
        dimensions = ss.integer("dimensions", positive=True)
        similarity = common.similarity(ss)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        return {
            "model_id": model_id,
            "url": url,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "max_input_tokens": max_input_tokens,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        # Elasticsearch takes "nothing left" as "no authentication"; anything else left over
        # is read as secret settings, which then need their api_key.
        if "api_key" not in ss.values and not ss.values:
            return {}
        return common.secrets(ss)

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings["url"]

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        key = endpoint.secrets.get("api_key")
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        model = endpoint.service_settings["model_id"]

        def build(batch: list[str]) -> HttpRequest:
            return self.request(endpoint, "embeddings", {"model_id": model, "contents": batch})

        return await self.embed_batches(
            endpoint, inputs, build, parse_embeddings, timeout=timeout, policy=self.policy, truncate=True
        )
