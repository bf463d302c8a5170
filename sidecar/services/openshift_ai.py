"""OpenShift AI (models served by Red Hat OpenShift AI, OpenAI-compatible): ``text_embedding``,
``rerank``, and ``completion``/``chat_completion`` (streamed). Elasticsearch 9.3 and later.

Elasticsearch's settings: ``service_settings`` ``url`` (required: the model's full route),
``api_key`` (secret), ``model_id`` (optional: a served route may need none), ``rate_limit``
(3000 a minute); embeddings ``dimensions`` (sent when set), ``similarity`` (``dot_product``
unless given), ``max_input_tokens``. Rerank ``task_settings``: ``return_documents``, ``top_n``.

Wire formats: OpenAI's embeddings and chat (``max_tokens``, no ``stream_options``); rerank
``{"model"?, "query", "documents", "top_n"?, "return_documents"?}`` → ``results`` of
``{index, relevance_score, document?}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.openai_style import OpenAiStyle
from ..remote.responses import ranked_docs, require

SINCE = (9, 3, 0)


@register
class OpenShiftAiService(OpenAiStyle):
    name = "openshift_ai"
    display_name = "OpenShift AI"
    since = SINCE
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    default_rpm = {t: 3000 for t in task_types}
    batch_size = 2048
    max_tokens_field = "max_tokens"
    stream_options = False
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, required=True),
        model_id=cfg.field("Model ID", cfg.MODEL_ID_DESCRIPTION, task_types),
    )

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        common_part = {
            "model_id": ss.string("model_id"),
            "url": common.url(ss, required=True),
            "rate_limit": common.rate_limit(ss, self.name, self.rpm(task_type)),
        }
        if task_type != TaskType.TEXT_EMBEDDING:
            return common_part
        dimensions = ss.integer("dimensions", positive=True)
        similarity = common.similarity(ss)
        max_input_tokens = ss.integer("max_input_tokens", positive=True)
        if "dimensions_set_by_user" in ss.values:
            ss.values.pop("dimensions_set_by_user")
            ss.error(f"[{ss.scope}] does not allow the setting [dimensions_set_by_user]")
        return {
            **common_part,
            "dimensions": dimensions,
            "similarity": similarity or self.default_similarity,
            "max_input_tokens": max_input_tokens,
            "dimensions_set_by_user": True if dimensions is not None else None,
        }

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type != TaskType.RERANK:
            return {}
        return {"return_documents": ts.boolean("return_documents"), "top_n": ts.integer("top_n", positive=True)}

    def request_url(self, endpoint: Endpoint, kind: str) -> str:
        return endpoint.service_settings["url"]

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        model = endpoint.service_settings.get("model_id")
        body: dict[str, Any] = {"model": model} if model else {}
        body.update(query=query, documents=list(inputs))
        common.put_set(body, settings, "top_n", "return_documents")
        context = "OpenShift AI rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = require(obj, "results", list, context)
            return ranked_docs(items, inputs, context, with_text=bool(settings.get("return_documents")))

        return await self.call(endpoint, self.request(endpoint, "rerank", body), parse, timeout=timeout, policy=self.policy)
