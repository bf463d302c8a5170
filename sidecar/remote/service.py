"""The base of the services that call a provider over HTTP (:class:`RemoteService`), and of
those whose rerank API takes a query and documents (:class:`DocumentsRerankService`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ..errors import EsError, status_exception
from ..protocol.service import (
    DenseEmbeddings,
    Endpoint,
    InputType,
    ParsedConfig,
    RankedDoc,
    Service,
    TaskType,
)
from ..protocol.settings import SettingsReader, finish
from .chat import parse_chat_request, stream_inputs
from .client import HttpClient, HttpRequest, Truncation
from .common_settings import SERVICE, TASK, drop_none, put_set, secrets
from .errors import DEFAULT_POLICY, ErrorPolicy, malformed
from .options import provider_url
from .responses import MalformedResponse, ranked_docs

T = TypeVar("T")


async def map_batches(
    inputs: Sequence[str],
    size: int,
    run: Callable[[list[str]], Awaitable[list[T]]],
    *,
    concurrency: int = 4,
) -> list[T]:
    """Split ``inputs`` into batches of ``size``, run them (concurrently up to ``concurrency``)
    and return the results in input order. The first failure cancels the rest and is raised."""
    batches = [list(inputs[i : i + size]) for i in range(0, len(inputs), size)] or [[]]
    if len(batches) == 1:
        return await run(batches[0])
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(batch: list[str]) -> list[T]:
        async with gate:
            return await run(batch)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(b)) for b in batches]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [item for task in tasks for item in task.result()]


class RemoteService(Service):
    """Base of services that call a provider over HTTP: owns the :class:`HttpClient` and
    parses configurations in Elasticsearch's order (service settings, task settings, secrets,
    then unknown keys). Subclasses implement :meth:`read_service_settings` and, where they
    have task settings, :meth:`read_task_settings`."""

    # Default requests per minute per task type (None: no limit).
    default_rpm: ClassVar[dict[TaskType, int]] = {}
    # (``batch_size``, from the base class, is also the largest input list one upstream
    # call takes: longer lists are split.)
    # Similarity filled in for text embedding endpoints that name none.
    default_similarity: ClassVar[str | None] = "dot_product"

    # Task types whose results can be streamed (``_stream``).
    streaming_tasks: ClassVar[tuple[TaskType, ...]] = ()
    # Keys kept in service_settings for the service's own use that Elasticsearch persists but
    # never shows (the endpoint layer should leave them out of GET/PUT responses).
    hidden_service_keys: ClassVar[tuple[str, ...]] = ("dimensions_set_by_user",)

    def __init__(self, context: Any = None) -> None:
        self.context = context
        self.http = HttpClient(self.name, context)

    # -- configuration -----------------------------------------------------------------------
    def parse(
        self,
        inference_id: str,
        task_type: TaskType,
        service_settings: dict[str, Any],
        task_settings: dict[str, Any],
    ) -> ParsedConfig:
        self.check_task_type(task_type)
        ss = SettingsReader(service_settings, SERVICE)
        settings = self.read_service_settings(task_type, ss)
        ss.raise_if_errors()
        ts = SettingsReader(task_settings, TASK)
        task = self.read_task_settings(task_type, ts)
        ts.raise_if_errors()
        secret = self.read_secrets(task_type, ss)
        finish(self.name, ss, ts)
        return ParsedConfig(drop_none(settings), drop_none(task), secret)

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        ts = SettingsReader(task_settings, TASK)
        task = self.read_task_settings(task_type, ts)
        finish(self.name, ts)
        return drop_none(task)

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        raise NotImplementedError

    def read_task_settings(self, task_type: TaskType, ts: SettingsReader) -> dict[str, Any]:
        return {}

    def read_secrets(self, task_type: TaskType, ss: SettingsReader) -> dict[str, str]:
        return secrets(ss)

    async def close(self) -> None:
        await self.http.close()

    def rpm(self, task_type: TaskType) -> int | None:
        return self.default_rpm.get(task_type)

    def base_url(self, default: str) -> str:
        return provider_url(self.context, self.name, default)

    async def call(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        parse: Callable[[Any], T],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        truncation: Truncation | None = None,
    ) -> T:
        return await self.http.call(
            endpoint,
            request,
            parse,
            timeout=timeout,
            policy=policy,
            default_rpm=self.rpm(endpoint.task_type),
            truncation=truncation,
        )

    def lines(
        self,
        endpoint: Endpoint,
        request: HttpRequest,
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
    ) -> AsyncIterator[bytes]:
        return self.http.stream_lines(
            endpoint, request, timeout=timeout, policy=policy, default_rpm=self.rpm(endpoint.task_type)
        )

    async def run_batches(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        parse: Callable[[Any], list[T]],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        truncate: bool = False,
        batch_size: int | None = None,
    ) -> list[tuple[T, bool]]:
        """One call per batch of at most ``batch_size`` inputs (concurrently), results in input
        order, each with whether its input was truncated; ``timeout`` covers all batches."""
        if not inputs:
            return []

        async def run(batch: list[str]) -> list[tuple[T, bool]]:
            cut = Truncation(batch, build) if truncate else None
            results = await self.call(endpoint, build(batch), parse, timeout=None, policy=policy, truncation=cut)
            if len(results) != len(batch):
                raise malformed(
                    endpoint, MalformedResponse(f"expected [{len(batch)}] results, received [{len(results)}]")
                )
            flags = cut.flags if cut is not None and cut.flags else [False] * len(batch)
            return list(zip(results, flags, strict=True))

        return await self.http.with_deadline(map_batches(inputs, batch_size or self.batch_size, run), timeout)

    async def embed_batches(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        parse: Callable[[Any], list[list[float]]],
        *,
        timeout: float | None,
        policy: ErrorPolicy = DEFAULT_POLICY,
        element_type: str = "float",
        truncate: bool = False,
        batch_size: int | None = None,
    ) -> DenseEmbeddings:
        pairs = await self.run_batches(
            endpoint, inputs, build, parse, timeout=timeout, policy=policy, truncate=truncate, batch_size=batch_size
        )
        flags = [flag for _, flag in pairs]
        return DenseEmbeddings(
            vectors=[vector for vector, _ in pairs], element_type=element_type, truncated=flags if any(flags) else None
        )

    # -- streaming ---------------------------------------------------------------------------
    def stream(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Validate ``request`` now (errors raise before any event) and return the event
        iterator. ``completion``: ``{"input": str | [str], "task_settings"?: {...}}``;
        ``chat_completion``: the OpenAI-style chat request."""
        if endpoint.task_type not in self.streaming_tasks:
            if not self.streaming_tasks:
                raise EsError(405, "status_exception", f"Streaming is not allowed for service [{self.name}].")
            supported = ",".join(t.value for t in self.streaming_tasks)
            raise EsError(
                405,
                "status_exception",
                f"Streaming is not allowed for service [{self.name}] and task [{endpoint.task_type.value}]. "
                f"Supported tasks: [{supported}]",
            )
        if endpoint.task_type == TaskType.CHAT_COMPLETION:
            return self.stream_chat(endpoint, parse_chat_request(request), timeout)
        inputs = stream_inputs(request)
        override = self.parse_task_settings_override(endpoint.task_type, request.get("task_settings") or {})
        settings = self.effective_task_settings(endpoint, override)
        return self.stream_completion(endpoint, inputs, settings, timeout)

    def stream_completion(
        self, endpoint: Endpoint, inputs: list[str], task_settings: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    def stream_chat(
        self, endpoint: Endpoint, request: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def effective_task_settings(endpoint: Endpoint, task_settings: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**endpoint.task_settings, **(task_settings or {})}

    async def probe_dimensions(self, endpoint: Endpoint) -> tuple[int, str | None]:
        result: DenseEmbeddings = await self.embed(endpoint, ["how big"], InputType.INGEST, endpoint.task_settings)
        if len(result.vectors) == 0:
            raise status_exception(
                400, "Could not determine embedding size. Please check your inference endpoint configuration"
            )
        dims = len(result.vectors[0])
        if result.element_type == "bit":
            dims *= 8
        settings = endpoint.service_settings
        wanted = settings.get("dimensions")
        if settings.get("dimensions_set_by_user") and wanted is not None and wanted != dims:
            raise status_exception(
                400,
                f"The retrieved embeddings size [{dims}] does not match the size specified in the settings "
                f"[{wanted}]. Please recreate the [{endpoint.inference_id}] configuration with the correct dimensions",
            )
        return dims, settings.get("similarity") or self.default_similarity


class DocumentsRerankService(RemoteService):
    """A service whose ``rerank`` takes ``{"model", "query", "documents"}`` (plus the task
    settings named in :attr:`rerank_task_keys` that are set) on its ``rerank`` route and
    answers ``results`` (or ``data``) of ``{index, relevance_score, document}`` items:
    Cohere, Jina AI, Voyage AI. Subclasses build requests with ``_request(endpoint, route, body)``."""

    rerank_task_keys: ClassVar[tuple[str, ...]] = ("top_n", "return_documents")
    policy: ClassVar[ErrorPolicy] = DEFAULT_POLICY

    def _request(self, endpoint: Endpoint, route: str, body: dict[str, Any]) -> HttpRequest:
        raise NotImplementedError

    def rerank_settings(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        """The task settings one rerank call uses."""
        return self.effective_task_settings(endpoint, task_settings)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        settings = self.rerank_settings(endpoint, task_settings)
        body = {"model": endpoint.service_settings.get("model_id"), "query": query, "documents": list(inputs)}
        request = self._request(endpoint, "rerank", put_set(body, settings, *self.rerank_task_keys))
        context = f"{self.display_name} rerank response"

        def parse(obj: Any) -> list[RankedDoc]:
            items = obj.get("results", obj.get("data")) if isinstance(obj, dict) else None
            if items is None:
                raise MalformedResponse(f"Failed to find required field [results] in {context}")
            return ranked_docs(items, inputs, context, with_text=bool(settings.get("return_documents")))

        return await self.call(endpoint, request, parse, timeout=timeout, policy=self.policy)
