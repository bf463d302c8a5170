"""Mixedbread: ``rerank``.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``model_id`` (required),
``rate_limit`` (100 a minute, Mixedbread's free tier); there is no ``url`` setting.
``task_settings``: ``top_n`` (positive) and ``return_documents``.

Wire format: ``POST https://api.mixedbread.com/v1/reranking`` with
``{"model", "query", "input": [...], "top_k"?, "return_input"?}`` → ``{"data": [{"index",
"score", "input", "object": "rank_result"}], ...}`` (``input`` is the document's text when
``return_input`` was set, else null). Failures read as Elasticsearch's Mixedbread response
handler has them: 500, 503, 422 and 429 are retried, 402/403/422/503 have their own messages,
any other status (3xx, 502, 504…) is "unsuccessful"; the provider's message is its
``error.message``. The base can be redirected with
``ServiceContext.extras["provider_urls"]["mixedbread"]`` or ``SIDECAR_PROVIDER_URL_MIXEDBREAD``.

Elasticsearch merged this service into its development line for 9.4 and took it out again
before that release (Mixedbread retired the reranking route it called), so no released
Elasticsearch lists it: it is served here but left out of ``GET _inference/_services``.
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
from ..remote.errors import (
    AUTHENTICATION,
    BAD_REQUEST,
    RATE_LIMIT,
    SERVER_ERROR,
    UNSUCCESSFUL,
    ErrorPolicy,
)
from ..remote.responses import ranked_docs, require
from ..remote.service import RemoteService

SINCE = (9, 4, 0)
DEFAULT_BASE = "https://api.mixedbread.com"
PATH = "/v1/reranking"

# Elasticsearch's MixedbreadResponseHandler, status by status.
MESSAGES = {
    500: SERVER_ERROR,
    503: "Service temporarily down for maintenance or overloaded. Retry later.",
    429: RATE_LIMIT,
    422: "Request format is correct but cannot be processed.",
    403: "Valid credentials but insufficient permissions for this resource.",
    402: "Insufficient balance. Top up your account to continue.",
    401: AUTHENTICATION,
    400: BAD_REQUEST,
}


def _prefix(status: int, message: str | None) -> str | None:
    if status == 404:
        return None  # "Resource not found at [url]", as every handler has it
    return MESSAGES.get(status, UNSUCCESSFUL)


def _error_message(body: Any) -> str | None:
    """Elasticsearch's generic ErrorResponse: the ``error.message`` of the body."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


POLICY = ErrorPolicy(
    extract=_error_message,
    refine=_prefix,
    retry_status=frozenset({429, 422, 500, 503}),
    retry_server_errors=False,
    too_large=lambda status, message: False,
)


@register
class MixedbreadService(RemoteService):
    name = "mixedbread"
    display_name = "Mixedbread"
    since = SINCE
    hidden_from_catalogue = True
    task_types = (TaskType.RERANK,)
    default_rpm = {TaskType.RERANK: 100}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        cfg.model_id(task_types, "The model ID to use for Mixedbread requests."),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return {
            "model_id": ss.string("model_id", required=True),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {"return_documents": ts.boolean("return_documents"), "top_n": ts.integer("top_n", positive=True)}

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {"model": endpoint.service_settings["model_id"], "query": query, "input": list(inputs)}
        if settings.get("top_n") is not None:
            body["top_k"] = settings["top_n"]
        if settings.get("return_documents") is not None:
            body["return_input"] = settings["return_documents"]
        url = self.base_url(DEFAULT_BASE) + PATH
        request = HttpRequest(url, json=body, headers={"Authorization": f"Bearer {endpoint.secrets.get('api_key', '')}"})
        context = "Mixedbread rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = require(obj, "data", list, context)
            return ranked_docs(
                items,
                inputs,
                context,
                with_text=bool(settings.get("return_documents")),
                score_keys=("score",),
                text_of=lambda item: item.get("input"),
            )

        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)
