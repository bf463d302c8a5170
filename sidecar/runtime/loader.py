"""Loading a local model for a task with the backend asked for: the torch models of
:mod:`.models` or the int8 ONNX models of :mod:`.onnx_models`. Apart from both, so that neither
backend needs to know the other."""

from __future__ import annotations

from .models import DenseModel, LoadedModel, RerankModel, SparseModel, config_says_e5
from .onnx_models import load_onnx_model

_CLASSES: dict[str, type[LoadedModel]] = {
    "text_embedding": DenseModel,
    "sparse_embedding": SparseModel,
    "rerank": RerankModel,
}


def load_model(
    path: str, task: str, *, device: str = "auto", backend: str = "torch", cache_dir: str | None = None,
    dtype: str | None = None,
) -> LoadedModel:
    """Blocking: load the model at ``path`` for ``task`` on ``device`` ("auto", "cpu",
    "cuda", "cuda:N") with ``backend`` ("torch" or "onnx-int8"). Call from a worker thread.

    ``onnx-int8`` serves every task from an int8 ONNX build of the model (exported in a child
    process and cached beside the model cache ``cache_dir``; see :mod:`.onnx_cache`), on the
    CPU only: it refuses a CUDA ``device`` rather than silently running elsewhere.

    ``dtype`` ("auto", "float32", "float16", "bfloat16"; None: the sidecar's ``--dtype``)
    applies to the torch backend (see :func:`.models.choose_dtype`)."""
    cls = _CLASSES.get(task)
    if cls is None:
        raise ValueError(f"unknown task [{task}]")
    if backend == "onnx-int8":
        model: LoadedModel = load_onnx_model(path, task, device=device, cache_dir=cache_dir)
    elif backend == "torch":
        model = cls(path, device=device, dtype=dtype)
    else:
        raise ValueError(f"unknown backend [{backend}]; use [torch] or [onnx-int8]")
    if config_says_e5(path) and not (model.query_prefix or model.passage_prefix):
        model.query_prefix, model.passage_prefix = "query: ", "passage: "
    # One tiny batch: a model that loads but cannot run fails here (at deploy time) rather
    # than on the first request, and the first request does not pay for kernel set-up.
    model.run_batch([("warm up", "warm up")] if task == "rerank" else ["warm up"])
    return model
