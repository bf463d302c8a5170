"""The ``elasticsearch`` service: text_embedding, sparse_embedding and rerank with local models.

``model_id`` takes Elasticsearch's built-in ids (``.multilingual-e5-small``, ``.elser_model_2``,
``.rerank-v1``, with or without ``_linux-x86_64``), Eland-style ids
(``sentence-transformers__all-minilm-l6-v2``), any Hugging Face model id or a local path;
see ``sidecar.runtime`` for how ids resolve.
"""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import TaskType
from ..runtime.local_service import LocalModelService

_SETTING = {"sensitive": False, "updatable": False, "supported_task_types": ["text_embedding", "sparse_embedding", "rerank"]}


@register
class ElasticsearchService(LocalModelService):
    name = "elasticsearch"
    display_name = "Elasticsearch"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK)
    configuration: dict[str, dict[str, Any]] = {
        "model_id": {**_SETTING, "description": "The name of the model to use for the inference task.",
                     "label": "Model ID", "required": True, "type": "str", "default_value": None},
        "num_allocations": {**_SETTING, "description": "The total number of allocations this model is assigned across machine learning nodes.",
                            "label": "Number Allocations", "required": True, "type": "int", "default_value": 1,
                            "updatable": True},
        "num_threads": {**_SETTING, "description": "Sets the number of threads used by each model allocation during inference.",
                        "label": "Number Threads", "required": True, "type": "int", "default_value": 2},
    }
