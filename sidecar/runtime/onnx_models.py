"""Loaded models of the ``onnx-int8`` backend: int8 ONNX graphs run by a plain ONNX Runtime
``InferenceSession`` on the CPU, tokenised with the ``tokenizers`` library.

Same items, results and :class:`~sidecar.runtime.models.ModelInfo` as the torch models in
:mod:`sidecar.runtime.models`; the graphs come from :mod:`sidecar.runtime.onnx_cache` (built
once per model, in a child process). Neither torch nor transformers is imported here.

- A batch is tokenised at once (truncated to the model window; ``truncated`` is set when a
  text did not fit), ordered by token count and split with
  :func:`~sidecar.runtime.models.plan_batches`; each sub-batch is padded to its longest row.
- ONNX Runtime's ``run`` is thread-safe, so all allocations of a deployment share one
  session. A session's intra-op thread count is fixed when it is created: there is one
  session per thread count in use (the deployment's ``threads_per_allocation``), inter-op
  threads 1.
- Dense pooling, ``Dense`` layers and normalisation are inside the exported graph, exactly as
  the model's sentence-transformers modules declare them; SPLADE pooling is inside the sparse
  graph, so only ``(batch, vocab)`` weights leave ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from . import onnx_cache
from .models import (
    MAX_BATCH_TOKENS_DENSE,
    MAX_SPARSE_LOGITS,
    MAX_SPARSE_TOKENS,
    LoadedModel,
    ModelInfo,
    plan_batches,
)

log = logging.getLogger(__name__)

BACKEND = "onnx-int8"


class OnnxModel(LoadedModel):
    """A model served from one cache entry. Subclasses turn each row of a sub-batch's graph
    output into a result (:meth:`_result`)."""

    device = "cpu"
    backend = BACKEND

    def __init__(self, path: str, entry: Path, manifest: dict[str, Any]) -> None:
        # Not LoadedModel.__init__: that places a torch model on a torch device.
        self.path = path
        import onnxruntime
        from tokenizers import Tokenizer

        self._ort = onnxruntime
        self.entry = entry
        self.model_file = str(entry / "model.onnx")
        info = manifest["info"]
        self.info = ModelInfo(info.get("dimensions"), info.get("similarity"), int(info["max_seq_length"]),
                              bool(info.get("normalized")))
        self.query_prefix = info.get("query_prefix", "") or ""
        self.passage_prefix = info.get("passage_prefix", "") or ""
        self.lowercase = bool(info.get("do_lower_case"))
        self.inputs = list(manifest["inputs"])
        tokenizer = Tokenizer.from_file(str(entry / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.info.max_seq_length, strategy="longest_first")
        # Never reconfigured after this point, so concurrent encode calls are safe.
        self.tokenizer = tokenizer
        self.pad_id = int(manifest.get("pad_id") or 0)
        self._sessions: dict[int, Any] = {}
        self._sessions_lock = threading.Lock()
        # The session made here (which also proves the graph loads) has 1 thread; it is
        # dropped when requests come with another thread count.
        self._provisional: int | None = None
        self._session(1)
        self._provisional = 1

    def _session(self, threads: int):
        session = self._sessions.get(threads)
        if session is not None:
            return session
        with self._sessions_lock:
            session = self._sessions.get(threads)
            if session is None:
                ort = self._ort
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.log_severity_level = 3
                session = ort.InferenceSession(self.model_file, options, providers=["CPUExecutionProvider"])
                if self._provisional is not None:
                    self._sessions.pop(self._provisional, None)
                    self._provisional = None
                self._sessions[threads] = session
        return session

    # -- running -------------------------------------------------------------------------

    def token_lengths(self, items: list[Any]) -> list[int]:
        return [len(e.ids) for e in self._encode(items)]

    def run_batch(self, items: list[Any], threads: int = 1, lengths: list[int] | None = None) -> list[Any]:
        # The items are tokenised here anyway: ``lengths`` are not needed.
        session = self._session(max(1, int(threads)))
        encodings = self._encode(items)
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(items)), key=lengths.__getitem__)
        results: list[Any] = [None] * len(items)
        for sub in plan_batches([lengths[i] for i in order], max_batch_size=len(items) or 1,
                                max_tokens=self._max_batch_tokens()):
            rows = order[sub]
            output = session.run(None, self._feeds([encodings[i] for i in rows]))[0]
            for r, i in enumerate(rows):
                results[i] = (self._result(output[r]), bool(encodings[i].overflowing))
        return results

    def _encode(self, items: list[Any]) -> list[Any]:
        if self.lowercase:
            items = [tuple(x.lower() for x in i) if isinstance(i, tuple) else i.lower() for i in items]
        return self.tokenizer.encode_batch(items, add_special_tokens=True)

    def _max_batch_tokens(self) -> int:
        return MAX_BATCH_TOKENS_DENSE

    def _feeds(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for r, e in enumerate(encodings):
            n = len(e.ids)
            ids[r, :n] = e.ids
            mask[r, :n] = e.attention_mask
            types[r, :n] = e.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in self.inputs}

    def _result(self, row: np.ndarray) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        with self._sessions_lock:
            self._sessions.clear()


class OnnxDenseModel(OnnxModel):
    task = "text_embedding"

    def _result(self, row: np.ndarray) -> np.ndarray:
        return row.astype(np.float32, copy=False)


class OnnxSparseModel(OnnxModel):
    task = "sparse_embedding"

    def __init__(self, path: str, entry: Path, manifest: dict[str, Any], *,
                 max_tokens: int = MAX_SPARSE_TOKENS) -> None:
        self.vocab: list[str] = json.loads((entry / "sparse_vocab.json").read_text(encoding="utf-8"))
        self.max_tokens = max_tokens
        super().__init__(path, entry, manifest)

    def _max_batch_tokens(self) -> int:
        return max(self.info.max_seq_length, MAX_SPARSE_LOGITS // max(1, len(self.vocab)))

    def _result(self, row: np.ndarray) -> dict[str, float]:
        nonzero = np.flatnonzero(row > 0)
        if nonzero.size == 0:
            return {}
        if nonzero.size > self.max_tokens:
            nonzero = nonzero[np.argpartition(-row[nonzero], self.max_tokens - 1)[: self.max_tokens]]
        top = nonzero[np.argsort(-row[nonzero], kind="stable")]
        out: dict[str, float] = {}
        for i in top.tolist():
            key = self.vocab[i]
            if key not in out:  # two ids can sanitise to the same key: keep the larger
                out[key] = float(row[i])
        return out


class OnnxRerankModel(OnnxModel):
    task = "rerank"

    def _result(self, row: np.ndarray) -> float:
        value = float(row.reshape(-1)[0]) if row.size == 1 else float(np.max(row))
        return value if math.isfinite(value) else 0.0


_CLASSES: dict[str, type[OnnxModel]] = {
    "text_embedding": OnnxDenseModel,
    "sparse_embedding": OnnxSparseModel,
    "rerank": OnnxRerankModel,
}


def load_onnx_model(path: str, task: str, *, device: str = "auto", cache_dir: str | None = None) -> OnnxModel:
    """Blocking: the int8 ONNX model for ``path`` and ``task``, exported and quantised first
    when the cache has no usable build. CPU only: ``device`` "cuda…" is refused."""
    cls = _CLASSES.get(task)
    if cls is None:
        raise ValueError(f"unknown task [{task}]")
    if device not in ("auto", "cpu"):
        raise ValueError(
            f"backend [{BACKEND}] runs on the CPU only; use device [cpu] (or [auto]) with it, or "
            f"backend [torch] for device [{device}]"
        )
    entry = onnx_cache.ensure_built(path, task, cache_dir)
    try:
        model = cls(path, entry, onnx_cache.read_manifest(entry) or {})
    except Exception as exc:
        log.warning("the cached int8 ONNX model in [%s] does not load (%s: %s); rebuilding it",
                    entry, type(exc).__name__, exc)
        entry = onnx_cache.ensure_built(path, task, cache_dir, rebuild=True)
        model = cls(path, entry, onnx_cache.read_manifest(entry) or {})
    log.info("model [%s] for task [%s] runs on [%s] (ONNX Runtime %s, CPU) from [%s]",
             path, task, BACKEND, model._ort.__version__, entry)
    return model
