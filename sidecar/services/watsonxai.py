"""IBM watsonx.ai: ``text_embedding``, ``rerank``, ``completion`` and ``chat_completion``
(both streamed).

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``url``, ``api_version``,
``model_id``, ``project_id`` (all required), embeddings ``max_input_tokens``, ``dimensions``,
``similarity`` (default ``dot_product``); ``rate_limit`` (120 a minute). Rerank
``task_settings``: ``truncate_input_tokens``, ``return_documents``, ``top_n``.

Every call first exchanges the API key for an IAM bearer token
(``https://iam.cloud.ibm.com/identity/token``, cached until shortly before it expires; the IAM
base can be redirected with ``ServiceContext.extras["provider_urls"]["watsonxai"]`` or
``SIDECAR_PROVIDER_URL_WATSONXAI``), then calls ``{url}/ml/v1/text/{embeddings|rerank|chat|
chat_stream}?version={api_version}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from yarl import URL

from ..protocol.registry import register
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, RankedDoc, TaskType
from ..protocol.settings import SettingsReader
from ..remote import common_settings as common
from ..remote import configuration as cfg
from ..remote.access_tokens import TokenCache, token_lifetime
from ..remote.client import HttpRequest
from ..remote.openai_style import OpenAiStyle, chat_body
from ..remote.responses import float_vectors, ranked_docs, require

IAM_BASE = "https://iam.cloud.ibm.com"
PATHS = {"embeddings": "embeddings", "rerank": "rerank", "chat": "chat", "chat_stream": "chat_stream"}


@register
class WatsonxAiService(OpenAiStyle):
    name = "watsonxai"
    display_name = "IBM watsonx"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    streaming_tasks = (TaskType.COMPLETION, TaskType.CHAT_COMPLETION)
    # Elasticsearch 9.2 (transport version ml_inference_ibm_watsonx_completion_added, 9115000).
    task_types_since = {TaskType.COMPLETION: (9, 2), TaskType.CHAT_COMPLETION: (9, 2)}
    default_rpm = {t: 120 for t in task_types}
    # Elasticsearch's list has no api_key entry although the key is required; it is listed here
    # so that a form built from this description can create an endpoint.
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.model_id(task_types),
        cfg.max_input_tokens([TaskType.TEXT_EMBEDDING]),
        api_version=cfg.field("API Version", "The IBM watsonx API version ID to use.", task_types, required=True),
        project_id=cfg.field("Project ID", "", task_types, required=True),
        url=cfg.field("URL", "", task_types, required=True),
    )
    batch_size = 1000
    max_tokens_field = "max_tokens"
    stream_options = False
    request_model_wins = False

    def __init__(self, context: Any = None) -> None:
        super().__init__(context)
        self.tokens = TokenCache()

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_id": ss.string("model_id", required=True),
            "project_id": ss.string("project_id", required=True),
            "url": common.url(ss, required=True),
            "api_version": ss.string("api_version", required=True),
        }
        if task_type == TaskType.TEXT_EMBEDDING:
            out["max_input_tokens"] = ss.integer("max_input_tokens", positive=True)
            out["dimensions"] = ss.integer("dimensions", positive=True)
            out["similarity"] = common.similarity(ss) or self.default_similarity
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type != TaskType.RERANK:
            return {}
        return {
            "truncate_input_tokens": ts.integer("truncate_input_tokens", positive=True),
            "return_documents": ts.boolean("return_documents"),
            "top_n": ts.integer("top_n", positive=True),
        }

    # -- IAM -----------------------------------------------------------------------------------
    async def _bearer(self, endpoint: Endpoint) -> dict[str, str]:
        api_key = endpoint.secrets.get("api_key", "")

        async def fetch() -> tuple[str, float]:
            form = f"grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={quote(api_key, safe='')}"
            request = HttpRequest(
                f"{self.base_url(IAM_BASE)}/identity/token",
                data=form.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            )

            def parse(obj: Any) -> tuple[str, float]:
                return require(obj, "access_token", str, "IAM token response"), token_lifetime(obj)

            return await self.http.call(endpoint, request, parse, timeout=None, rate_limited=False)

        token = await self.tokens.get(hashlib.sha256(api_key.encode()).hexdigest(), fetch)
        return {"Authorization": f"Bearer {token}"}

    def request(self, endpoint: Endpoint, kind: str, body: dict[str, Any]) -> HttpRequest:
        settings = endpoint.service_settings
        if kind == "chat" and body.get("stream"):
            kind = "chat_stream"
        body = {**body, "model_id": settings["model_id"], "project_id": settings["project_id"]}
        body.pop("model", None)
        if kind.startswith("chat"):
            body.pop("stream", None)
            body.pop("n", None)
        url = URL(f"{settings['url'].rstrip('/')}/ml/v1/text/{PATHS[kind]}").with_query(
            {"version": settings["api_version"]}
        )

        async def prepare(request: HttpRequest, payload: bytes) -> dict[str, str]:
            return await self._bearer(endpoint)

        return HttpRequest(str(url), json=body, prepare=prepare)

    # -- tasks ---------------------------------------------------------------------------------
    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        def build(batch: list[str]) -> HttpRequest:
            return self.request(endpoint, "embeddings", {"inputs": batch})

        def parse(obj: Any) -> list[list[float]]:
            context = "IBM watsonx embeddings response"
            results = require(obj, "results", list, context)
            return float_vectors([require(r, "embedding", list, context) for r in results], context)

        return await self.embed_batches(endpoint, inputs, build, parse, timeout=timeout, policy=self.policy)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.effective_task_settings(endpoint, task_settings)
        body: dict[str, Any] = {"query": query, "inputs": [{"text": text} for text in inputs]}
        parameters: dict[str, Any] = {}
        if settings.get("truncate_input_tokens") is not None:
            parameters["truncate_input_tokens"] = settings["truncate_input_tokens"]
        options = {}
        if settings.get("return_documents") is not None:
            options["inputs"] = settings["return_documents"]
        if settings.get("top_n") is not None:
            options["top_n"] = settings["top_n"]
        if options:
            parameters["return_options"] = options
        if parameters:
            body["parameters"] = parameters

        def parse(obj: Any) -> list[RankedDoc]:
            context = "IBM watsonx rerank response"
            return ranked_docs(
                require(obj, "results", list, context),
                inputs,
                context,
                with_text=bool(settings.get("return_documents")),
                score_keys=("score",),
                text_of=lambda item: (item.get("input") or {}).get("text"),
            )

        return await self.call(endpoint, self.request(endpoint, "rerank", body), parse, timeout=timeout)

    def chat_request(self, endpoint: Endpoint, request: dict[str, Any], settings: dict[str, Any], stream: bool):
        body = chat_body(
            request, model=None, stream=stream, max_tokens_field=self.max_tokens_field, stream_options=False
        )
        return self.request(endpoint, "chat", body)
