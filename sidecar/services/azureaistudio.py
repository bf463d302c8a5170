"""Azure AI Studio (Azure AI Foundry deployments): ``text_embedding``, ``completion``
(streamed) and, from Elasticsearch 9.2, ``rerank`` (Cohere rerank deployments).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``target`` (the deployment
URL), ``provider`` (``openai``, ``cohere``, ``mistral``, ``meta``, ``microsoft_phi``,
``databricks``), ``endpoint_type`` (``token`` or ``realtime``) — all required; embeddings
``dimensions``, ``similarity`` (default ``dot_product``), ``max_input_tokens``; ``rate_limit``
(240 a minute). ``task_settings``: embeddings ``user``; completion ``do_sample``,
``max_new_tokens``, ``temperature``, ``top_p`` (0–2); rerank ``return_documents``, ``top_n``.

Requests go to ``target`` itself for the ``openai`` provider and realtime endpoints, otherwise
to ``target`` + ``/v1/embeddings`` or ``/v1/chat/completions``; rerank always to ``target`` +
``/v1/rerank`` (``{"documents", "query", "return_documents"?, "top_n"?}``, answered with Cohere's
``results`` of ``{index, relevance_score, document?: {text}}``). Auth: ``api-key`` header for
``openai``, ``Authorization: Bearer`` for realtime endpoints, ``Authorization: <key>`` otherwise.

Streaming works as in Elasticsearch for both endpoint types: the body (``messages`` for token
endpoints, ``input_data`` for realtime ones) gets ``"stream": true`` at its top level and the
answer is read as OpenAI-style server-sent ``chat.completion.chunk`` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Completion, Endpoint, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.common_settings import put_set
from ..remote.openai_style import OpenAiStyle, parse_completion, user_messages
from ..remote.responses import ranked_docs, require

PROVIDERS = ("openai", "mistral", "meta", "microsoft_phi", "cohere", "databricks")
ENDPOINT_TYPES = ("token", "realtime")
# (task, provider) -> endpoint types Elasticsearch allows.
CAPABILITIES: dict[tuple[TaskType, str], tuple[str, ...]] = {
    (TaskType.TEXT_EMBEDDING, "openai"): ("token",),
    (TaskType.TEXT_EMBEDDING, "cohere"): ("token",),
    (TaskType.COMPLETION, "openai"): ("token",),
    (TaskType.COMPLETION, "cohere"): ("token",),
    (TaskType.COMPLETION, "mistral"): ("token", "realtime"),
    (TaskType.COMPLETION, "meta"): ("token", "realtime"),
    (TaskType.COMPLETION, "microsoft_phi"): ("token", "realtime"),
    (TaskType.COMPLETION, "databricks"): ("realtime",),
    (TaskType.RERANK, "cohere"): ("token",),
}
PATHS = {"embeddings": "/v1/embeddings", "chat": "/v1/chat/completions", "rerank": "/v1/rerank"}


@register
class AzureAiStudioService(OpenAiStyle):
    name = "azureaistudio"
    display_name = "Azure AI Studio"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION, TaskType.RERANK)
    task_types_since = {TaskType.RERANK: (9, 2)}
    streaming_tasks = (TaskType.COMPLETION,)
    default_rpm = {t: 240 for t in task_types}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        target=cfg.field(
            "Target", "The target URL of your Azure AI Studio model deployment.", task_types, required=True
        ),
        endpoint_type=cfg.field(
            "Endpoint Type", "Specifies the type of endpoint that is used in your model deployment.", task_types,
            required=True,
        ),
        provider=cfg.field("Provider", "The model provider for your deployment.", task_types, required=True),
    )
    request_model_wins = False

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        target = common.url(ss, "target", required=True)
        provider = ss.enum("provider", PROVIDERS, required=True)
        endpoint_type = ss.enum("endpoint_type", ENDPOINT_TYPES, required=True)
        if provider and endpoint_type:
            allowed = CAPABILITIES.get((task_type, provider))
            if allowed is None:
                ss.error(f"The [{task_type.value}] task type for provider [{provider}] is not available")
            elif endpoint_type not in allowed:
                ss.error(
                    f"The [{endpoint_type}] endpoint type with [{task_type.value}] task type for provider "
                    f"[{provider}] is not available"
                )
        out: dict[str, Any] = {"target": target, "provider": provider, "endpoint_type": endpoint_type}
        if task_type == TaskType.TEXT_EMBEDDING:
            out.update(common.embedding_fields(ss, self.default_similarity))
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type == TaskType.TEXT_EMBEDDING:
            return {"user": ts.string("user")}
        if task_type == TaskType.RERANK:
            return {"return_documents": ts.boolean("return_documents"), "top_n": ts.integer("top_n", positive=True)}
        out = {
            "do_sample": ts.boolean("do_sample"),
            "max_new_tokens": ts.integer("max_new_tokens", positive=True),
            "temperature": ts.number("temperature"),
            "top_p": ts.number("top_p"),
        }
        for key in ("temperature", "top_p"):
            value = out[key]
            if value is not None and not 0.0 <= value <= 2.0:
                bound = "greater than or equal to [0.0]" if value < 0 else "less than or equal to [2.0]"
                ts.error(f"[task_settings] Invalid value [{value}]. [{key}] must be a {bound}")
        return out

    # -- OpenAI-shaped parts ---------------------------------------------------------------------
    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        settings = endpoint.service_settings
        target = settings["target"]
        if kind == "rerank":
            return target + PATHS[kind]
        if settings["provider"] == "openai" or settings["endpoint_type"] == "realtime":
            return target
        return target.rstrip("/") + PATHS[kind]

    def auth_headers(self, endpoint: Endpoint) -> dict[str, str]:
        key = endpoint.secrets.get("api_key", "")
        settings = endpoint.service_settings
        if settings["provider"] == "openai":
            return {"api-key": key}
        if settings["endpoint_type"] == "realtime":
            return {"Authorization": f"Bearer {key}"}
        return {"Authorization": key}

    def model_for(self, endpoint: Endpoint) -> str | None:
        return None


    # -- completion ----------------------------------------------------------------------------
    def _completion_request(
        self, endpoint: Endpoint, inputs: Sequence[str], settings: dict[str, Any], stream: bool
    ) -> HttpRequest:
        parameters = {k: settings[k] for k in ("temperature", "top_p", "do_sample", "max_new_tokens") if k in settings}
        messages = user_messages(inputs)
        if endpoint.service_settings["endpoint_type"] == "token":
            body: dict[str, Any] = {"messages": messages}
            if parameters:
                body["parameters"] = parameters
        else:
            data: dict[str, Any] = {"input_string": messages}
            if parameters:
                data["parameters"] = parameters
            body = {"input_data": data}
        if stream:
            body["stream"] = True
        return self.request(endpoint, "chat", body)

    def chat_request(self, endpoint: Endpoint, request: dict[str, Any], settings: dict[str, Any], stream: bool):
        inputs = [m["content"] for m in request["messages"]]
        return self._completion_request(endpoint, inputs, settings, stream)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        settings = self.effective_task_settings(endpoint, task_settings)
        realtime = endpoint.service_settings["endpoint_type"] == "realtime"

        def parse(obj: Any) -> list[Completion]:
            if realtime:
                return [Completion(require(obj, "output", str, "Azure AI Studio realtime response"))]
            return [Completion(parse_completion(obj, "Azure AI Studio chat completions response"))]

        request = self._completion_request(endpoint, inputs, settings, stream=False)
        return await self.call(endpoint, request, parse, timeout=timeout, policy=self.policy)

    # -- rerank ----------------------------------------------------------------------------------
    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body = put_set({"documents": list(inputs), "query": query}, settings, "return_documents", "top_n")
        context = "Azure AI Studio rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = require(obj, "results", list, context)
            return ranked_docs(items, inputs, context, with_text=bool(settings.get("return_documents")))

        return await self.call(endpoint, self.request(endpoint, "rerank", body), parse, timeout=timeout, policy=self.policy)
