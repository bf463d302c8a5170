"""Contextual AI: ``rerank`` (instruction-following reranker).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (optional),
``url`` (default ``https://api.contextual.ai/v1/rerank``), ``rate_limit`` (1000 a minute);
``task_settings`` ``top_n``, ``return_documents``, ``instruction``.

Wire format: ``{"query", "model", "top_n"?, "instruction"?, "documents"}`` → ``results`` of
``{index, relevance_score}``. Without ``url`` the base can be redirected with
``ServiceContext.extras["provider_urls"]["contextualai"]`` or ``SIDECAR_PROVIDER_URL_CONTEXTUALAI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.client import HttpRequest
from ..remote.responses import ranked_docs, require
from ..remote.service import RemoteService

SINCE = (9, 4, 0)
DEFAULT_BASE = "https://api.contextual.ai"
PATH = "/v1/rerank"


@register
class ContextualAiService(RemoteService):
    name = "contextualai"
    display_name = "Contextual AI"
    since = SINCE
    task_types = (TaskType.RERANK,)
    default_rpm = {TaskType.RERANK: 1000}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        model_id=cfg.field("Model ID", cfg.MODEL_ID_DESCRIPTION, task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, default=DEFAULT_BASE + PATH),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {
            "url": common.url(ss),
            "model_id": ss.string("model_id"),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {
            "top_n": ts.integer("top_n", positive=True),
            "return_documents": ts.boolean("return_documents"),
            "instruction": ts.string("instruction"),
        }

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {"query": query, "model": endpoint.service_settings.get("model_id")}
        common.put_set(body, settings, "top_n", "instruction")
        body["documents"] = list(inputs)
        url = endpoint.service_settings.get("url") or self.base_url(DEFAULT_BASE) + PATH
        request = HttpRequest(url, json=body, headers={"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"})
        context = "Contextual AI rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = require(obj, "results", list, context)
            return ranked_docs(items, inputs, context, with_text=bool(settings.get("return_documents")))

        return await self.call(endpoint, request, parse, timeout=timeout)
