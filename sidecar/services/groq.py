"""Groq: ``chat_completion`` (streamed), OpenAI-compatible. Elasticsearch 9.3 and later.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``url`` (default ``https://api.groq.com/openai/v1/chat/completions``), ``organization_id``
(sent as ``Groq-Organization``), ``rate_limit`` (1000 a minute); ``task_settings`` ``user``
(sent in the body) and ``headers`` (added to every request).

Without ``url`` the base can be redirected with ``ServiceContext.extras["provider_urls"]["groq"]``
or ``SIDECAR_PROVIDER_URL_GROQ``.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle, user_and_headers

# The first Elasticsearch version with the service (its ``_services`` lists it from there).
SINCE = (9, 3, 0)
DEFAULT_BASE = "https://api.groq.com"
PATH = "/openai/v1/chat/completions"


@register
class GroqService(OpenAiStyle):
    name = "groq"
    display_name = "Groq"
    since = SINCE
    task_types = (TaskType.CHAT_COMPLETION,)
    streaming_tasks = task_types
    default_rpm = {TaskType.CHAT_COMPLETION: 1000}
    configuration = cfg.configuration(
        cfg.api_key(task_types, "The Groq API key. Generate keys from https://console.groq.com/keys."),
        cfg.model_id(task_types, "The Groq model ID to use for this endpoint."),
        cfg.rate_limit(task_types, "Default number of requests per minute allowed for the Groq API."),
        url=cfg.field(
            "URL", "The absolute URL of the Groq chat completions endpoint.", task_types, default=DEFAULT_BASE + PATH
        ),
        organization_id=cfg.field(
            "Organization ID", "Optional Groq organization identifier to scope API usage.", task_types
        ),
        headers=cfg.field(
            "Custom Headers", "Additional headers to include with Groq requests.", task_types, type="map", updatable=True
        ),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {
            "model_id": ss.string("model_id", required=True),
            "organization_id": ss.string("organization_id"),
            "url": common.url(ss),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return user_and_headers(ts)

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings.get("url") or self.base_url(DEFAULT_BASE) + PATH

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = super().auth_headers(endpoint)
        organization = endpoint.service_settings.get("organization_id")
        if organization:
            headers["Groq-Organization"] = organization
        return headers
