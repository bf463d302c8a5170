"""ELSER hosted on a Hugging Face Inference Endpoint: ``sparse_embedding``.

Elasticsearch's settings: ``service_settings`` ``api_key`` (secret), ``url`` (required),
``rate_limit`` (3000 a minute); ``max_input_tokens`` is always shown as 512. The endpoint takes
``{"inputs": [...]}`` and answers one ``{"token": weight}`` object per input. Like
Elasticsearch, ``GET _inference/_services`` does not list this service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocol.registry import register
from ..protocol.service import Endpoint, InputType, SparseEmbedding, TaskType
from ..protocol.settings import SettingsReader
from ..remote import configuration as cfg
from ..remote.service import RemoteService
from .hugging_face import elser_settings, sparse_embed


@register
class HuggingFaceElserService(RemoteService):
    name = "hugging_face_elser"
    display_name = "Hugging Face ELSER"
    task_types = (TaskType.SPARSE_EMBEDDING,)
    hidden_from_catalogue = True  # as in Elasticsearch: endpoints can still be created
    default_rpm = {TaskType.SPARSE_EMBEDDING: 3000}
    configuration = cfg.configuration(
        cfg.api_key(task_types),
        cfg.rate_limit(task_types),
        url=cfg.field("URL", "The URL endpoint to use for the requests.", task_types, required=True),
    )
    batch_size = 20

    def read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        return elser_settings(self, task_type, ss)

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        return await sparse_embed(self, endpoint, inputs, timeout)
