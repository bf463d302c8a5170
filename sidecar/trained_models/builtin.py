"""Elasticsearch's built-in models (``.elser_model_2``, ``.multilingual-e5-small``,
``.rerank-v1``): the config Elasticsearch's model package gives them, and their download.

``PUT _ml/trained_models/.elser_model_2`` stores the package's config and starts fetching
the model in the background, as Elasticsearch does; here the model comes from wherever the
runtime resolves that id (an operator alias, the local Hugging Face cache, or the hub — see
:mod:`sidecar.runtime.resolve`). :class:`Downloads` keeps each fetch's state
(``downloading`` → ``fully_defined`` or ``failed``) and the size of what arrived.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import EsError, status_exception
from .config import NATIVE_INDEX
from .tokenization import DEFAULTS

log = logging.getLogger(__name__)


def _tok(kind: str, **over: Any) -> dict[str, Any]:
    return {kind: {**DEFAULTS[kind], **over}}


_ELSER = {
    "description": "Elastic Learned Sparse EncodeR v2",
    "inference_config": {"text_expansion": {"vocabulary": {"index": NATIVE_INDEX}, "results_field": "predicted_value",
                                            "tokenization": _tok("bert", do_lower_case=True)}},
}
_E5 = {
    "description": "E5 small multilingual",
    "inference_config": {"text_embedding": {"vocabulary": {"index": NATIVE_INDEX}, "results_field": "predicted_value",
                                            "embedding_size": 384, "tokenization": _tok("xlm_roberta")}},
    "prefix_strings": {"ingest": "passage: ", "search": "query: "},
}
_RERANK = {
    "description": "Elastic Rerank v1",
    "inference_config": {"text_similarity": {"vocabulary": {"index": NATIVE_INDEX}, "results_field": "predicted_value",
                                             "span_score_combination": "max",
                                             "tokenization": _tok("deberta_v2", truncate="second")}},
}
PACKAGES: dict[str, dict[str, Any]] = {
    ".elser_model_2": _ELSER, ".elser_model_2_linux-x86_64": _ELSER, ".elser_model_1": _ELSER,
    ".multilingual-e5-small": _E5, ".multilingual-e5-small_linux-x86_64": _E5, ".rerank-v1": _RERANK,
}


def package_config(model_id: str, body: dict[str, Any], *, version: str, now_ms: int) -> dict[str, Any]:
    """The stored config of a built-in model (the request may only name ``input`` and
    ``platform_architecture``)."""
    package = PACKAGES[model_id]
    errors = [f"illegal to set [{k}] at inference model creation for packaged model"
              for k in ("description", "definition", "model_type", "metadata", "inference_config")
              if body.get(k) is not None]
    if body.get("tags"):
        errors.append("illegal to set [tags] at inference model creation for packaged model")
    if errors:
        from ..errors import action_request_validation

        raise action_request_validation(*errors)
    config: dict[str, Any] = {
        "model_id": model_id, "model_type": "pytorch", "created_by": "api_user", "version": version,
        "create_time": now_ms, "model_size_bytes": 0, "estimated_operations": 0, "license_level": "platinum",
        "tags": [], "input": body.get("input") or {"field_names": ["text_field"]},
        "location": {"index": {"name": NATIVE_INDEX}},
        "model_package": {"packaged_model_id": model_id.lstrip(".").removesuffix("_linux-x86_64"),
                          "model_repository": "sidecar"},
        **{k: v for k, v in package.items()},
    }
    if body.get("platform_architecture"):
        config["platform_architecture"] = body["platform_architecture"]
    return config


@dataclass
class Download:
    model_id: str
    state: str = "downloading"  # downloading | fully_defined | failed
    reason: str | None = None
    size_bytes: int = 0
    path: str | None = None
    task: asyncio.Future | None = None


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Downloads:
    """Background fetches of built-in models. ``fetch(model_id) -> path`` is blocking (it
    runs in a worker thread): by default the runtime's own resolution."""

    def __init__(self, fetch: Callable[[str], str]) -> None:
        self.fetch = fetch
        self._downloads: dict[str, Download] = {}

    def get(self, model_id: str) -> Download | None:
        return self._downloads.get(model_id)

    def start(self, model_id: str) -> Download:
        current = self._downloads.get(model_id)
        if current is not None and current.state != "failed":
            return current
        download = Download(model_id)
        self._downloads[model_id] = download
        download.task = asyncio.ensure_future(self._run(download))
        return download

    async def _run(self, download: Download) -> None:
        log.info("downloading built-in model [%s]", download.model_id)
        try:
            path = await asyncio.to_thread(self.fetch, download.model_id)
            download.path = path
            download.size_bytes = await asyncio.to_thread(_dir_size, path)
            download.state = "fully_defined"
            log.info("built-in model [%s] downloaded (%d bytes)", download.model_id, download.size_bytes)
        except Exception as exc:  # noqa: BLE001 - recorded and reported through the API
            download.state = "failed"
            download.reason = exc.reason if isinstance(exc, EsError) else f"{type(exc).__name__}: {exc}"
            log.warning("built-in model [%s] download failed: %s", download.model_id, download.reason)

    async def wait(self, model_id: str, timeout: float | None) -> Download:
        download = self._downloads.get(model_id) or self.start(model_id)
        if download.task is not None and not download.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(download.task), timeout)
            except TimeoutError:
                raise status_exception(
                    408, f"Timed out waiting for model [{model_id}] to download") from None
        if download.state == "failed":
            raise status_exception(
                500, f"Model [{model_id}] download failed: {download.reason}")
        return download

    def forget(self, model_id: str) -> None:
        self._downloads.pop(model_id, None)
