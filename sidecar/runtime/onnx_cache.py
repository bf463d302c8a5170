"""The on-disk cache of int8 ONNX builds of local models (the ``onnx-int8`` backend).

An entry is a directory ``<root>/<model>-<task>-<key>/`` holding ``model.onnx``,
``tokenizer.json`` and ``manifest.json`` (written last, with the size of every file: an entry
whose files do not match it is incomplete and is rebuilt). ``<root>`` is
``<model cache dir>/sidecar-onnx`` when a model cache directory is configured, else
``sidecar-onnx`` beside the Hugging Face hub cache (``~/.cache/huggingface/sidecar-onnx``).

The key hashes the model directory's files (path, size, modification time), the task, the
export recipe, the quantisation settings and the ONNX Runtime version, so a changed model or
runtime gets a fresh build and later starts load the existing one at once.

Builds run :mod:`sidecar.runtime.onnx_export` in a child process (torch never runs in the
serving process), write into a temporary directory and rename it into place, under a file
lock, so concurrent sidecars sharing the cache neither corrupt it nor build twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .onnx_recipe import QUANT_SETTINGS, RECIPE_VERSION

log = logging.getLogger(__name__)

CACHE_DIR_NAME = "sidecar-onnx"
MANIFEST = "manifest.json"
# A build that takes longer than this is stuck (the packaged MiniLM takes seconds).
BUILD_TIMEOUT_S = 3600.0


def cache_root(cache_dir: str | None = None) -> Path:
    """Where entries live: beside the model cache (``cache_dir``, else
    ``$SIDECAR_MODEL_CACHE_DIR``, else the Hugging Face hub cache)."""
    base = cache_dir or os.environ.get("SIDECAR_MODEL_CACHE_DIR")
    if base:
        return Path(base).expanduser() / CACHE_DIR_NAME
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser().parent / CACHE_DIR_NAME


def _fingerprint(model_dir: Path) -> list[tuple[str, int, int]]:
    files = []
    for root, dirs, names in os.walk(model_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            full = Path(root) / name
            try:
                st = full.stat()
            except OSError:
                continue
            files.append((str(full.relative_to(model_dir)), st.st_size, st.st_mtime_ns))
    return files


def cache_key(model_dir: str, task: str) -> str:
    import onnxruntime

    real = Path(os.path.realpath(model_dir))
    payload = {
        "path": str(real),
        "files": _fingerprint(real),
        "task": task,
        "recipe": RECIPE_VERSION,
        "quantisation": QUANT_SETTINGS,
        "onnxruntime": onnxruntime.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def entry_dir(model_dir: str, task: str, cache_dir: str | None = None) -> Path:
    real = os.path.realpath(model_dir)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(real).name)[:60] or "model"
    if slug in ("model", "snapshots") or re.fullmatch(r"[0-9a-f]{40}", slug):
        # Packaged models live in ".../<package>/model", HF snapshots in ".../<commit>".
        parent = Path(real).parent.name
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{parent}_{slug}")[:60]
    return cache_root(cache_dir) / f"{slug}-{task}-{cache_key(model_dir, task)}"


def read_manifest(entry: Path) -> dict[str, Any] | None:
    """The entry's manifest if the entry is complete (every file present with its size)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        for name, size in manifest["files"].items():
            if (entry / name).stat().st_size != size:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def discard(entry: Path) -> None:
    """Remove an entry (moved aside first, so that nobody sees a half-deleted one)."""
    if not entry.exists():
        return
    trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def ensure_built(model_dir: str, task: str, cache_dir: str | None = None, *, rebuild: bool = False) -> Path:
    """The complete cache entry for ``model_dir`` and ``task``, built first if missing,
    incomplete or (``rebuild``) found unusable. Blocking; call from a worker thread."""
    entry = entry_dir(model_dir, task, cache_dir)
    if not rebuild and read_manifest(entry) is not None:
        return entry
    with _locked(entry.with_name(f".{entry.name}.lock")):
        if rebuild:
            if read_manifest(entry) is not None:
                log.warning("rebuilding the int8 ONNX model in [%s]: the cached one did not load", entry)
            discard(entry)
        elif read_manifest(entry) is not None:  # built by another process meanwhile
            return entry
        elif entry.exists():
            log.warning("rebuilding the int8 ONNX model in [%s]: the cached one is incomplete", entry)
            discard(entry)
        _build(model_dir, task, entry)
    return entry


def _build(model_dir: str, task: str, entry: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=entry.parent))
    try:
        log.info("exporting model [%s] for task [%s] to int8 ONNX in [%s]", model_dir, task, entry)
        t0 = time.monotonic()
        _run_export(model_dir, task, tmp)
        if read_manifest(tmp) is None:
            raise RuntimeError("the ONNX export wrote an incomplete model")
        try:
            os.rename(tmp, entry)
        except OSError:
            if read_manifest(entry) is None:
                raise
        log.info("int8 ONNX model for [%s] ready in %.1f s", model_dir, time.monotonic() - t0)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _run_export(model_dir: str, task: str, out: Path) -> None:
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    cmd = [sys.executable, "-m", "sidecar.runtime.onnx_export", model_dir, str(out), "--task", task]
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                text=True, env=env)
        assert proc.stdout is not None
        # A build that hangs is killed (its stdout then closes and the loop below ends).
        timer = threading.Timer(BUILD_TIMEOUT_S, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                if line.strip():
                    log.info("onnx export [%s]: %s", Path(model_dir).name, line.strip())
            rc = proc.wait()
        finally:
            timer.cancel()
        if rc != 0:
            err.seek(0)
            lines = [x for x in err.read().splitlines() if x.strip()]
            detail = next((x for x in reversed(lines) if x.startswith("error: ")), lines[-1] if lines else "")
            raise RuntimeError(f"exporting [{model_dir}] to ONNX failed (exit {rc}): {detail.removeprefix('error: ')}")
