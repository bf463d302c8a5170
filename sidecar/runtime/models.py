"""Loaded models, one wrapper per task.

A loaded model turns a *batch of items* into one result per item, in a worker thread
(tokenisation included, so the event loop never does model work). Items and results:

==================  ====================  =============================================
task                item                  result
==================  ====================  =============================================
text_embedding      ``str``               ``(np.ndarray float32 (dims,), truncated)``
sparse_embedding    ``str``               ``({token: weight}, truncated)``
rerank              ``(query, doc)``      ``(score, truncated)``
==================  ====================  =============================================

Behaviour worth knowing:

- **Dense** models run through sentence-transformers' own pipeline (Transformer → Pooling →
  Normalize …), so normalisation is whatever the model says; ``normalized`` reports whether
  the pipeline has a ``Normalize`` module (then ``similarity`` is ``dot_product``).
- **Sparse** models are masked-LM heads with SPLADE pooling:
  ``w[v] = max_t log(1 + relu(logits[t, v]))`` over the non-padding tokens. Weights ``> 0`` are
  kept (as Elasticsearch does for ELSER), at most :data:`MAX_SPARSE_TOKENS` of the largest,
  ordered by weight (largest first). Keys are vocabulary strings (``##ing`` stays as it is);
  a ``.`` in a token becomes ``__``, as Elasticsearch does, because field names cannot hold dots.
- **Rerank** models are sentence-transformers ``CrossEncoder``s; the score is the model's raw
  output (no sigmoid), which is what Elasticsearch's ``text_similarity`` inference returns.
- Inputs longer than the model window are truncated and flagged ``truncated``.
- Every batch is split into length-homogeneous sub-batches (see :func:`plan_batches`) so
  short texts are not padded to the length of a long one.

Torch and sentence-transformers are imported on first load, not at import time.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import status_exception

log = logging.getLogger(__name__)

TASKS = ("text_embedding", "sparse_embedding", "rerank")

# Largest number of (token, weight) pairs kept per sparse embedding. SPLADE-style models put
# non-zero weight on a few dozen to a few hundred vocabulary entries for a passage; the tail
# beyond the 512 largest carries negligible score mass and only bloats the index.
MAX_SPARSE_TOKENS = 512

# Upper bound of padded tokens in one forward pass on a CPU. Measured with all-MiniLM-L6-v2
# (2 torch threads, 2-core EPYC): a token costs least in passes of ~1,000-4,000 padded tokens
# and up to 30 % more in passes of 8,192 (32 texts of 256 tokens: the attention scores and
# activations no longer fit the caches); with 1 thread the curve is flat from 1,024. It also
# keeps activations bounded whatever the batch size.
MAX_BATCH_TOKENS_DENSE = 2_048
# On a GPU larger passes are what keeps it busy; 65,536 tokens of a small encoder's
# activations are a few hundred MB of device memory.
MAX_BATCH_TOKENS_DENSE_GPU = 65_536
MAX_SPARSE_LOGITS = 1 << 26  # floats in one (batch, tokens, vocab) logits tensor: 256 MiB

# What one more forward pass costs, in padded tokens' worth of compute: the price of
# splitting a batch to save padding (see :func:`plan_batches`). Measured with
# all-MiniLM-L6-v2 on CPU (1 torch thread, CPU time of random batches of 32 SciFact queries
# and of 20-250-word passages): 64-128 cost least, 20 % less than splitting only beyond
# 50 % padding and than never splitting; 16 or 512 cost more. More threads make a token
# cheaper but not the per-pass overhead, hence the upper end. On a GPU a pass costs nearly
# the same at any small size, so padding is almost free there and splitting is not.
SPLIT_COST_TOKENS_CPU = 128
SPLIT_COST_TOKENS_GPU = 4096
# On a GPU a sub-batch holds at most this share of padding over its real tokens: sorted by
# token count, a batch of 256 texts falls into a few sub-batches of nearly equal length, so
# the tensor cores spend (almost) nothing on padding, which half precision would otherwise
# make the larger share of a mixed batch's cost. Not measured here (no GPU on the machine
# these defaults were set on); 10 % keeps passes large for any realistic length mix.
MAX_PADDING_WASTE_GPU = 0.10
_MAX_PLAN_WINDOW = 256  # longest sub-batch the planner considers (bounds its work)


@dataclass
class ModelInfo:
    dimensions: int | None  # dense only
    similarity: str | None  # "cosine" | "dot_product" | "l2_norm"
    max_seq_length: int
    normalized: bool


def plan_batches(
    lengths: Sequence[int],
    *,
    max_batch_size: int,
    max_tokens: int,
    overhead_tokens: int = SPLIT_COST_TOKENS_CPU,
    max_waste: float | None = None,
) -> list[slice]:
    """Split items *sorted by length* into the consecutive sub-batches that cost least.

    A forward pass costs about ``overhead_tokens + items × longest``: every padded position
    costs as much as a real token, and each extra pass a fixed amount (Python and kernel
    set-up, expressed in tokens). The cheapest partition is exact (dynamic programming over
    the sorted lengths); a sub-batch holds at most ``max_batch_size`` items and, unless it
    is a single item, at most ``max_tokens`` padded tokens and, when ``max_waste`` is given,
    at most ``max_waste`` × its real tokens of padding.
    """
    n = len(lengths)
    if n == 0:
        return []
    sizes = [max(1, int(x)) for x in lengths]
    prefix = [0, *itertools.accumulate(sizes)]  # real tokens of items [0, i)
    widest = max(1, min(max_batch_size, _MAX_PLAN_WINDOW))
    best = [0.0] + [math.inf] * n  # best[j]: cheapest plan of the first j items
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = 0
        for i in range(j - 1, max(-1, j - 1 - widest), -1):  # sub-batch [i, j)
            longest = max(longest, sizes[i])
            count = j - i
            padded = count * longest
            if count > 1 and padded > max_tokens:
                break
            if count > 1 and max_waste is not None and padded > (prefix[j] - prefix[i]) * (1 + max_waste):
                continue
            cost = best[i] + overhead_tokens + padded
            if cost < best[j]:
                best[j], cut[j] = cost, i
    plans: list[slice] = []
    j = n
    while j > 0:
        plans.append(slice(cut[j], j))
        j = cut[j]
    plans.reverse()
    return plans


def resolve_device(device: str | None) -> str:
    """The torch device a model loads on: ``auto`` is ``cuda`` when torch sees a CUDA device,
    else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N`` are taken as they are, and a CUDA device
    this host does not have is a deployment error (400)."""
    import torch

    wanted = (device or "auto").strip().lower()
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted == "cpu":
        return "cpu"
    if wanted == "cuda" or wanted.startswith("cuda:"):
        index = wanted.partition(":")[2]
        if index and not index.isdigit():
            raise status_exception(400, f"Unknown device [{device}]; use one of [auto, cpu, cuda, cuda:N]")
        if not torch.cuda.is_available():
            raise status_exception(
                400,
                f"Could not load the model on device [{device}]: CUDA is not available to torch on this "
                "host (start the sidecar with --device auto or --device cpu to run local models on CPU)",
            )
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise status_exception(
                400,
                f"Could not load the model on device [{device}]: this host has {count} CUDA "
                f"device(s) [{', '.join(f'cuda:{i}' for i in range(count))}]",
            )
        return wanted
    raise status_exception(400, f"Unknown device [{device}]; use one of [auto, cpu, cuda, cuda:N]")


DTYPES = ("auto", "float32", "float16", "bfloat16")
# What ``auto`` picks on a CUDA device: bfloat16 where the GPU computes in it natively
# (compute capability 8.0 and later: A100, L4, H100), float16 before that (V100, T4).
_BF16_CAPABILITY = (8, 0)
_default_dtype = "auto"


def set_default_dtype(dtype: str) -> None:
    """The dtype of models loaded without one (the sidecar's ``--dtype``)."""
    global _default_dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype [{dtype}]; use one of [{', '.join(DTYPES)}]")
    _default_dtype = dtype


def choose_dtype(wanted: str | None, device: str, cuda_capability: tuple[int, int] | None = None) -> str:
    """The dtype weights and activations run in on ``device``: ``auto`` is float32 on the CPU
    (half-precision matrix products are emulated there on most CPUs, and slower) and on a CUDA
    device bfloat16 from compute capability 8.0, float16 before; an explicit dtype is taken as
    it is (bfloat16 on a CPU works, and is what CPUs with AMX or AVX-512 BF16 run fast).
    ``cuda_capability`` is the GPU's (read from torch when not given)."""
    choice = (wanted or _default_dtype or "auto").strip().lower()
    if choice not in DTYPES:
        raise status_exception(400, f"Unknown dtype [{wanted}]; use one of [{', '.join(DTYPES)}]")
    if choice != "auto":
        return choice
    if device == "cpu":
        return "float32"
    if cuda_capability is None:
        import torch

        cuda_capability = tuple(torch.cuda.get_device_capability(device))  # type: ignore[assignment]
    return "bfloat16" if tuple(cuda_capability) >= _BF16_CAPABILITY else "float16"


def attention_kwargs(attn_implementation: str | None) -> dict[str, Any]:
    """``from_pretrained`` arguments for the attention kernel: by default torch's
    scaled-dot-product attention (fused flash / memory-efficient kernels on a GPU, in half
    precision too); ``eager`` for the ONNX export, whose graph of SDPA carries a NaN guard
    (``IsNaN``/``Where`` on every attention matrix) that the eager graph does without."""
    return {"attn_implementation": attn_implementation or "sdpa"}


def _set_threads(threads: int) -> None:
    import torch

    threads = max(1, min(int(threads), os.cpu_count() or 1))
    # Thread-local with OpenMP: every worker thread sets its own count before each batch.
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def config_says_e5(path: str) -> bool:
    """Whether a model directory declares itself an E5 model (its ``_name_or_path``)."""
    from .resolve import _E5

    name = str(_read_json(Path(path) / "config.json").get("_name_or_path", ""))
    return bool(_E5.search(name.lower()))


class LoadedModel:
    """A model in memory. Subclasses implement :meth:`_run`; :meth:`run_batch` is what
    worker threads call."""

    task: str = ""
    device: str = "cpu"
    on_cpu: bool = True
    split_cost_tokens: int = SPLIT_COST_TOKENS_CPU
    _length_tokenizer: Any = None
    dtype: str = "float32"

    def __init__(self, path: str, device: str = "auto", dtype: str | None = None,
                 attn_implementation: str | None = None) -> None:
        self.path = path
        self.device = resolve_device(device)
        self.on_cpu = self.device == "cpu"
        self.dtype = choose_dtype(dtype, self.device)
        self._model_kwargs = {**attention_kwargs(attn_implementation), "torch_dtype": self._torch_dtype()}
        self.split_cost_tokens = SPLIT_COST_TOKENS_CPU if self.on_cpu else SPLIT_COST_TOKENS_GPU
        self.info = ModelInfo(None, None, 512, False)
        # Tokenizers are not safe to call from several threads at once (their truncation and
        # padding settings are mutable state); model forward passes are.
        self._tokenizer_lock = threading.Lock()
        self.query_prefix = ""
        self.passage_prefix = ""

    def _torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    @staticmethod
    def item_length(item: Any) -> int:
        """Cheap length proxy (characters), for when no tokenizer can count."""
        if isinstance(item, tuple):
            return sum(len(x) for x in item)
        return len(item)

    def _keep_length_tokenizer(self, tokenizer: Any) -> None:
        """Keep a private copy of a fast tokenizer for :meth:`token_lengths`: truncating at
        the model window, never padding, and never reconfigured afterwards, so any thread may
        use it at any time (the model's own tokenizer changes its settings per call)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return
        from tokenizers import Tokenizer

        clone = Tokenizer.from_str(backend.to_str())
        clone.no_padding()
        clone.enable_truncation(self.info.max_seq_length, strategy="longest_first")
        self._length_tokenizer = clone

    def token_lengths(self, items: list[Any]) -> list[int]:
        """Tokens per item after truncation to the model window (what a forward pass pads
        to). Sorting by characters instead padded chunks of similar length by ~35-45 %: the
        token count of same-length texts varies with their vocabulary."""
        tokenizer = self._length_tokenizer
        if tokenizer is not None:
            try:
                return [len(e.ids) for e in tokenizer.encode_batch(items, add_special_tokens=True)]
            except Exception:  # an input this tokenizer cannot take: estimate
                pass
        window = self.info.max_seq_length or 512
        return [min(window, self.item_length(x) // 3 + 2) for x in items]

    def run_batch(self, items: list[Any], threads: int = 1, lengths: list[int] | None = None) -> list[Any]:
        """Blocking: one result per item, in order. Called from a worker thread.
        ``threads`` (torch intra-op threads) applies on CPU only; ``lengths`` are the items'
        :meth:`token_lengths` when the caller has them."""
        import torch

        if self.on_cpu:
            _set_threads(threads)
        if lengths is None or len(lengths) != len(items):
            lengths = self.token_lengths(items)
        order = sorted(range(len(items)), key=lengths.__getitem__)
        ordered = [items[i] for i in order]
        results: list[Any] = [None] * len(items)
        with torch.inference_mode():
            for sub in self._plan([lengths[i] for i in order]):
                for i, result in zip(order[sub], self._run(ordered[sub]), strict=True):
                    results[i] = result
        return results

    def _plan(self, lengths: list[int]) -> list[slice]:
        """Sub-batches of items sorted by their token ``lengths``."""
        return plan_batches(
            lengths,
            max_batch_size=len(lengths) or 1,
            max_tokens=MAX_BATCH_TOKENS_DENSE if self.on_cpu else MAX_BATCH_TOKENS_DENSE_GPU,
            overhead_tokens=self.split_cost_tokens,
            max_waste=None if self.on_cpu else MAX_PADDING_WASTE_GPU,
        )

    def _run(self, items: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _to_device(self, features: dict[str, Any]) -> dict[str, Any]:
        if self.on_cpu:
            return features
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()}

    def close(self) -> None:
        """Drop references to weights so memory can be reclaimed."""


def _truncated_rows(lengths: Sequence[int], max_len: int, recount, features: Any = None) -> list[bool]:
    """Which rows were truncated. Only rows that reached the window can have been. A fast
    tokenizer says so itself (the tokens it cut off are in each encoding's ``overflowing``);
    otherwise those rows are re-tokenised without truncation (``recount(indices) -> lengths``).
    Re-tokenising cost as much as a quarter of the time of long passages on a GPU."""
    flags = [False] * len(lengths)
    candidates = [i for i, n in enumerate(lengths) if n >= max_len]
    if not candidates:
        return flags
    encodings = getattr(features, "encodings", None)
    if encodings is not None and len(encodings) == len(lengths):
        for i in candidates:
            flags[i] = bool(encodings[i].overflowing)
        return flags
    for i, full in zip(candidates, recount(candidates), strict=True):
        flags[i] = full > max_len
    return flags


class DenseModel(LoadedModel):
    task = "text_embedding"

    def __init__(self, path: str, device: str = "auto", dtype: str | None = None,
                 attn_implementation: str | None = None) -> None:
        super().__init__(path, device, dtype, attn_implementation)
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(path, device=self.device, local_files_only=True,
                                         model_kwargs=self._model_kwargs)
        self.model.eval()
        dims = self.model.get_embedding_dimension()
        normalized = any(type(m).__name__ == "Normalize" for m in self.model)
        explicit = getattr(self.model, "_similarity_fn_name", None)
        if normalized or explicit in ("dot", "dot_product"):
            similarity = "dot_product"
        elif explicit in ("euclidean",):
            similarity = "l2_norm"
        else:
            similarity = "cosine"
        self.info = ModelInfo(int(dims) if dims else None, similarity, self._max_len(), normalized)
        self._keep_length_tokenizer(self.model.tokenizer)
        prompts = getattr(self.model, "prompts", None) or {}
        self.query_prefix = prompts.get("query", "") or ""
        self.passage_prefix = prompts.get("passage", prompts.get("document", "")) or ""

    def _max_len(self) -> int:
        value = self.model.max_seq_length
        return int(value) if value and value < 100_000 else 512

    def _run(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        with self._tokenizer_lock:
            features = self.model.preprocess(texts)
        lengths = features["attention_mask"].sum(dim=1).tolist()
        out = self.model(self._to_device(features))
        vectors = out["sentence_embedding"].float().cpu().numpy().astype(np.float32, copy=False)
        truncated = _truncated_rows(
            lengths, self.info.max_seq_length, lambda idx: self._count([texts[i] for i in idx]), features
        )
        return [(vectors[i], truncated[i]) for i in range(len(texts))]

    def _count(self, texts: list[str]) -> list[int]:
        tokenizer = self.model.tokenizer
        with self._tokenizer_lock:
            enc = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


class SparseModel(LoadedModel):
    task = "sparse_embedding"

    def __init__(self, path: str, device: str = "auto", dtype: str | None = None,
                 attn_implementation: str | None = None, *, max_tokens: int = MAX_SPARSE_TOKENS) -> None:
        super().__init__(path, device, dtype, attn_implementation)
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=True, **self._model_kwargs)
        self.model.to(self.device)
        self.model.eval()
        self.max_tokens = max_tokens
        config = self.model.config
        positions = int(getattr(config, "max_position_embeddings", 512) or 512)
        if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        window = getattr(self.tokenizer, "model_max_length", None) or positions
        self.info = ModelInfo(None, None, int(min(window, positions)), False)
        self._keep_length_tokenizer(self.tokenizer)
        vocab_size = int(config.vocab_size)
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
        # Elasticsearch replaces "." in tokens: sparse_vector keys are field names.
        self.vocab = [
            (t if t is not None else f"[unused{i}]").replace(".", "__") for i, t in enumerate(tokens)
        ]
        self.vocab_size = vocab_size

    def _plan(self, lengths: list[int]) -> list[slice]:
        # Sub-batches are planned in _run, within the (batch, tokens, vocab) logits bound.
        return [slice(0, len(lengths))]

    def _run(self, texts: list[str]) -> list[tuple[dict[str, float], bool]]:
        import torch

        max_len = self.info.max_seq_length
        with self._tokenizer_lock:
            enc = self.tokenizer(
                texts, add_special_tokens=True, truncation=True, max_length=max_len, verbose=False
            )
        lengths = [len(ids) for ids in enc["input_ids"]]
        truncated = _truncated_rows(lengths, max_len, lambda idx: self._count([texts[i] for i in idx]), enc)
        # Rows arrive sorted by token_lengths(), which are estimates when the tokenizer is
        # not a fast one: order by the exact counts before grouping.
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        max_batch_tokens = max(max_len, MAX_SPARSE_LOGITS // max(1, self.vocab_size))
        results: list[tuple[dict[str, float], bool]] = [({}, False)] * len(texts)
        for sub in plan_batches(
            [lengths[i] for i in order],
            max_batch_size=len(texts),
            max_tokens=max_batch_tokens,
            overhead_tokens=self.split_cost_tokens,
            max_waste=None if self.on_cpu else MAX_PADDING_WASTE_GPU,
        ):
            rows = order[sub]
            features = {k: [enc[k][i] for i in rows] for k in enc.keys()}
            with self._tokenizer_lock:
                batch = self.tokenizer.pad(features, padding=True, return_tensors="pt")
            batch = self._to_device(batch)
            logits = self.model(**batch).logits  # (batch, tokens, vocab)
            mask = batch["attention_mask"].unsqueeze(-1).to(logits.dtype)
            torch.relu_(logits)
            torch.log1p_(logits)
            logits.mul_(mask)
            weights = logits.amax(dim=1).float().cpu()  # (batch, vocab)
            del logits
            for row, vec in zip(rows, weights, strict=True):
                results[row] = (self._tokens(vec), truncated[row])
        return results

    def _tokens(self, vec) -> dict[str, float]:
        import torch

        nonzero = int((vec > 0).sum())
        if nonzero == 0:
            return {}
        k = min(nonzero, self.max_tokens)
        values, ids = torch.topk(vec, k)  # sorted, largest first
        out: dict[str, float] = {}
        for v, i in zip(values.tolist(), ids.tolist(), strict=True):
            if v <= 0:
                break
            key = self.vocab[i]
            if key not in out:  # two ids can sanitise to the same key: keep the larger
                out[key] = float(v)
        return out

    def _count(self, texts: list[str]) -> list[int]:
        with self._tokenizer_lock:
            enc = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


class RerankModel(LoadedModel):
    task = "rerank"

    def __init__(self, path: str, device: str = "auto", dtype: str | None = None,
                 attn_implementation: str | None = None) -> None:
        super().__init__(path, device, dtype, attn_implementation)
        import torch
        from sentence_transformers import CrossEncoder

        # Raw model output, as Elasticsearch's text_similarity inference returns it.
        self.model = CrossEncoder(
            path, device=self.device, local_files_only=True, activation_fn=torch.nn.Identity(),
            model_kwargs=self._model_kwargs,
        )
        self.model.eval()
        value = self.model.max_seq_length
        max_len = int(value) if value and value < 100_000 else 512
        self.info = ModelInfo(None, None, max_len, False)
        self._keep_length_tokenizer(self.model.tokenizer)

    def _run(self, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        with self._tokenizer_lock:
            features = self.model.preprocess([list(p) for p in pairs])
        lengths = features["attention_mask"].sum(dim=1).tolist()
        scores = self.model(self._to_device(features))["scores"].float().cpu()
        if scores.ndim > 1:
            scores = scores[:, 0] if scores.shape[-1] == 1 else scores.max(dim=-1).values
        values = [float(s) if math.isfinite(float(s)) else 0.0 for s in scores.tolist()]
        truncated = _truncated_rows(
            lengths, self.info.max_seq_length, lambda idx: self._count([pairs[i] for i in idx]), features
        )
        return [(values[i], truncated[i]) for i in range(len(pairs))]

    def _count(self, pairs: list[tuple[str, str]]) -> list[int]:
        tokenizer = self.model.tokenizer
        with self._tokenizer_lock:
            enc = tokenizer(
                [p[0] for p in pairs],
                [p[1] for p in pairs],
                add_special_tokens=True,
                truncation=False,
                verbose=False,
            )
        return [len(ids) for ids in enc["input_ids"]]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
