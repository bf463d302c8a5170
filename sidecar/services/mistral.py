"""Mistral: ``text_embedding``, and ``completion``/``chat_completion`` (streamed).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model`` (required —
``model``, not ``model_id``), embeddings ``dimensions``, ``similarity`` (default
``dot_product``), ``max_input_tokens``; ``rate_limit`` (240 a minute).

Requests go to ``https://api.mistral.ai/v1/embeddings`` (``{"model", "input",
"encoding_format": "float"}``) and ``/v1/chat/completions``; the base can be redirected with
``ServiceContext.extras["provider_urls"]["mistral"]`` or ``SIDECAR_PROVIDER_URL_MISTRAL``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

DEFAULT_BASE = "https://api.mistral.ai"
PATHS = {"embeddings": "/v1/embeddings", "chat": "/v1/chat/completions"}


@register
class MistralService(OpenAiStyle):
    name = "mistral"
    display_name = "Mistral"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {t: 240 for t in task_types}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.model_id(
            task_types,
            "Refer to the Mistral models documentation for the list of available text embedding models.",
            key="model",
        ),
        cfg.rate_limit(task_types),
        cfg.max_input_tokens(task_types),
    )
    batch_size = 16
    max_tokens_field = "max_tokens"

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        model = ss.string("model", required=True)
        if task_type != TaskType.TEXT_EMBEDDING:
            return {"model": model, "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type))}
        dimensions = ss.integer("dimensions", positive=True)
        similarity = common.similarity(ss)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        return {
            "model": model,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "max_input_tokens": max_input_tokens,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return self.base_url(DEFAULT_BASE) + PATHS[kind]

    def model_for(self, endpoint: Endpoint) -> str | None:
        return endpoint.service_settings.get("model")

    def embeddings_extra(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        return {"encoding_format": "float"}
