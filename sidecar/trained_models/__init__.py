"""The trained model API (``/_ml/trained_models``): models uploaded through Eland (config,
definition parts, vocabulary, stored in hidden Elasticsearch indices and served from the
uploaded TorchScript), Elasticsearch's built-in model ids, deployments, ``_infer`` and
``_stats``.

Public API::

    from sidecar.trained_models import TrainedModels, TrainedModelStore

    trained = TrainedModels(TrainedModelStore(es), models)
    await trained.put("my-model", body)

Importing this package is cheap; torch and ``tokenizers`` load with the first model.
"""

from .service import TrainedModels
from .store import TrainedModelStore

__all__ = ["TrainedModelStore", "TrainedModels"]
