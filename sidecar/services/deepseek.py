"""DeepSeek: ``completion`` and ``chat_completion`` (streamed), OpenAI-compatible.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``url`` (default ``https://api.deepseek.com/chat/completions``). DeepSeek asks for no client
side rate limit, so there is none. Without ``url`` the base can be redirected with
``ServiceContext.extras["provider_urls"]["deepseek"]`` or ``SIDECAR_PROVIDER_URL_DEEPSEEK``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

DEFAULT_BASE = "https://api.deepseek.com"
DEFAULT_URL = DEFAULT_BASE + "/chat/completions"


@register
class DeepSeekService(OpenAiStyle):
    name = "deepseek"
    display_name = "DeepSeek"
    task_types = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    configuration = cfg.configuration(
        cfg.model_id(task_types),
        cfg.api_key(
            task_types,
            "The DeepSeek API authentication key. For more details about generating DeepSeek API keys, "
            "refer to https://api-docs.deepseek.com.",
        ),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, default=DEFAULT_URL),
    )
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    max_tokens_field = "max_tokens"

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {"model_id": ss.string("model_id", required=True), "url": common.url(ss)}

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings.get("url") or self.base_url(DEFAULT_BASE) + "/chat/completions"
