"""Serving an uploaded model: the TorchScript module Eland traced (``torch.jit.load``), fed
by the tokenizer built from the uploaded vocabulary (:mod:`.tokenization`), in the runtime's
:class:`~sidecar.runtime.models.LoadedModel` shape so that deployments, micro-batching and
stats work as for every other local model.

A materialised model is a directory holding ``model.pt`` (the definition), ``vocabulary.json``
and ``config.json`` (the trained model config). What the module returns is read as
Elasticsearch's native process reads it: the first element of a tuple; per input,
``result[i][0]`` when the output has a token axis, else ``result[i]``.

==================  ====================================  ===============================
runtime task        trained model task                    result per item
==================  ====================================  ===============================
text_embedding      ``text_embedding``                    ``(vector, truncated)``
sparse_embedding    ``text_expansion``                    ``({token: weight}, truncated)``
rerank              ``text_similarity`` (pairs)           ``(score, truncated)``
==================  ====================================  ===============================
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.models import MAX_SPARSE_TOKENS, LoadedModel, ModelInfo
from .tokenization import UploadedTokenizer, model_inputs

DEFINITION_FILE = "model.pt"
VOCABULARY_FILE = "vocabulary.json"
CONFIG_FILE = "config.json"

# Trained model task → the runtime's task names.
RUNTIME_TASKS = {"text_embedding": "text_embedding", "text_expansion": "sparse_embedding",
                 "text_similarity": "rerank"}


def inference_task(config: dict[str, Any]) -> str:
    return next(iter(config.get("inference_config") or {"": {}}))


class TorchScriptModel(LoadedModel):
    """An uploaded TorchScript model serving one runtime task."""

    def __init__(self, path: str, task: str, device: str = "auto") -> None:
        super().__init__(path, device)
        import torch

        self.task = task
        base = Path(path)
        self.config = json.loads((base / CONFIG_FILE).read_text(encoding="utf-8"))
        vocabulary = json.loads((base / VOCABULARY_FILE).read_text(encoding="utf-8"))
        options = self.config["inference_config"][inference_task(self.config)]
        self.options = options
        self.tokenizer = UploadedTokenizer(options.get("tokenization") or {"bert": {}}, vocabulary)
        self.module = torch.jit.load(str(base / DEFINITION_FILE), map_location=self.device)
        self.module.eval()
        self.n_args = max(1, len(self.module.forward.schema.arguments) - 1)
        # Elasticsearch replaces "." in tokens: sparse_vector keys are field names.
        self.vocab = [t.replace(".", "__") for t in self.tokenizer.vocab]
        prefixes = self.config.get("prefix_strings") or {}
        self.query_prefix = prefixes.get("search") or ""
        self.passage_prefix = prefixes.get("ingest") or ""
        dims = options.get("embedding_size") if task == "text_embedding" else None
        self.info = ModelInfo(int(dims) if dims else None, "cosine" if task == "text_embedding" else None,
                              self.tokenizer.max_length, False)

    def token_lengths(self, items: list[Any]) -> list[int]:
        try:
            return self.tokenizer.count(items)
        except Exception:
            return super().token_lengths(items)

    def forward(self, items: list[Any], truncate: str | None = None):
        """(output tensor as float32 numpy, truncated flags, encoded batch)."""
        import torch

        encoded = self.tokenizer.encode(items, truncate)
        inputs = tuple(t.to(self.device) for t in model_inputs(encoded, self.n_args))
        with torch.inference_mode():
            out = self.module(*inputs)
        if isinstance(out, tuple | list):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return out.float().cpu().numpy(), encoded.truncated, encoded

    def _run(self, items: list[Any]) -> list[Any]:
        out, truncated, _ = self.forward(items)
        if self.task == "text_embedding":
            vectors = out[:, 0, :] if out.ndim == 3 else out
            if self.info.dimensions is None:
                self.info.dimensions = int(vectors.shape[-1])
            return [(vectors[i].astype(np.float32), truncated[i]) for i in range(len(items))]
        if self.task == "sparse_embedding":
            weights = out[:, 0, :] if out.ndim == 3 else out
            return [(self._tokens(weights[i]), truncated[i]) for i in range(len(items))]
        scores = out.reshape(len(items), -1)[:, 0]
        return [(float(s) if math.isfinite(float(s)) else 0.0, truncated[i]) for i, s in enumerate(scores)]

    def _tokens(self, vec: np.ndarray) -> dict[str, float]:
        nonzero = np.flatnonzero(vec > 0)
        if nonzero.size == 0:
            return {}
        top = nonzero[np.argsort(-vec[nonzero], kind="stable")][:MAX_SPARSE_TOKENS]
        out: dict[str, float] = {}
        for i in top.tolist():
            key = self.vocab[i] if i < len(self.vocab) else f"[unused{i}]"
            out.setdefault(key, float(vec[i]))
        return out

    def close(self) -> None:
        self.module = None


def load_torchscript(path: str, task: str, *, device: str = "auto", backend: str = "torch",
                     cache_dir: str | None = None) -> LoadedModel:
    """The runtime's loader signature (:func:`sidecar.runtime.loader.load_model`): blocking,
    called from a worker thread. Uploaded models always run with torch."""
    config = json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8"))
    trained_task = inference_task(config)
    if RUNTIME_TASKS.get(trained_task) != task:
        wanted = next((k for k, v in RUNTIME_TASKS.items() if v == task), task)
        raise ValueError(f"trained model [{config['model_id']}] is a [{trained_task}] model, not [{wanted}]")
    model = TorchScriptModel(path, task, device=device)
    model.run_batch([("warm up", "warm up")] if task == "rerank" else ["warm up"])
    return model
