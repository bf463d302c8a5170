"""The ``onnx-int8`` backend through the public runtime API: tiny random models exported to
ONNX and quantised to int8 in a child process, served by ONNX Runtime, compared with the
torch fp32 reference, and the on-disk cache of those builds.

Agreement bounds: the tiny models are random BERTs (hidden size 32, 2 layers). Dynamic int8
quantisation (per-channel weights) keeps their embeddings at cosine ≥ 0.9999 to fp32 and
their SPLADE weights and rerank scores within ~0.01; the bounds below (cosine ≥ 0.98,
differences ≤ 0.05) leave room for other ONNX Runtime versions and kernels without letting a
wrong graph (wrong pooling, inputs or padding: cosine well below 0.9) pass.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_models import (
    TINY_HIDDEN_SIZE,
    make_tiny_embedding_model,
    make_tiny_rerank_model,
    make_tiny_sparse_model,
)

from sidecar.errors import EsError
from sidecar.runtime import MAX_SPARSE_TOKENS, ModelManager
from sidecar.runtime.loader import load_model

# The exports run in a child process, as they do in the sidecar.
pytestmark = pytest.mark.es

BACKEND = "onnx-int8"
TEXTS = [
    "the cat sat on the mat",
    "elastic search finds documents about dogs and cats",
    "x",
    "weather " * 100,  # longer than the 64-token window
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-tiny-models")
    return {
        "sparse": str(make_tiny_sparse_model(root / "sparse")),
        "rerank": str(make_tiny_rerank_model(root / "rerank")),
        "embed": str(make_tiny_embedding_model(root / "embed")),
        "embed-raw": str(make_tiny_embedding_model(root / "embed-raw", seed=5, normalize=False)),
    }


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory) -> Path:
    """One model cache for the whole session, so each tiny model is exported once."""
    return tmp_path_factory.mktemp("onnx-model-cache")


def _aliases(tiny) -> dict[str, str]:
    return {
        ".elser_model_2": tiny["sparse"],
        ".rerank-v1": tiny["rerank"],
        "tiny-embed": tiny["embed"],
        "tiny-embed-raw": tiny["embed-raw"],
        "my-e5-small": tiny["embed"],
    }


def _manager(tiny, cache_dir: Path, backend: str) -> ModelManager:
    return ModelManager(aliases=_aliases(tiny), cache_dir=str(cache_dir), backend=backend)


@pytest.fixture
async def onnx(tiny, onnx_cache_dir, monkeypatch):
    # The cache lives beside the model cache; the environment says where that is for
    # every load (also those not given the manager's cache_dir).
    monkeypatch.setenv("SIDECAR_MODEL_CACHE_DIR", str(onnx_cache_dir))
    m = _manager(tiny, onnx_cache_dir, BACKEND)
    yield m
    await m.close()


@pytest.fixture
async def torch_manager(tiny, onnx_cache_dir):
    m = _manager(tiny, onnx_cache_dir, "torch")
    yield m
    await m.close()


@pytest.fixture
def export_log(caplog):
    caplog.set_level(logging.INFO, logger="sidecar.runtime")

    def lines(fragment: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]

    return lines


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _entries(cache_dir: Path) -> list[Path]:
    root = cache_dir / "sidecar-onnx"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []


# -- dense -------------------------------------------------------------------------------


async def test_dense_matches_torch(onnx, torch_manager):
    dep = await onnx.deploy("e", "tiny-embed", "text_embedding")
    ref = await torch_manager.deploy("e", "tiny-embed", "text_embedding")
    assert dep.state == "started"
    assert dep.info == ref.info
    assert dep.info.dimensions == TINY_HIDDEN_SIZE and dep.info.similarity == "dot_product"
    assert dep.info.max_seq_length == 64 and dep.info.normalized is True
    vecs, truncated = await dep.embed_with_truncation(TEXTS)
    ref_vecs, ref_truncated = await ref.embed_with_truncation(TEXTS)
    assert vecs.dtype == np.float32 and vecs.shape == (len(TEXTS), TINY_HIDDEN_SIZE)
    assert truncated == ref_truncated == [False, False, False, True]
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert _cos(vecs, ref_vecs).min() >= 0.98
    assert (await dep.embed([])).shape == (0, TINY_HIDDEN_SIZE)


async def test_concurrent_sidecars_share_one_export(tiny, tmp_path, monkeypatch, export_log):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIDECAR_MODEL_CACHE_DIR", str(cache))
    # Two sidecars sharing one model cache start the same model at once: one export.
    first, second = _manager(tiny, cache, BACKEND), _manager(tiny, cache, BACKEND)
    try:
        deps = await asyncio.gather(first.deploy("e", "tiny-embed", "text_embedding"),
                                    second.deploy("e", "tiny-embed", "text_embedding"))
        assert [d.state for d in deps] == ["started", "started"]
        assert len(export_log("exporting model")) == 1
        assert export_log("int8 vs fp32")  # the export's progress is logged
        np.testing.assert_allclose(await deps[0].embed(TEXTS), await deps[1].embed(TEXTS), atol=1e-6)
        assert len(_entries(cache)) == 1
    finally:
        await first.close()
        await second.close()


async def test_dense_without_normalize_batches_like_single_calls(onnx, torch_manager):
    dep = await onnx.deploy("raw", "tiny-embed-raw", "text_embedding", num_allocations=2, num_threads=2)
    ref = await torch_manager.deploy("raw", "tiny-embed-raw", "text_embedding")
    assert dep.info == ref.info and dep.info.normalized is False and dep.info.similarity == "cosine"
    texts = [f"document {i} about {'search ' * (i % 9)}dogs" for i in range(60)]
    together = await dep.embed(texts)
    alone = np.concatenate(await asyncio.gather(*[dep.embed([t]) for t in texts]))
    # Padding never leaks into a vector: a text gets (nearly) the same vector in any batch.
    assert _cos(together, alone).min() >= 0.999
    assert _cos(together, await ref.embed(texts)).min() >= 0.98
    # Norms are the model's own (no normalisation added).
    np.testing.assert_allclose(np.linalg.norm(together, axis=1),
                               np.linalg.norm(await ref.embed(texts), axis=1), rtol=0.05)


async def test_e5_prefixes_as_with_torch(onnx, torch_manager):
    dep = await onnx.deploy("e5", "my-e5-small", "text_embedding")
    ref = await torch_manager.deploy("e5", "my-e5-small", "text_embedding")
    assert (dep.query_prefix, dep.passage_prefix) == ("query: ", "passage: ")
    for input_type in ("search", "ingest"):
        got = await dep.embed(["what is search"], input_type=input_type)
        want = await ref.embed(["what is search"], input_type=input_type)
        assert _cos(got, want)[0] >= 0.98
    assert _cos(await dep.embed(["x"], input_type="search"), await dep.embed(["x"]))[0] < 0.9999


# -- sparse and rerank -------------------------------------------------------------------


async def test_sparse_matches_torch(onnx, torch_manager):
    dep = await onnx.deploy("elser", ".elser_model_2", "sparse_embedding")
    ref = await torch_manager.deploy("elser", ".elser_model_2", "sparse_embedding")
    assert dep.info == ref.info
    got, want = await dep.sparse(TEXTS), await ref.sparse(TEXTS)
    assert [t for _, t in got] == [t for _, t in want] == [False, False, False, True]
    for (tokens, _), (expected, _) in zip(got, want, strict=True):
        assert tokens and len(tokens) <= MAX_SPARSE_TOKENS
        weights = list(tokens.values())
        assert weights == sorted(weights, reverse=True) and weights[-1] > 0
        # Same vocabulary keys; weights close. Tokens with weights near zero may cross it.
        for key, weight in expected.items():
            assert tokens.get(key, 0.0) == pytest.approx(weight, abs=0.05)
        assert list(tokens)[:5] == list(expected)[:5] or len(set(tokens) ^ set(expected)) <= 5


async def test_rerank_matches_torch(onnx, torch_manager):
    dep = await onnx.deploy("rerank", ".rerank-v1", "rerank")
    ref = await torch_manager.deploy("rerank", ".rerank-v1", "rerank")
    docs = ["the cat", "a dog in the house", "money and tax law", "x " * 100]
    scores = await dep.rerank("where is the cat", docs)
    assert len(scores) == len(docs) and all(isinstance(s, float) for s in scores)
    np.testing.assert_allclose(scores, await ref.rerank("where is the cat", docs), atol=0.05)
    np.testing.assert_allclose(await dep.rerank("where is the cat", docs[::-1]), scores[::-1], atol=1e-5)
    assert await dep.rerank("q", []) == []


# -- the cache ---------------------------------------------------------------------------


async def test_second_load_reuses_the_cache(onnx, export_log, onnx_cache_dir):
    await onnx.deploy("first", "tiny-embed", "text_embedding")
    before = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in _entries(onnx_cache_dir)}
    exports = len(export_log("exporting model"))
    await onnx.undeploy("first")
    dep = await onnx.deploy("again", "tiny-embed", "text_embedding")
    assert dep.state == "started"
    assert len(export_log("exporting model")) == exports
    after = {p.name: (p / "model.onnx").stat().st_mtime_ns for p in _entries(onnx_cache_dir)}
    assert after == before


async def test_partial_and_corrupt_entries_are_rebuilt(tiny, onnx, onnx_cache_dir, tmp_path, monkeypatch,
                                                      export_log):
    good_dep = await onnx.deploy("e", "tiny-embed", "text_embedding")
    texts = ["the cat sat on the mat", "x"]
    good = await good_dep.embed(texts)
    # A model cache of its own, holding a copy of the built entry.
    cache = tmp_path / "cache"
    [built] = [p for p in _entries(onnx_cache_dir) if p.name.startswith("embed-text_embedding-")]
    shutil.copytree(built, cache / "sidecar-onnx" / built.name)
    monkeypatch.setenv("SIDECAR_MODEL_CACHE_DIR", str(cache))
    exports = len(export_log("exporting model"))

    async def embed() -> np.ndarray:
        m = _manager(tiny, cache, BACKEND)
        try:
            dep = await m.deploy("e", "tiny-embed", "text_embedding")
            return await dep.embed(texts)
        finally:
            await m.close()

    np.testing.assert_allclose(await embed(), good, atol=1e-6)
    assert len(export_log("exporting model")) == exports  # the copy is used as it is
    [entry] = _entries(cache)
    model = entry / "model.onnx"
    size = model.stat().st_size

    # A partial entry (a build that died while writing): rebuilt.
    with open(model, "r+b") as fh:
        fh.truncate(size // 2)
    np.testing.assert_allclose(await embed(), good, atol=1e-6)
    assert len(export_log("exporting model")) == exports + 1
    assert export_log("incomplete")

    # Same size but garbage bytes: the model does not load, so it is rebuilt.
    model.write_bytes(b"\0" * model.stat().st_size)
    np.testing.assert_allclose(await embed(), good, atol=1e-6)
    assert len(export_log("exporting model")) == exports + 2
    assert export_log("does not load")
    assert _entries(cache) == [entry]


# -- what the backend refuses ------------------------------------------------------------


def test_cuda_device_is_refused(tiny, onnx_cache_dir):
    with pytest.raises(ValueError, match=r"runs on the CPU only"):
        load_model(tiny["embed"], "text_embedding", device="cuda", backend=BACKEND, cache_dir=str(onnx_cache_dir))


async def test_a_directory_that_is_not_a_model_fails_the_deployment(tmp_path, onnx_cache_dir, monkeypatch):
    monkeypatch.setenv("SIDECAR_MODEL_CACHE_DIR", str(onnx_cache_dir))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    m = ModelManager(aliases={"broken": str(broken)}, cache_dir=str(onnx_cache_dir), backend=BACKEND)
    try:
        with pytest.raises(EsError) as e:
            await m.deploy("b", "broken", "text_embedding")
        assert e.value.status == 400 and "ONNX" in e.value.reason
    finally:
        await m.close()
