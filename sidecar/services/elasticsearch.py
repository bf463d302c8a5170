"""The ``elasticsearch`` service: text_embedding, sparse_embedding and rerank with local models,
and (on nodes of 9.4 and later, which know the task type) ``embedding`` of texts and images with
a local multimodal CLIP-style sentence-transformers model (:mod:`sidecar.runtime.multimodal`).
Elasticsearch's own ``elasticsearch`` service has no ``embedding`` task, so ``_services`` does
not list it.

``model_id`` takes Elasticsearch's built-in ids (``.multilingual-e5-small``, ``.elser_model_2``,
``.rerank-v1``, with or without ``_linux-x86_64``), Eland-style ids
(``sentence-transformers__all-minilm-l6-v2``), any Hugging Face model id or a local path;
see ``sidecar.runtime`` for how ids resolve.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import TaskType
from ..runtime.multimodal import MultimodalLocalService

_SETTING = {"sensitive": False, "updatable": False, "supported_task_types": ["text_embedding", "sparse_embedding", "rerank"]}


@register
class ElasticsearchService(MultimodalLocalService):
    name = "elasticsearch"
    display_name = "Elasticsearch"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.EMBEDDING)
    extra_task_types = (TaskType.EMBEDDING,)
    configuration: dict[str, dict[str, Any]] = {
        "model_id": {**_SETTING, "description": "The name of the model to use for the inference task.",
                     "label": "Model ID", "required": True, "type": "str", "default_value": None},
        "num_allocations": {**_SETTING, "description": "The total number of allocations this model is assigned across machine learning nodes.",
                            "label": "Number Allocations", "required": True, "type": "int", "default_value": 1,
                            "updatable": True},
        "num_threads": {**_SETTING, "description": "Sets the number of threads used by each model allocation during inference.",
                        "label": "Number Threads", "required": True, "type": "int", "default_value": 2},
    }
