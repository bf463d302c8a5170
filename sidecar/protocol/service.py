"""The one small protocol every inference service implements.

A service module (``sidecar/services/<name>.py``) defines one :class:`Service` subclass and
registers it with :func:`sidecar.protocol.registry.register`. The endpoint layer never knows
provider details: it asks the service to *parse* a configuration (validation, defaults,
secret split) and then calls one of the task methods.

Task methods take plain Python values and return the result dataclasses below; the API
layer renders them in Elasticsearch's wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import EsError, status_exception

if TYPE_CHECKING:
    from .embedding import ContentGroup


class TaskType(StrEnum):
    TEXT_EMBEDDING = "text_embedding"
    SPARSE_EMBEDDING = "sparse_embedding"
    RERANK = "rerank"
    COMPLETION = "completion"
    CHAT_COMPLETION = "chat_completion"
    # Elasticsearch 9.4+: text and image inputs (sidecar.protocol.embedding).
    EMBEDDING = "embedding"

    @classmethod
    def parse(cls, value: str) -> TaskType:
        try:
            return cls(value)
        except ValueError:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Unknown task_type [{value}]",
            ) from None


class InputType(StrEnum):
    """Why a text is being embedded (E5 prefixes, Cohere input_type, …)."""

    INGEST = "ingest"
    SEARCH = "search"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"


# Settings Elasticsearch stores with an endpoint but never shows.
INTERNAL_SERVICE_KEYS = frozenset({"dimensions_set_by_user"})


@dataclass
class Endpoint:
    """A parsed, validated inference endpoint (what the registry stores, secrets decrypted)."""

    inference_id: str
    task_type: TaskType
    service: str
    service_settings: dict[str, Any]
    task_settings: dict[str, Any] = field(default_factory=dict)
    chunking_settings: dict[str, Any] | None = None
    secrets: dict[str, Any] = field(default_factory=dict)
    # True when the definition exists but its stored secrets could not be found.
    secrets_missing: bool = False

    def public(self) -> dict[str, Any]:
        """The endpoint as GET/PUT return it (no secrets)."""
        body: dict[str, Any] = {
            "inference_id": self.inference_id,
            "task_type": self.task_type.value,
            "service": self.service,
            "service_settings": {k: v for k, v in self.service_settings.items() if k not in INTERNAL_SERVICE_KEYS},
        }
        if self.task_settings:
            body["task_settings"] = self.task_settings
        if self.chunking_settings is not None:
            body["chunking_settings"] = self.chunking_settings
        return body


# -- results -------------------------------------------------------------------------------


@dataclass
class DenseEmbeddings:
    """One vector per input. ``element_type`` is ``float``, ``byte`` or ``bit`` (bits packed
    eight per byte, as Elasticsearch returns them)."""

    vectors: np.ndarray | list[list[float]]
    element_type: str = "float"
    truncated: list[bool] | None = None


@dataclass
class SparseEmbedding:
    tokens: dict[str, float]
    is_truncated: bool = False


@dataclass
class RankedDoc:
    index: int
    relevance_score: float
    text: str | None = None


@dataclass
class Completion:
    result: str


@dataclass
class ParsedConfig:
    """What :meth:`Service.parse` returns: the settings as they are stored and shown."""

    service_settings: dict[str, Any]
    task_settings: dict[str, Any]
    secrets: dict[str, Any]


class Service:
    """Base class of all services. Subclasses set ``name`` and ``task_types`` and implement
    :meth:`parse` and the task methods they support."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    task_types: ClassVar[tuple[TaskType, ...]] = ()
    # Secret keys inside service_settings (moved to secrets on create, never shown).
    secret_keys: ClassVar[tuple[str, ...]] = ("api_key",)
    # Keys of service_settings that `_update` may change besides secrets.
    updatable_service_keys: ClassVar[tuple[str, ...]] = ()
    # Configuration schema for GET _inference/_services.
    configuration: ClassVar[dict[str, dict[str, Any]]] = {}
    # Left out of GET _inference/_services yet usable (Elasticsearch's hideFromConfigurationApi).
    hidden_from_catalogue: ClassVar[bool] = False
    # The Elasticsearch versions (one per major line, e.g. ``((8, 19), (9, 1))``) that first have
    # this service; None: the version in :data:`sidecar.protocol.catalogue.SERVICES_SINCE`.
    since: ClassVar[tuple[tuple[int, ...], ...] | None] = None
    # Task types that came later than the service: the version (or versions) that added each.
    task_types_since: ClassVar[dict[TaskType, Any]] = {}
    # Task types the sidecar serves beyond Elasticsearch's own for this service (usable on the
    # versions that know the task type, never listed by GET _inference/_services).
    extra_task_types: ClassVar[tuple[TaskType, ...]] = ()
    # Max inputs per call when the ingest path batches for this service.
    batch_size: ClassVar[int] = 16

    def check_task_type(self, task_type: TaskType) -> None:
        if task_type not in self.task_types:
            raise status_exception(
                400, f"The [{self.name}] service does not support task type [{task_type.value}]"
            )

    def parse(
        self,
        inference_id: str,
        task_type: TaskType,
        service_settings: dict[str, Any],
        task_settings: dict[str, Any],
    ) -> ParsedConfig:
        """Validate a create request. Secrets are pulled out of ``service_settings``.
        Raise :class:`EsError` (400) with Elasticsearch's message on bad input."""
        raise NotImplementedError

    def parse_task_settings_override(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        """Validate per-request task_settings; return them merged-ready. Default: no override allowed
        beyond what :meth:`parse` accepts for task settings."""
        parsed = self.parse_task_settings(task_type, task_settings)
        return parsed

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        if task_settings:
            from .settings import reject_unknown

            reject_unknown(self.name, dict(task_settings))
        return {}

    async def start(self, endpoint: Endpoint, timeout: float | None = None) -> None:
        """Prepare an endpoint for use (deploy a local model, …). Default: nothing."""

    async def stop(self, endpoint: Endpoint) -> None:
        """Release what :meth:`start` took. Default: nothing."""

    async def probe_dimensions(self, endpoint: Endpoint) -> tuple[int, str | None]:
        """Run one inference (``"how big"``) to learn (dimensions, similarity)."""
        result = await self.embed(endpoint, ["how big"], InputType.INGEST, endpoint.task_settings)
        vec = result.vectors[0]
        dims = len(vec)
        if result.element_type == "bit":
            dims *= 8
        return dims, None

    # -- tasks ---------------------------------------------------------------------------
    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        raise self._unsupported(endpoint)

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        raise self._unsupported(endpoint)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        raise self._unsupported(endpoint)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        raise self._unsupported(endpoint)

    async def embed_contents(
        self,
        endpoint: Endpoint,
        inputs: Sequence[ContentGroup],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        """The ``embedding`` task: one vector per group of contents. Default: a text-only
        model, which embeds single texts with :meth:`embed` and refuses anything else."""
        from .embedding import text_only

        texts = text_only(inputs)
        if texts is None:
            raise status_exception(400, "Non-text input provided for text-only model")
        return await self.embed(endpoint, texts, input_type, task_settings, timeout)

    def stream(
        self,
        endpoint: Endpoint,
        request: dict[str, Any],
        timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        raise EsError(405, "status_exception", f"Streaming is not allowed for service [{self.name}].")

    def _unsupported(self, endpoint: Endpoint) -> EsError:
        return status_exception(
            400,
            f"The [{self.name}] service does not support task type [{endpoint.task_type.value}]",
        )

    def describe(self) -> dict[str, Any]:
        """The element of ``GET _inference/_services``."""
        return {
            "service": self.name,
            "name": self.display_name or self.name,
            "task_types": [t.value for t in self.task_types],
            "configurations": self.configuration,
        }
