"""The local model runtime: model resolution, loaded models, micro-batching and deployments.

Public API::

    from sidecar.runtime import ModelManager, Deployment, ModelInfo

    manager = ModelManager(aliases=config.model_aliases, cache_dir=config.model_cache_dir)
    dep = await manager.deploy("my-e5", ".multilingual-e5-small", "text_embedding")
    vectors = await dep.embed(["hello"], input_type="search")

Importing this package is cheap; torch and sentence-transformers load with the first model.
"""

from .allocations import AdaptiveAllocations
from .batcher import MicroBatcher
from .deployment import Deployment
from .manager import ModelManager
from .models import MAX_SPARSE_TOKENS, TASKS, ModelInfo
from .resolve import BUILTIN_MODELS, ResolvedModel, resolve_model

__all__ = [
    "BUILTIN_MODELS",
    "MAX_SPARSE_TOKENS",
    "TASKS",
    "AdaptiveAllocations",
    "Deployment",
    "MicroBatcher",
    "ModelInfo",
    "ModelManager",
    "ResolvedModel",
    "resolve_model",
]
