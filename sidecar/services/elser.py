"""The ``elser`` service (deprecated in Elasticsearch 8.16 in favour of ``elasticsearch``):
sparse_embedding with the ELSER model, served by the local runtime."""

from __future__ import annotations

from typing import Any

from ..protocol.registry import register
from ..protocol.service import TaskType
from ..runtime.local_service import LocalModelService


@register
class ElserService(LocalModelService):
    name = "elser"
    display_name = "Elastic Learned Sparse EncodeR"
    task_types = (TaskType.SPARSE_EMBEDDING,)
    default_model_id = ".elser_model_2"
    configuration: dict[str, dict[str, Any]] = {
        "num_allocations": {"description": "The total number of allocations this model is assigned across machine learning nodes.",
                            "label": "Number Allocations", "required": True, "sensitive": False, "updatable": True,
                            "type": "int", "default_value": 1, "supported_task_types": ["sparse_embedding"]},
        "num_threads": {"description": "Sets the number of threads used by each model allocation during inference.",
                        "label": "Number Threads", "required": True, "sensitive": False, "updatable": False,
                        "type": "int", "default_value": 2, "supported_task_types": ["sparse_embedding"]},
    }
