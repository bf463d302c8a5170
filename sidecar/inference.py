"""The one way the sidecar runs inference: an endpoint id is resolved to its endpoint and the
service that runs it (:meth:`Inference.target`), and each task is one call here, with the
time limit applied the same way everywhere (the service is given it, and a call still running
when it has passed fails with Elasticsearch's timeout error).

Every caller goes through it: the ``_inference`` API (:mod:`sidecar.endpoints.manager`), the
``inference`` ingest processor (:mod:`sidecar.ingest.processor`), semantic_text filling on
writes (:mod:`sidecar.writes.fill`), query embedding (:mod:`sidecar.semantic.queries.embedder`)
and reranking (:mod:`sidecar.semantic.rerank`). Endpoint caching is the store's
(:mod:`sidecar.endpoints.store`); batching is the services' and the local runtime's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import EsError, timeout
from .protocol.registry import Services
from .protocol.service import (
    Completion,
    DenseEmbeddings,
    Endpoint,
    InputType,
    RankedDoc,
    Service,
    SparseEmbedding,
)

T = TypeVar("T")
# The default: the limit the Inference was built with.
_DEFAULT: Any = object()


@dataclass(frozen=True)
class Target:
    """An endpoint and the service that runs it."""

    endpoint: Endpoint
    service: Service

    @property
    def inference_id(self) -> str:
        return self.endpoint.inference_id


def timed_out(after_s: float | None) -> Exception:
    return timeout(f"Request timed out waiting to be sent after [{after_s or 0:g}s]")


class Inference:
    def __init__(self, resolve: Callable[[str], Awaitable[Endpoint]], services: Services, *,
                 timeout_s: float | None = 30.0) -> None:
        """``resolve`` gives the endpoint of an id (or raises Elasticsearch's not-found error)."""
        self._resolve = resolve
        self.services = services
        self.timeout_s = timeout_s
        # Asked, in order, for an id that names no endpoint: ``async (id) -> Endpoint | None``.
        # Trained model ids and deployment ids resolve this way where Elasticsearch accepts
        # them (the ``inference`` processor's ``model_id``, ``query_vector_builder``,
        # ``text_expansion``), never in the ``_inference`` API.
        self.fallbacks: list[Callable[[str], Awaitable[Endpoint | None]]] = []

    async def target(self, inference_id: str) -> Target:
        try:
            return self.of(await self._resolve(inference_id))
        except EsError as err:
            if err.status != 404:
                raise
            for fallback in self.fallbacks:
                endpoint = await fallback(inference_id)
                if endpoint is not None:
                    return self.of(endpoint)
            raise

    def of(self, endpoint: Endpoint) -> Target:
        return Target(endpoint, self.services.get(endpoint.service))

    async def _bounded(self, call: Callable[[float | None], Awaitable[T]], timeout_s: Any) -> T:
        wait = self.timeout_s if timeout_s is _DEFAULT else timeout_s
        try:
            return await asyncio.wait_for(call(wait), wait)
        except TimeoutError:
            raise timed_out(wait) from None

    # -- tasks ---------------------------------------------------------------------------------
    async def embed(self, target: Target, texts: Sequence[str], input_type: InputType | None,
                    task_settings: dict[str, Any] | None = None, timeout_s: Any = _DEFAULT) -> DenseEmbeddings:
        settings = target.endpoint.task_settings if task_settings is None else task_settings
        return await self._bounded(
            lambda wait: target.service.embed(target.endpoint, list(texts), input_type, settings, wait), timeout_s)

    async def sparse_embed(self, target: Target, texts: Sequence[str], input_type: InputType | None,
                           task_settings: dict[str, Any] | None = None,
                           timeout_s: Any = _DEFAULT) -> list[SparseEmbedding]:
        settings = target.endpoint.task_settings if task_settings is None else task_settings
        return await self._bounded(
            lambda wait: target.service.sparse_embed(target.endpoint, list(texts), input_type, settings, wait),
            timeout_s)

    async def rerank(self, target: Target, query: str, texts: Sequence[str],
                     task_settings: dict[str, Any] | None = None, timeout_s: Any = _DEFAULT) -> list[RankedDoc]:
        settings = target.endpoint.task_settings if task_settings is None else task_settings
        return await self._bounded(
            lambda wait: target.service.rerank(target.endpoint, query, list(texts), settings, wait), timeout_s)

    async def complete(self, target: Target, texts: Sequence[str], task_settings: dict[str, Any] | None = None,
                       timeout_s: Any = _DEFAULT) -> list[Completion]:
        settings = target.endpoint.task_settings if task_settings is None else task_settings
        return await self._bounded(
            lambda wait: target.service.complete(target.endpoint, list(texts), settings, wait), timeout_s)

    async def embed_contents(self, target: Target, groups: Sequence[Any], input_type: InputType | None,
                             task_settings: dict[str, Any] | None = None,
                             timeout_s: Any = _DEFAULT) -> DenseEmbeddings:
        settings = target.endpoint.task_settings if task_settings is None else task_settings
        return await self._bounded(
            lambda wait: target.service.embed_contents(target.endpoint, list(groups), input_type, settings, wait),
            timeout_s)

    def stream(self, target: Target, request: dict[str, Any], timeout_s: Any = _DEFAULT) -> AsyncIterator[Any]:
        """A completion stream; the limit applies to each wait for the provider, and errors
        once it is open come as the stream's events."""
        wait = self.timeout_s if timeout_s is _DEFAULT else timeout_s
        return target.service.stream(target.endpoint, request, wait)
