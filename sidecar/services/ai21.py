"""AI21: ``completion`` and ``chat_completion`` (both streamed), OpenAI-shaped. Elasticsearch
9.2 and later.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``rate_limit`` (200 a minute: AI21 allows 10 requests a second). No task settings.

Requests go to ``https://api.ai21.com/studio/v1/chat/completions`` (chat body with
``max_tokens``); the base can be redirected with
``ServiceContext.extras["provider_urls"]["ai21"]`` or ``SIDECAR_PROVIDER_URL_AI21``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

SINCE = (9, 2, 0)
DEFAULT_BASE = "https://api.ai21.com"
PATH = "/studio/v1/chat/completions"


@register
class Ai21Service(OpenAiStyle):
    name = "ai21"
    display_name = "AI21"
    since = SINCE
    task_types = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = task_types
    default_rpm = {t: 200 for t in task_types}
    max_tokens_field = "max_tokens"
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        model_id=cfg.field(
            "Model",
            "Refer to the AI21 models documentation for the list of available inference models.",
            task_types,
            required=True,
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {
            "model_id": ss.string("model_id", required=True),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return self.base_url(DEFAULT_BASE) + PATH
