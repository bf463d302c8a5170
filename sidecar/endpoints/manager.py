"""The Inference API's core: create, read, update, delete and use inference endpoints.

Plain Python in, plain Python out (the HTTP layer only translates). Behaviour and messages
follow Elasticsearch's ``Transport*InferenceModelAction`` classes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import EsError, action_request_validation, not_found, status_exception, timeout, validation
from ..inference import Inference, Target
from ..protocol.registry import Services
from ..protocol.service import Endpoint, InputType, Service, TaskType
from ..protocol.settings import java_map_repr
from .defaults import DEFAULT_IDS, default_endpoints
from .store import EndpointStore

if TYPE_CHECKING:
    from ..es.node import NodeVersion

log = logging.getLogger("sidecar.endpoints")

_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")
CHUNKED_TASKS = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.EMBEDDING)
# What refers to an endpoint (pipelines, index mappings); later modules register finders.
ReferenceFinder = Callable[[str], Awaitable[tuple[list[str], list[str]]]]


def validate_id(inference_id: str) -> None:
    if not _ID.match(inference_id or ""):
        raise action_request_validation(
            f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z and 0-9), "
            "hyphens or underscores; must start and end with alphanumeric"
        )


def parse_task_type(value: str) -> TaskType:
    try:
        return TaskType(value)
    except ValueError:
        raise status_exception(400, f"Unknown task_type [{value}]") from None


def _parse_chunking(value: Any, max_chunk_size_cap: int | None) -> dict[str, Any]:
    from ..chunking import DEFAULT_CHUNKING_SETTINGS, parse_chunking_settings

    if value is not None and not isinstance(value, dict):
        raise validation("[chunking_settings] must be an object")
    parsed = parse_chunking_settings(value, max_chunk_size_upper_limit=max_chunk_size_cap)
    return dict(DEFAULT_CHUNKING_SETTINGS) if parsed is None else parsed.to_dict()


class InferenceEndpoints:
    def __init__(self, store: EndpointStore, services: Services, *, default_timeout_s: float = 30.0,
                 node_version: NodeVersion | None = None) -> None:
        self.store = store
        self.node_version = node_version
        self.services = services
        self.default_timeout_s = default_timeout_s
        # The one way inference runs (this registry resolves the endpoints).
        self.inference = Inference(self.resolve, services, timeout_s=default_timeout_s)
        self.reference_finders: list[ReferenceFinder] = []
        self._updating: set[str] = set()
        self._defaults = default_endpoints()
        self._defaults_probed: set[str] = set()

    async def _max_chunk_size_cap(self) -> int | None:
        from ..chunking import MAX_CHUNK_SIZE_UPPER_LIMIT

        if self.node_version is None:
            return MAX_CHUNK_SIZE_UPPER_LIMIT
        return (await self.node_version.features()).max_chunk_size_cap

    # -- create --------------------------------------------------------------------------------
    async def create(
        self, inference_id: str, path_task_type: str | None, body: Any, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        if inference_id in DEFAULT_IDS:
            raise status_exception(
                400, f"[{inference_id}] is a reserved inference ID. Cannot create a new inference endpoint "
                "with a reserved ID.")
        validate_id(inference_id)
        if not isinstance(body, dict):
            raise EsError(400, "parse_exception", "request body is required and must be a JSON object")
        config = dict(body)
        service_name = config.pop("service", None)
        if service_name is None:
            raise status_exception(400, "Model configuration is missing a service")
        if not isinstance(service_name, str):
            raise validation(f"field [service] is not of the expected type. The value [{service_name}] cannot be converted to a [String]")
        body_task_type = config.pop("task_type", None)
        task_type = self._resolve_task_type(path_task_type, body_task_type)
        await self._parse_task_type(task_type.value)
        service = self.services.get(service_name)
        service.check_task_type(task_type)
        await self._check_version(service, task_type)

        if "service_settings" not in config or config["service_settings"] is None:
            raise status_exception(400, "Model configuration is missing [service_settings]")
        service_settings = config.pop("service_settings")
        task_settings = config.pop("task_settings", None) or {}
        if not isinstance(service_settings, dict):
            raise validation("[service_settings] must be an object")
        if not isinstance(task_settings, dict):
            raise validation("[task_settings] must be an object")
        chunking = None
        if task_type in CHUNKED_TASKS:
            chunking = _parse_chunking(config.pop("chunking_settings", None), await self._max_chunk_size_cap())
        if config:
            raise status_exception(
                400, f"Configuration contains settings [{java_map_repr(config)}] unknown to the [{service.name}] service"
            )
        parsed = service.parse(inference_id, task_type, dict(service_settings), dict(task_settings))
        if await self.store.exists(inference_id):
            raise EsError(400, "resource_already_exists_exception", f"Inference endpoint [{inference_id}] already exists")

        endpoint = Endpoint(
            inference_id=inference_id,
            task_type=task_type,
            service=service.name,
            service_settings=parsed.service_settings,
            task_settings=parsed.task_settings,
            chunking_settings=chunking,
            secrets=parsed.secrets,
        )
        if parsed.secrets and not self.store.secrets.enabled:
            self.store.secrets.encrypt(parsed.secrets)  # raises the clear "no key configured" error
        wait = self.default_timeout_s if timeout_s is None else timeout_s
        await self._start(service, endpoint, wait)
        try:
            if task_type in (TaskType.TEXT_EMBEDDING, TaskType.EMBEDDING):
                await self._probe(service, endpoint)
            await self.store.create(endpoint)
        except BaseException:
            await self._stop_quietly(service, endpoint)
            raise
        log.info("inference endpoint created", extra={"fields": {"inference_id": inference_id,
                                                               "service": service.name,
                                                               "task_type": task_type.value}})
        return endpoint.public()

    @staticmethod
    def _resolve_task_type(path_value: str | None, body_value: Any) -> TaskType:
        if body_value is not None and not isinstance(body_value, str):
            raise validation(
                f"field [task_type] is not of the expected type. The value [{body_value}] cannot be converted to a [String]"
            )
        if path_value is None:
            if body_value is None:
                raise status_exception(400, "model is missing required setting [task_type]")
            return parse_task_type(body_value)
        task_type = parse_task_type(path_value)
        if body_value is not None and parse_task_type(body_value) is not task_type:
            raise status_exception(
                400,
                f"Cannot resolve conflicting task_type parameter in the request URL [{path_value}] and the "
                f"request body [{body_value}]",
            )
        return task_type

    async def _start(self, service: Service, endpoint: Endpoint, wait: float | None) -> None:
        try:
            await asyncio.wait_for(service.start(endpoint, timeout=wait), timeout=wait)
        except TimeoutError:
            raise timeout(
                f"Timed out after [{wait}s] waiting for the model deployment of inference endpoint "
                f"[{endpoint.inference_id}] to start"
            ) from None

    async def _probe(self, service: Service, endpoint: Endpoint) -> None:
        try:
            dims, similarity = await service.probe_dimensions(endpoint)
        except EsError as err:
            if err.status >= 500 or err.status == 400:
                raise EsError(
                    400 if err.status < 500 else err.status,
                    err.type,
                    f"Could not determine embedding size for inference endpoint [{endpoint.inference_id}]: {err.reason}",
                ) from None
            raise
        settings = endpoint.service_settings
        given = settings.get("dimensions")
        if given is not None and given != dims:
            raise validation(
                f"The retrieved embeddings have [{dims}] dimensions but [dimensions] is set to [{given}]"
            )
        settings["dimensions"] = dims
        settings.setdefault("similarity", similarity or "cosine")
        embedding_type = str(settings.get("embedding_type", "float")).lower()
        settings.setdefault("element_type", {"byte": "byte", "int8": "byte", "bit": "bit", "binary": "bit"}.get(
            embedding_type, "float"))

    async def _stop_quietly(self, service: Service, endpoint: Endpoint) -> None:
        try:
            await service.stop(endpoint)
        except Exception:  # pragma: no cover - best effort cleanup
            log.exception("failed to stop endpoint %s", endpoint.inference_id)

    # -- read ------------------------------------------------------------------------------------
    async def lookup(self, inference_id: str) -> Endpoint | None:
        """A stored or preconfigured endpoint, or None."""
        default = self._defaults.get(inference_id)
        if default is None:
            return await self.store.get(inference_id)
        if default.task_type is TaskType.TEXT_EMBEDDING and inference_id not in self._defaults_probed:
            service = self.services.get(default.service)
            await self._start(service, default, self.default_timeout_s)
            await self._probe(service, default)
            self._defaults_probed.add(inference_id)
        return default

    async def peek(self, inference_id: str) -> Endpoint | None:
        """A stored or preconfigured endpoint, or None, with nothing started (:meth:`lookup`
        starts a preconfigured endpoint's model): for observers such as the metrics."""
        default = self._defaults.get(inference_id)
        return default if default is not None else await self.store.get(inference_id)

    async def resolve(self, inference_id: str) -> Endpoint:
        endpoint = await self.lookup(inference_id)
        if endpoint is None:
            raise not_found(f"Inference endpoint not found [{inference_id}]")
        return endpoint

    async def get(self, inference_id: str | None, task_type: str | None = None) -> dict[str, Any]:
        wanted = await self._parse_task_type(task_type) if task_type else None
        if inference_id in (None, "_all", "*"):
            endpoints = await self.store.list(wanted)
            endpoints += [e for e in self._defaults.values() if wanted is None or e.task_type is wanted]
            endpoints.sort(key=lambda e: e.inference_id)
            return {"endpoints": [e.public() for e in endpoints]}
        endpoint = await self.resolve(inference_id)
        if wanted is not None and endpoint.task_type is not wanted:
            raise status_exception(
                400,
                f"Requested task type [{wanted.value}] does not match the inference endpoint's task type "
                f"[{endpoint.task_type.value}]",
            )
        return {"endpoints": [endpoint.public()]}

    async def _parse_task_type(self, value: str) -> TaskType:
        """A task type the node's version knows (``embedding`` is unknown before 9.4)."""
        task_type = parse_task_type(value)
        if task_type is TaskType.EMBEDDING and self.node_version is not None and not (
            await self.node_version.features()
        ).embedding_task:
            raise status_exception(400, f"Unknown task_type [{value}]")
        return task_type

    async def _version(self) -> tuple[int, ...]:
        return await self.node_version.get() if self.node_version is not None else (99, 0, 0)

    async def services_catalogue(self, task_type: str | None = None) -> list[dict[str, Any]]:
        from ..protocol.catalogue import catalogue

        wanted = await self._parse_task_type(task_type) if task_type else None
        return catalogue(self.services.all(), await self._version(), wanted)

    async def _check_version(self, service: Service, task_type: TaskType) -> None:
        """A service or task type newer than the node's version is refused as that version
        refuses it."""
        from ..protocol.catalogue import listed, task_types

        version = await self._version()
        if not listed(service, version):
            raise status_exception(400, f"Unknown service [{service.name}]")
        if task_type not in task_types(service, version) and task_type not in service.extra_task_types:
            raise status_exception(
                400, f"The [{service.name}] service does not support task type [{task_type.value}]"
            )

    # -- delete ----------------------------------------------------------------------------------
    async def references(self, inference_id: str) -> tuple[list[str], list[str]]:
        pipelines: list[str] = []
        indexes: list[str] = []
        for finder in self.reference_finders:
            p, i = await finder(inference_id)
            pipelines.extend(p)
            indexes.extend(i)
        return sorted(set(pipelines)), sorted(set(indexes))

    async def delete(
        self, inference_id: str, task_type: str | None = None, *, dry_run: bool = False, force: bool = False
    ) -> dict[str, Any]:
        if inference_id in DEFAULT_IDS:
            raise status_exception(
                400, f"[{inference_id}] is a reserved inference endpoint. Cannot delete a reserved inference "
                "endpoint.")
        endpoint = await self.resolve(inference_id)
        if task_type is not None and await self._parse_task_type(task_type) is not endpoint.task_type:
            raise status_exception(
                400,
                f"Requested task type [{task_type}] does not match the inference endpoint's task type "
                f"[{endpoint.task_type.value}]",
            )
        pipelines, indexes = await self.references(inference_id)
        message = ""
        if pipelines:
            message += (
                f"Inference endpoint {inference_id} is referenced by pipelines: {pipelines}. Ensure that no "
                "pipelines are using this inference endpoint, or use force to ignore this warning and delete "
                "the inference endpoint."
            ).replace("'", "")
        if indexes:
            message += (
                f" Inference endpoint {inference_id} is being used in the mapping for indexes: {indexes}. Ensure "
                "that no index mappings are using this inference endpoint, or use force to ignore this warning "
                "and delete the inference endpoint."
            ).replace("'", "")
        if dry_run:
            body: dict[str, Any] = {"acknowledged": False, "pipelines": pipelines, "indexes": indexes}
            if message:
                body["error_message"] = message.strip()
            return body
        if message and not force:
            raise status_exception(409, message.strip())
        await self.store.delete(inference_id)
        await self._stop_quietly(self.services.get(endpoint.service), endpoint)
        log.info("inference endpoint deleted", extra={"fields": {"inference_id": inference_id}})
        return {"acknowledged": True, "pipelines": pipelines, "indexes": indexes}

    # -- update ----------------------------------------------------------------------------------
    async def update(self, inference_id: str, task_type: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body:
            raise status_exception(400, "Request body is empty")
        extra = {k: v for k, v in body.items() if k not in ("service_settings", "task_settings", "task_type")}
        if extra:
            raise status_exception(
                400,
                "Request contained fields which cannot be updated, remove these fields and try again "
                f"[{java_map_repr(extra)}]",
            )
        endpoint = await self.resolve(inference_id)
        for requested in (task_type, body.get("task_type")):
            if requested is not None and await self._parse_task_type(requested) is not endpoint.task_type:
                raise status_exception(
                    400,
                    f"Task type must match the task type of the existing endpoint, "
                    f"[{endpoint.task_type.value}] != [{requested}]",
                )
        if inference_id in DEFAULT_IDS:
            raise status_exception(400, f"[{inference_id}] is a reserved inference endpoint. Cannot update it.")
        if inference_id in self._updating:
            raise status_exception(
                409, f"Endpoint [{inference_id}] is currently being updated. Try again once the update completes"
            )
        self._updating.add(inference_id)
        try:
            return await self._apply_update(endpoint, body)
        finally:
            self._updating.discard(inference_id)

    async def _apply_update(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        service = self.services.get(endpoint.service)
        new_service = body.get("service_settings") or {}
        new_tasks = body.get("task_settings") or {}
        if not isinstance(new_service, dict) or not isinstance(new_tasks, dict):
            raise validation("[service_settings] and [task_settings] must be objects")
        secrets = dict(endpoint.secrets)
        secrets_changed = False
        for key in service.secret_keys:
            if key in new_service:
                value = new_service.pop(key)
                if not isinstance(value, str) or not value:
                    raise validation(f"[service_settings] Invalid value empty string. [{key}] must be a non-empty string")
                secrets[key] = value
                secrets_changed = True
        update_secrets = getattr(service, "update_secrets", None)  # secrets that are not plain strings
        if update_secrets is not None:
            replaced = update_secrets(endpoint, new_service)
            if replaced is not None:
                secrets, secrets_changed = replaced, True
        service_settings = dict(endpoint.service_settings)
        if new_service:
            parse_update = getattr(service, "parse_update", None)
            if parse_update is None:
                raise status_exception(
                    400,
                    "Request contained fields which cannot be updated, remove these fields and try again "
                    f"[{java_map_repr({'service_settings': new_service})}]",
                )
            service_settings = parse_update(endpoint, new_service)
        task_settings = dict(endpoint.task_settings)
        merge_task_settings = getattr(service, "merge_task_settings", None)
        if new_tasks and merge_task_settings is not None:
            task_settings = merge_task_settings(endpoint, dict(new_tasks))
        elif new_tasks:
            task_settings.update(service.parse_task_settings(endpoint.task_type, dict(new_tasks)))
        updated = Endpoint(
            inference_id=endpoint.inference_id,
            task_type=endpoint.task_type,
            service=endpoint.service,
            service_settings=service_settings,
            task_settings=task_settings,
            chunking_settings=endpoint.chunking_settings,
            secrets=secrets,
        )
        await self.store.replace(updated, secrets_changed=secrets_changed)
        apply = getattr(service, "apply_update", None)
        if apply is not None:
            await apply(updated)
        return updated.public()

    # -- perform inference -----------------------------------------------------------------------
    async def infer(
        self, inference_id: str, task_type: str | None, body: Any, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        requested = await self._parse_task_type(task_type) if task_type is not None else None
        endpoint = await self.resolve(inference_id)
        if requested is not None:
            if requested is not endpoint.task_type:
                raise status_exception(
                    400,
                    f"Incompatible task_type, the requested type [{requested.value}] does not match the model "
                    f"type [{endpoint.task_type.value}]",
                )
        if endpoint.task_type is TaskType.CHAT_COMPLETION:
            raise status_exception(
                400,
                f"Endpoint [{inference_id}] with task type [chat_completion] can only be used with the "
                f"[_inference/chat_completion/{inference_id}/_stream] API",
            )
        if endpoint.task_type is TaskType.EMBEDDING:
            return await self._embed_contents(endpoint, body, timeout_s)
        request = self._parse_infer_body(endpoint, body)
        service = self.services.get(endpoint.service)
        if endpoint.secrets_missing:
            raise status_exception(
                500,
                f"The secret settings of inference endpoint [{inference_id}] are missing; delete and re-create it",
            )
        task_settings = dict(endpoint.task_settings)
        if request["task_settings"]:
            task_settings.update(service.parse_task_settings(endpoint.task_type, dict(request["task_settings"])))
        for key in ("top_n", "return_documents"):
            if request.get(key) is not None:
                task_settings[key] = request[key]
        wait = self.default_timeout_s if timeout_s is None else timeout_s
        return await self._dispatch(self.inference.of(endpoint), request, task_settings, wait)

    async def _embed_contents(self, endpoint: Endpoint, body: Any, timeout_s: float | None) -> dict[str, Any]:
        from ..protocol.embedding import parse_embedding_request, render

        request = parse_embedding_request(body)
        service = self.services.get(endpoint.service)
        task_settings = dict(endpoint.task_settings)
        if request.task_settings:
            task_settings.update(service.parse_task_settings(endpoint.task_type, dict(request.task_settings)))
        input_type = InputType(request.input_type) if request.input_type else None
        wait = self.default_timeout_s if timeout_s is None else timeout_s
        result = await self.inference.embed_contents(
            self.inference.of(endpoint), request.groups, input_type, task_settings, wait)
        return render(result.vectors, result.element_type)

    async def open_stream(
        self, inference_id: str, task_type: str | None, body: Any, *, timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Validate a ``_stream`` request and open the provider's stream (errors raised here
        happen before anything is sent, so they keep their HTTP status)."""
        requested = await self._parse_task_type(task_type) if task_type is not None else None
        endpoint = await self.resolve(inference_id)
        requested = requested or endpoint.task_type
        if requested is not endpoint.task_type:
            raise status_exception(
                400,
                f"Incompatible task_type, the requested type [{requested.value}] does not match the model "
                f"type [{endpoint.task_type.value}]",
            )
        if endpoint.task_type not in (TaskType.COMPLETION, TaskType.CHAT_COMPLETION):
            raise EsError(
                405, "status_exception",
                f"Streaming is not allowed for service [{endpoint.service}] and task "
                f"[{endpoint.task_type.value}]. Supported tasks: [completion, chat_completion]",
            )
        if not isinstance(body, dict):
            raise EsError(400, "parse_exception", "request body is required and must be a JSON object")
        service = self.services.get(endpoint.service)
        if endpoint.task_type is TaskType.COMPLETION:
            parsed = self._parse_infer_body(endpoint, body)
            task_settings = dict(endpoint.task_settings)
            if parsed["task_settings"]:
                task_settings.update(service.parse_task_settings(endpoint.task_type, dict(parsed["task_settings"])))
            request: dict[str, Any] = {"input": parsed["inputs"], "task_settings": task_settings}
        else:
            request = dict(body)
        wait = self.default_timeout_s if timeout_s is None else timeout_s
        return self.inference.stream(self.inference.of(endpoint), request, wait)

    @staticmethod
    def _parse_infer_body(endpoint: Endpoint, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise EsError(400, "parse_exception", "request body is required and must be a JSON object")
        allowed = {"input", "query", "task_settings", "input_type", "top_n", "return_documents", "timeout"}
        unknown = [k for k in body if k not in allowed]
        if unknown:
            raise EsError(400, "x_content_parse_exception", f"[1:2] [inference] unknown field [{unknown[0]}]")
        raw = body.get("input")
        if raw is None:
            raise action_request_validation("Field [input] cannot be null")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise EsError(400, "x_content_parse_exception", "[1:2] [inference] failed to parse field [input]: "
                          "expected a string or an array of strings")
        if not inputs:
            raise action_request_validation("Field [input] cannot be an empty array")
        task = endpoint.task_type
        query = body.get("query")
        if task is TaskType.RERANK:
            if query is None:
                raise action_request_validation("Field [query] cannot be null for task type [rerank]")
            if not isinstance(query, str):
                raise EsError(400, "x_content_parse_exception", "[1:2] [inference] failed to parse field [query]")
        elif query is not None:
            raise action_request_validation(f"Field [query] cannot be specified for task type [{task.value}]")
        if task is TaskType.COMPLETION and len(inputs) > 1:
            raise action_request_validation("Field [input] must contain a single value for task type [completion]")
        input_type = body.get("input_type")
        if input_type is not None:
            if task is not TaskType.TEXT_EMBEDDING:
                raise action_request_validation(f"Field [input_type] cannot be specified for task type [{task.value}]")
            try:
                input_type = InputType(str(input_type).lower())
            except ValueError:
                raise action_request_validation(
                    f"Field [input_type] must be one of [ingest, search, classification, clustering], got [{input_type}]"
                ) from None
        for key in ("top_n", "return_documents"):
            if body.get(key) is not None and task is not TaskType.RERANK:
                raise action_request_validation(f"Field [{key}] cannot be specified for task type [{task.value}]")
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
            raise action_request_validation("Field [top_n] must be a positive integer")
        if body.get("return_documents") is not None and not isinstance(body["return_documents"], bool):
            raise action_request_validation("Field [return_documents] must be a boolean")
        task_settings = body.get("task_settings") or {}
        if not isinstance(task_settings, dict):
            raise EsError(400, "x_content_parse_exception", "[1:2] [inference] failed to parse field [task_settings]")
        return {
            "inputs": inputs,
            "query": query,
            "input_type": input_type,
            "task_settings": task_settings,
            "top_n": top_n,
            "return_documents": body.get("return_documents"),
        }

    async def _dispatch(self, target: Target, request: dict[str, Any],
                        task_settings: dict[str, Any], wait: float | None) -> dict[str, Any]:
        task = target.endpoint.task_type
        inputs = request["inputs"]
        if task is TaskType.TEXT_EMBEDDING:
            input_type = request["input_type"] or (
                InputType(task_settings["input_type"]) if task_settings.get("input_type") in
                {t.value for t in InputType} else None
            )
            result = await self.inference.embed(target, inputs, input_type, task_settings, wait)
            key = {"float": "text_embedding", "byte": "text_embedding_bytes", "bit": "text_embedding_bits"}[
                result.element_type
            ]
            return {key: [{"embedding": vector} for vector in result.vectors]}
        if task is TaskType.SPARSE_EMBEDDING:
            results = await self.inference.sparse_embed(target, inputs, None, task_settings, wait)
            return {
                "sparse_embedding": [{"is_truncated": r.is_truncated, "embedding": r.tokens} for r in results]
            }
        if task is TaskType.RERANK:
            ranked = await self.inference.rerank(target, request["query"], inputs, task_settings, wait)
            out = []
            for doc in ranked:
                item: dict[str, Any] = {"index": doc.index, "relevance_score": doc.relevance_score}
                if doc.text is not None:
                    item["text"] = doc.text
                out.append(item)
            return {"rerank": out}
        if task is TaskType.COMPLETION:
            results = await self.inference.complete(target, inputs, task_settings, wait)
            return {"completion": [{"result": r.result} for r in results]}
        raise status_exception(400, f"Unsupported task type [{task.value}]")
