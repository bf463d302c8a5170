"""Shared base of the services that run models in the sidecar's own runtime
(``elasticsearch`` and ``elser``), standing in for Elasticsearch's ML trained-model
deployments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import action_request_validation, status_exception
from ..protocol.service import (
    DenseEmbeddings,
    Endpoint,
    InputType,
    ParsedConfig,
    RankedDoc,
    Service,
    SparseEmbedding,
    TaskType,
)
from ..protocol.settings import SettingsReader, finish

_ADAPTIVE_KEYS = ("enabled", "min_number_of_allocations", "max_number_of_allocations")


def parse_adaptive(value: Any, errors: list[str]) -> dict[str, Any] | None:
    """ES ``AdaptiveAllocationsSettings`` with its validation messages."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append("[adaptive_allocations] must be an object")
        return None
    unknown = [k for k in value if k not in _ADAPTIVE_KEYS]
    if unknown:
        errors.append(f"[adaptive_allocations] unknown field [{unknown[0]}]")
        return None
    out: dict[str, Any] = {}
    enabled = value.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        errors.append("[adaptive_allocations] [enabled] must be a boolean")
    elif enabled is not None:
        out["enabled"] = enabled
    for key in ("min_number_of_allocations", "max_number_of_allocations"):
        v = value.get(key)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool):
            errors.append(f"[adaptive_allocations] [{key}] must be an integer")
            continue
        out[key] = v
    lo, hi = out.get("min_number_of_allocations"), out.get("max_number_of_allocations")
    if lo is not None and lo < 0:
        errors.append("[min_number_of_allocations] must be a non-negative integer or null")
    if hi is not None and hi < 1:
        errors.append("[max_number_of_allocations] must be a positive integer or null")
    if lo is not None and hi is not None and hi < lo:
        errors.append("[max_number_of_allocations] must be greater than or equal to [min_number_of_allocations]")
    return out


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class LocalModelService(Service):
    """Runs a model in this process. ``deployment_id`` defaults to the inference id."""

    secret_keys: ClassVar[tuple[str, ...]] = ()
    updatable_service_keys: ClassVar[tuple[str, ...]] = ("num_allocations", "adaptive_allocations")
    batch_size: ClassVar[int] = 10
    default_model_id: ClassVar[str | None] = None

    def __init__(self, context: Any) -> None:
        self.context = context

    @property
    def models(self):
        models = getattr(self.context, "models", None)
        if models is None:
            raise status_exception(500, "the local model runtime is not available")
        return models

    # -- configuration -----------------------------------------------------------------------
    def parse_service_settings(self, settings: dict[str, Any]) -> tuple[SettingsReader, dict[str, Any]]:
        reader = SettingsReader(settings, "service_settings")
        num_allocations = reader.integer("num_allocations", positive=True)
        num_threads = reader.integer("num_threads", required=True, positive=True)
        adaptive_errors: list[str] = []
        adaptive = parse_adaptive(reader.values.pop("adaptive_allocations", None), adaptive_errors)
        model_id = reader.string("model_id", required=self.default_model_id is None) or self.default_model_id
        deployment_id = reader.string("deployment_id")
        for err in adaptive_errors:
            reader.error(err)
        if num_allocations is None and adaptive is None:
            reader.error(
                "[service_settings] does not contain one of the required settings "
                "[num_allocations, adaptive_allocations]"
            )
        if adaptive and adaptive.get("enabled") and num_allocations is not None:
            reader.error("[num_allocations] cannot be set if adaptive allocations is enabled")
        if num_threads is not None and (not _power_of_two(num_threads) or num_threads > 32):
            reader.raise_if_errors()
            raise action_request_validation(
                f"[num_threads] must be a power of 2 less than or equal to 32, got [{num_threads}]"
            )
        out: dict[str, Any] = {}
        if num_allocations is not None:
            out["num_allocations"] = num_allocations
        out["num_threads"] = num_threads
        out["model_id"] = model_id
        if adaptive is not None:
            out["adaptive_allocations"] = adaptive
        if deployment_id is not None:
            out["deployment_id"] = deployment_id
        return reader, out

    def parse(self, inference_id, task_type, service_settings, task_settings) -> ParsedConfig:
        self.check_task_type(task_type)
        reader, out = self.parse_service_settings(service_settings)
        tasks = SettingsReader(task_settings, "task_settings")
        parsed_tasks = self._read_task_settings(task_type, tasks)
        finish(self.name, reader, tasks)
        return ParsedConfig(service_settings=out, task_settings=parsed_tasks, secrets={})

    def _read_task_settings(self, task_type: TaskType, reader: SettingsReader) -> dict[str, Any]:
        if task_type is TaskType.RERANK:
            value = reader.boolean("return_documents")
            return {} if value is None else {"return_documents": value}
        return {}

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        reader = SettingsReader(task_settings, "task_settings")
        parsed = self._read_task_settings(task_type, reader)
        finish(self.name, reader)
        return parsed

    def parse_update(self, endpoint: Endpoint, service_settings: dict[str, Any]) -> dict[str, Any]:
        """The service_settings after an ``_update`` (allocations only)."""
        reader = SettingsReader(service_settings, "service_settings")
        num_allocations = reader.integer("num_allocations", positive=True)
        errors: list[str] = []
        adaptive = parse_adaptive(reader.values.pop("adaptive_allocations", None), errors)
        for err in errors:
            reader.error(err)
        finish(self.name, reader)
        updated = dict(endpoint.service_settings)
        if num_allocations is not None:
            updated["num_allocations"] = num_allocations
            if adaptive is None:
                updated.pop("adaptive_allocations", None)
        if adaptive is not None:
            updated["adaptive_allocations"] = adaptive
            if adaptive.get("enabled") and num_allocations is None:
                updated.pop("num_allocations", None)
        return updated

    # -- deployments ---------------------------------------------------------------------------
    @staticmethod
    def deployment_id(endpoint: Endpoint) -> str:
        return endpoint.service_settings.get("deployment_id") or endpoint.inference_id

    @staticmethod
    def _adaptive(endpoint: Endpoint) -> dict[str, Any] | None:
        adaptive = endpoint.service_settings.get("adaptive_allocations")
        return adaptive if adaptive and adaptive.get("enabled") else None

    async def start(self, endpoint: Endpoint, timeout: float | None = None) -> None:
        await self._deployment(endpoint, timeout)

    async def _deployment(self, endpoint: Endpoint, timeout: float | None = None):
        deployment_id = self.deployment_id(endpoint)
        existing = self.models.get(deployment_id)
        if existing is not None and existing.state != "failed":
            return existing
        if endpoint.service_settings.get("deployment_id") and existing is None:
            # Attaching to a deployment that another endpoint created (possibly on another
            # replica): start it here from this endpoint's settings.
            pass
        settings = endpoint.service_settings
        return await self.models.deploy(
            deployment_id,
            settings["model_id"],
            endpoint.task_type.value,
            num_allocations=settings.get("num_allocations"),
            num_threads=settings.get("num_threads", 1),
            adaptive=self._adaptive(endpoint),
            timeout=timeout,
        )

    async def stop(self, endpoint: Endpoint) -> None:
        deployment_id = self.deployment_id(endpoint)
        if self.models.get(deployment_id) is not None:
            await self.models.undeploy(deployment_id)

    async def apply_update(self, endpoint: Endpoint) -> None:
        deployment = self.models.get(self.deployment_id(endpoint))
        if deployment is None:
            return
        settings = endpoint.service_settings
        await self.models.update(
            self.deployment_id(endpoint),
            num_allocations=settings.get("num_allocations"),
            adaptive=settings.get("adaptive_allocations"),
        )

    async def probe_dimensions(self, endpoint: Endpoint) -> tuple[int, str | None]:
        deployment = await self._deployment(endpoint)
        info = deployment.info
        if not info.dimensions:
            vec = await deployment.embed(["how big"])
            return int(np.asarray(vec).shape[1]), info.similarity
        return int(info.dimensions), info.similarity

    # -- tasks -----------------------------------------------------------------------------------
    async def embed(self, endpoint, inputs: Sequence[str], input_type: InputType | None,
                    task_settings, timeout=None) -> DenseEmbeddings:
        deployment = await self._deployment(endpoint, timeout)
        kind = input_type.value if input_type is not None else None
        if hasattr(deployment, "embed_with_truncation"):
            vectors, truncated = await deployment.embed_with_truncation(list(inputs), input_type=kind, timeout=timeout)
        else:
            vectors, truncated = await deployment.embed(list(inputs), input_type=kind, timeout=timeout), None
        return DenseEmbeddings(vectors=np.asarray(vectors, dtype=np.float32), element_type="float",
                               truncated=truncated)

    async def sparse_embed(self, endpoint, inputs: Sequence[str], input_type, task_settings,
                           timeout=None) -> list[SparseEmbedding]:
        deployment = await self._deployment(endpoint, timeout)
        results = await deployment.sparse(list(inputs), timeout=timeout)
        return [SparseEmbedding(tokens=tokens, is_truncated=bool(trunc)) for tokens, trunc in results]

    async def rerank(self, endpoint, query: str, inputs: Sequence[str], task_settings,
                     timeout=None) -> list[RankedDoc]:
        deployment = await self._deployment(endpoint, timeout)
        scores = await deployment.rerank(query, list(inputs), timeout=timeout)
        return_documents = task_settings.get("return_documents", True)
        docs = [
            RankedDoc(index=i, relevance_score=float(s), text=inputs[i] if return_documents else None)
            for i, s in enumerate(scores)
        ]
        docs.sort(key=lambda d: d.relevance_score, reverse=True)
        top_n = task_settings.get("top_n")
        return docs[:top_n] if top_n else docs


__all__ = ["LocalModelService", "parse_adaptive"]
