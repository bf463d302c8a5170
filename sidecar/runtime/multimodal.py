"""Local multimodal (CLIP-style) models for the ``embedding`` task: text and images in one
vector space, through sentence-transformers.

A model directory is a sentence-transformers model whose modules read both modalities (its
``CLIPModel`` module over a transformers ``CLIPModel`` and ``CLIPProcessor``). Images arrive as
base64 ``data:`` URIs and are decoded with Pillow. An input that groups several contents (a
caption and an image) gets the mean of their embeddings: a CLIP model embeds one modality at a
time, and the mean of its (comparable, same-space) vectors is the usual way to fuse them.

These models live beside the text runtime of :mod:`.manager` (which serves one text task per
deployment): one loaded copy per endpoint, run in a worker thread, one batch at a time.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import EsError, status_exception
from ..protocol.embedding import Content, ContentGroup
from ..protocol.service import DenseEmbeddings, Endpoint, InputType, TaskType
from .local_service import LocalModelService
from .models import resolve_device
from .resolve import resolve_model

log = logging.getLogger("sidecar.runtime")


def decode_image(content: Content) -> Any:
    """The Pillow image of an ``image`` content (RGB); a 400 when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    _, data = content.image_bytes()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        raise EsError(400, "status_exception", "Could not decode the image input: not a supported image format") from None
    return image.convert("RGB")


class MultimodalModel:
    """One loaded sentence-transformers model that embeds texts and images."""

    def __init__(self, path: str, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device=device)
        modalities = set(getattr(self.model, "modalities", ()) or ())
        if "image" not in modalities:
            raise status_exception(
                400, f"Model at [{path}] cannot embed images; the [embedding] task needs a multimodal model"
            )
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimensions = int(dimension() or 0)
        self.similarity = {"cosine": "cosine", "dot": "dot_product", "euclidean": "l2_norm"}.get(
            str(getattr(self.model, "similarity_fn_name", "cosine") or "cosine"), "cosine"
        )

    def encode(self, groups: Sequence[ContentGroup]) -> np.ndarray:
        """Blocking: one float32 vector per group (each modality encoded in its own batch)."""
        flat = [content for group in groups for content in group]
        texts = [i for i, c in enumerate(flat) if c.is_text]
        images = [i for i, c in enumerate(flat) if not c.is_text]
        vectors = np.zeros((len(flat), self.dimensions), dtype=np.float32)
        if texts:
            vectors[texts] = self.model.encode([flat[i].value for i in texts], convert_to_numpy=True)
        if images:
            pictures = [decode_image(flat[i]) for i in images]
            vectors[images] = self.model.encode(pictures, convert_to_numpy=True)
        out, start = [], 0
        for group in groups:
            out.append(vectors[start : start + len(group)].mean(axis=0))
            start += len(group)
        return np.stack(out).astype(np.float32, copy=False) if out else vectors[:0]


class MultimodalLocalService(LocalModelService):
    """A local service whose ``embedding`` endpoints run a multimodal model; every other task
    goes to the text runtime as before."""

    multimodal_task: ClassVar[TaskType] = TaskType.EMBEDDING

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._loaded: dict[str, asyncio.Future[MultimodalModel]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _is_multimodal(self, endpoint: Endpoint) -> bool:
        return endpoint.task_type is self.multimodal_task

    def _load(self, model_id: str) -> MultimodalModel:
        models = self.models
        resolved = resolve_model(model_id, aliases=models.aliases, cache_dir=models.cache_dir)
        model = MultimodalModel(resolved.path, resolve_device(models.device))
        log.info("loaded multimodal model [%s] from [%s]", model_id, resolved.path)
        return model

    async def _model(self, endpoint: Endpoint, timeout: float | None = None) -> MultimodalModel:
        key = self.deployment_id(endpoint)
        loading = self._loaded.get(key)
        if loading is None or (loading.done() and (loading.cancelled() or loading.exception() is not None)):
            loading = asyncio.ensure_future(asyncio.to_thread(self._load, endpoint.service_settings["model_id"]))
            self._loaded[key] = loading
        try:
            return await asyncio.wait_for(asyncio.shield(loading), timeout)
        except EsError:
            raise
        except TimeoutError:
            raise
        except Exception as exc:  # loading errors from torch/transformers
            raise status_exception(
                400,
                f"Could not load model [{endpoint.service_settings['model_id']}] for task "
                f"[{endpoint.task_type.value}]: {type(exc).__name__}: {exc}",
            ) from None

    async def start(self, endpoint: Endpoint, timeout: float | None = None) -> None:
        if not self._is_multimodal(endpoint):
            return await super().start(endpoint, timeout)
        await self._model(endpoint, timeout)

    async def stop(self, endpoint: Endpoint) -> None:
        if not self._is_multimodal(endpoint):
            return await super().stop(endpoint)
        self._loaded.pop(self.deployment_id(endpoint), None)
        self._locks.pop(self.deployment_id(endpoint), None)

    async def probe_dimensions(self, endpoint: Endpoint) -> tuple[int, str | None]:
        if not self._is_multimodal(endpoint):
            return await super().probe_dimensions(endpoint)
        model = await self._model(endpoint)
        return model.dimensions, model.similarity

    async def _encode(self, endpoint: Endpoint, groups: Sequence[ContentGroup], timeout: float | None) -> DenseEmbeddings:
        model = await self._model(endpoint, timeout)
        lock = self._locks.setdefault(self.deployment_id(endpoint), asyncio.Lock())
        async with lock:
            vectors = await asyncio.to_thread(model.encode, list(groups))
        return DenseEmbeddings(vectors=vectors, element_type="float")

    async def embed(self, endpoint, inputs: Sequence[str], input_type: InputType | None,
                    task_settings, timeout=None) -> DenseEmbeddings:
        if not self._is_multimodal(endpoint):
            return await super().embed(endpoint, inputs, input_type, task_settings, timeout)
        return await self._encode(endpoint, [(Content("text", t, "text"),) for t in inputs], timeout)

    async def embed_contents(self, endpoint, inputs: Sequence[ContentGroup], input_type: InputType | None,
                             task_settings, timeout=None) -> DenseEmbeddings:
        if not self._is_multimodal(endpoint):
            return await super().embed_contents(endpoint, inputs, input_type, task_settings, timeout)
        return await self._encode(endpoint, inputs, timeout)
