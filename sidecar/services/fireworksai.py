"""Fireworks AI: ``text_embedding`` through its OpenAI-compatible embeddings API.
Elasticsearch 9.4 and later.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``url`` (default ``https://api.fireworks.ai/inference/v1/embeddings``), ``dimensions`` (sent
only when set: some models take it), ``similarity`` (``cosine`` unless given),
``max_input_tokens``, ``rate_limit`` (6000 a minute); ``task_settings`` ``user``. At most 256
texts a call (the limit of Fireworks' embeddings server).

Without ``url`` the base can be redirected with
``ServiceContext.extras["provider_urls"]["fireworksai"]`` or ``SIDECAR_PROVIDER_URL_FIREWORKSAI``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

SINCE = (9, 4, 0)
DEFAULT_BASE = "https://api.fireworks.ai"
PATH = "/inference/v1/embeddings"


@register
class FireworksAiService(OpenAiStyle):
    name = "fireworksai"
    display_name = "FireworksAI"
    since = SINCE
    task_types = (TaskType.TEXT_EMBEDDING,)
    default_rpm = {TaskType.TEXT_EMBEDDING: 6000}
    default_similarity = "cosine"
    batch_size = 256
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        model_id=cfg.field("Model ID", "The model ID to use for FireworksAI requests.", task_types, required=True),
        dimensions=cfg.field(
            "Dimensions",
            "The number of dimensions the resulting output embeddings should have. Only supported by some models. "
            "For more information refer to https://docs.fireworks.ai/guides/querying-embeddings-models.",
            task_types,
            type="int",
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        url = common.url(ss)
        similarity = common.similarity(ss)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        dimensions = ss.integer("dimensions", positive=True)
        return {
            "model_id": ss.string("model_id", required=True),
            "url": url,
            "similarity": similarity or self.default_similarity,
            "dimensions": dimensions,
            "max_input_tokens": max_input_tokens,
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
            "dimensions_set_by_user": True if dimensions is not None else None,
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {"user": ts.string("user")}

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings.get("url") or self.base_url(DEFAULT_BASE) + PATH
