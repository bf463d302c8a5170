"""Amazon Bedrock: ``text_embedding`` (InvokeModel) and ``completion`` (Converse API).

Elasticsearch's settings: secrets ``access_key`` and ``secret_key``; ``service_settings``
``region``, ``provider``, ``model`` (all required), embeddings ``dimensions``, ``similarity``,
``max_input_tokens``; ``rate_limit`` (240 a minute). Completion ``task_settings``:
``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``.

Providers: ``amazontitan`` and ``cohere`` embed; ``anthropic``, ``ai21labs``, ``amazontitan``,
``cohere``, ``meta`` and ``mistral`` complete. Requests are signed with AWS Signature V4
(botocore's signer) for the ``bedrock`` service and go to
``https://bedrock-runtime.{region}.amazonaws.com/model/{model}/{invoke|converse}``; that base
can be replaced with ``ServiceContext.extras["provider_urls"]["amazonbedrock"]`` or
``SIDECAR_PROVIDER_URL_AMAZONBEDROCK``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ..errors import status_exception
from . import _common as common
from .base import Completion, DenseEmbeddings, Endpoint, InputType, TaskType
from .http import ErrorPolicy, HttpRequest, MalformedResponse, RemoteService, float_vectors, require
from .registry import register
from .settings import SettingsReader

PROVIDERS = ("amazontitan", "cohere", "anthropic", "ai21labs", "meta", "mistral")
EMBEDDING_PROVIDERS = ("amazontitan", "cohere")
COHERE_INPUT_TYPES = {
    InputType.INGEST: "search_document",
    InputType.SEARCH: "search_query",
    InputType.CLASSIFICATION: "classification",
    InputType.CLUSTERING: "clustering",
}
# Elasticsearch's defaults per embedding provider.
DEFAULT_SIMILARITY = {"amazontitan": "cosine", "cohere": "dot_product"}
POLICY = ErrorPolicy()


@register
class AmazonBedrockService(RemoteService):
    name = "amazonbedrock"
    display_name = "Amazon Bedrock"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.COMPLETION)
    secret_keys = ("access_key", "secret_key")
    default_rpm = {t: 240 for t in task_types}

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        region = ss.string("region", required=True)
        model = ss.string("model", required=True)
        provider = ss.enum("provider", PROVIDERS, required=True)
        if provider and task_type == TaskType.TEXT_EMBEDDING and provider not in EMBEDDING_PROVIDERS:
            ss.error(f"The [{task_type.value}] task type for provider [{provider}] is not available")
        out: dict[str, Any] = {"region": region, "model": model, "provider": provider}
        if task_type == TaskType.TEXT_EMBEDDING:
            out.update(common.embedding_fields(ss, DEFAULT_SIMILARITY.get(provider or "", "cosine")))
        out["rate_limit"] = common.rate_limit(ss, self.name, self.rpm(task_type))
        return out

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        if task_type != TaskType.COMPLETION:
            return {}
        return {
            "max_new_tokens": ts.integer("max_new_tokens", positive=True),
            "temperature": ts.number("temperature"),
            "top_p": ts.number("top_p"),
            "top_k": ts.number("top_k"),
        }

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        return common.secrets(ss, required=("access_key", "secret_key"))

    # -- requests ----------------------------------------------------------------------------
    def _request(self, endpoint: Endpoint, action: str, body: dict[str, Any]) -> HttpRequest:
        settings = endpoint.service_settings
        region = settings["region"]
        base = self.base_url(f"https://bedrock-runtime.{region}.amazonaws.com")
        url = f"{base}/model/{quote(settings['model'], safe='')}/{action}"

        async def sign(request: HttpRequest, payload: bytes) -> dict[str, str]:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials

            aws = AWSRequest(method=request.method, url=request.url, data=payload, headers=dict(request.headers))
            credentials = Credentials(endpoint.secrets.get("access_key", ""), endpoint.secrets.get("secret_key", ""))
            SigV4Auth(credentials, "bedrock", region).add_auth(aws)
            return {k: v for k, v in aws.headers.items() if k.lower() in ("authorization", "x-amz-date")}

        return HttpRequest(
            url,
            json=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            prepare=sign,
            encoded=True,
        )

    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        provider = endpoint.service_settings["provider"]
        context = "Amazon Bedrock embeddings response"
        if provider == "cohere":

            def build(batch: list[str]) -> HttpRequest:
                kind = COHERE_INPUT_TYPES.get(input_type, "search_document") if input_type else "search_document"
                return self._request(endpoint, "invoke", {"texts": batch, "input_type": kind})

            def parse(obj: Any) -> list[list[float]]:
                return float_vectors(require(obj, "embeddings", list, context), context)

            batch_size = 96
        else:
            settings = endpoint.service_settings

            def build(batch: list[str]) -> HttpRequest:
                body: dict[str, Any] = {"inputText": batch[0]}
                if settings.get("dimensions_set_by_user"):
                    body["dimensions"] = settings["dimensions"]
                return self._request(endpoint, "invoke", body)

            def parse(obj: Any) -> list[list[float]]:
                return float_vectors([require(obj, "embedding", list, context)], context)

            batch_size = 1  # Titan embeds one text per call
        return await self.embed_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=POLICY, batch_size=batch_size
        )

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        if endpoint.service_settings.get("provider") not in PROVIDERS:
            raise status_exception(400, "Unknown Amazon Bedrock provider")
        settings = self.effective_task_settings(endpoint, task_settings)
        config: dict[str, Any] = {}
        for key, name in (("max_new_tokens", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
            if settings.get(key) is not None:
                config[name] = settings[key]
        body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": text} for text in inputs]}]}
        if config:
            body["inferenceConfig"] = config
        if settings.get("top_k") is not None:
            body["additionalModelRequestFields"] = {"top_k": settings["top_k"]}

        def parse(obj: Any) -> list[Completion]:
            context = "Amazon Bedrock converse response"
            message = require(require(obj, "output", dict, context), "message", dict, context)
            texts = [c["text"] for c in require(message, "content", list, context) if isinstance(c, dict) and "text" in c]
            if not texts or not all(isinstance(t, str) for t in texts):
                raise MalformedResponse(f"Failed to find required field [text] in {context}")
            return [Completion("".join(texts))]

        return await self.call(endpoint, self._request(endpoint, "converse", body), parse, timeout=timeout, policy=POLICY)
