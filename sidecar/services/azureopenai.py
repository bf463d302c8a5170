"""Azure OpenAI: ``text_embedding``, ``completion`` (streamed) and, from Elasticsearch 9.2,
``chat_completion`` (streamed, OpenAI's chat completions body without ``model``).

Elasticsearch's settings: ``service_settings`` ``resource_name``, ``deployment_id``,
``api_version`` (all required), exactly one of ``api_key`` / ``entra_id`` (secrets), embeddings
``dimensions`` (sent only when set), ``similarity`` (default ``dot_product``),
``max_input_tokens``; ``rate_limit`` (1440 a minute for embeddings, 120 for completion and
chat completion).
``task_settings``: ``user``.

Requests go to ``https://{resource_name}.openai.azure.com/openai/deployments/{deployment_id}/
{embeddings|chat/completions}?api-version={api_version}`` with an ``api-key`` header (or
``Authorization: Bearer <entra_id>``). The ``https://{resource_name}.openai.azure.com`` part
can be replaced with ``ServiceContext.extras["provider_urls"]["azureopenai"]`` or
``SIDECAR_PROVIDER_URL_AZUREOPENAI``.
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from ..errors import validation
from ..protocol.registry import register
from ..protocol.service import Endpoint, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle

PATHS = {"embeddings": "embeddings", "chat": "chat/completions"}
ONE_OF_SECRETS = "You must provide either an API key or an Entra ID."


@register
class AzureOpenAiService(OpenAiStyle):
    name = "azureopenai"
    display_name = "Azure OpenAI"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    task_types_since = {TaskType.CHAT_COMPLETION: (9, 2)}
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    secret_keys = ("api_key", "entra_id")
    default_rpm = {TaskType.TEXT_EMBEDDING: 1440, TaskType.COMPLETION: 120, TaskType.CHAT_COMPLETION: 120}
    configuration = cfg.configuration(
        cfg.rate_limit(
            task_types,
            "The azureopenai service sets a default number of requests allowed per minute depending on the task type.",
        ),
        resource_name=cfg.field("Resource Name", "The name of your Azure OpenAI resource.", task_types, required=True),
        api_version=cfg.field("API Version", "The Azure API version ID to use.", task_types, required=True),
        deployment_id=cfg.field(
            "Deployment ID", "The deployment name of your deployed models.", task_types, required=True
        ),
        # Exactly one of the two is needed, so neither is required on its own.
        api_key=cfg.secret("API Key", ONE_OF_SECRETS, task_types, required=False),
        entra_id=cfg.secret("Entra ID", ONE_OF_SECRETS, task_types, required=False),
    )
    batch_size = 16
    request_model_wins = False

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resource_name": ss.string("resource_name", required=True),
            "deployment_id": ss.string("deployment_id", required=True),
            "api_version": ss.string("api_version", required=True),
        }
        if task_type == TaskType.TEXT_EMBEDDING:
            out.update(common.embedding_fields(ss, self.default_similarity))
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {"user": ts.string("user")}

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        found = common.secrets(ss, required=(), optional=("api_key", "entra_id"))
        if not found:
            raise validation("[secret_settings] must have either the [api_key] or the [entra_id] key set")
        if len(found) > 1:
            raise validation("[secret_settings] must have only one of the [api_key] or the [entra_id] key set")
        return found

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        settings = endpoint.service_settings
        base = self.base_url(f"https://{settings['resource_name']}.openai.azure.com")
        url = URL(f"{base}/openai/deployments/{settings['deployment_id']}/{PATHS[kind]}")
        return str(url.with_query({"api-version": settings["api_version"]}))

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        if "api_key" in endpoint.secrets:
            return {"api-key": endpoint.secrets["api_key"]}
        return {"Authorization": f"Bearer {endpoint.secrets.get('entra_id', '')}"}

    def model_for(self, endpoint: Endpoint) -> str | None:
        return None
