"""Loaded models through the public runtime API: the packaged MiniLM and tiny random models."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from tiny_models import (
    TINY_HIDDEN_SIZE,
    make_tiny_embedding_model,
    make_tiny_rerank_model,
    make_tiny_sparse_model,
    tiny_vocab,
)

from sidecar.runtime import MAX_SPARSE_TOKENS, ModelManager

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "sparse": str(make_tiny_sparse_model(root / "sparse")),
        "rerank": str(make_tiny_rerank_model(root / "rerank")),
        "embed": str(make_tiny_embedding_model(root / "embed")),
    }


@pytest.fixture
async def manager(tiny):
    m = ModelManager(
        aliases={
            ".elser_model_2": tiny["sparse"],
            ".rerank-v1": tiny["rerank"],
            "tiny-embed": tiny["embed"],
            "my-e5-small": tiny["embed"],
            "e5-minilm": "all-MiniLM-L6-v2",
        }
    )
    yield m
    await m.close()


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- dense -------------------------------------------------------------------------------


async def test_packaged_minilm_embeddings(manager):
    dep = await manager.deploy("minilm", MINILM, "text_embedding")
    assert dep.state == "started"
    assert dep.info.dimensions == 384
    assert dep.info.normalized is True
    assert dep.info.similarity == "dot_product"
    assert dep.info.max_seq_length == 256
    vecs = await dep.embed(
        [
            "The cat sits on the mat.",
            "A cat is sitting on a rug.",
            "Quarterly tax filings are due in April.",
        ]
    )
    assert vecs.dtype == np.float32 and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert _cos(vecs[0], vecs[1]) > _cos(vecs[0], vecs[2]) + 0.2


async def test_dense_truncation_flag(manager):
    dep = await manager.deploy("minilm", MINILM, "text_embedding")
    # "word" is one token; the window (256) holds [CLS], 254 words and [SEP].
    texts = ["short text", "word " * 600, "word " * 254, "word " * 255]
    vecs, truncated = await dep.embed_with_truncation(texts)
    assert vecs.shape == (4, 384)
    assert truncated == [False, True, False, True]
    assert (await dep.embed([])).shape == (0, 384)


async def test_concurrent_callers_match_direct_batch_encode(manager):
    dep = await manager.deploy("minilm", MINILM, "text_embedding", num_allocations=2)
    texts = [f"document number {i} talks about {'search ' * (i % 7)}things" for i in range(200)]
    results = await asyncio.gather(*[dep.embed([t]) for t in texts])
    got = np.concatenate(results)
    direct = dep.model.model.encode(texts, batch_size=64)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    assert dep.batcher.items == 200
    assert dep.batcher.batches < 200  # calls were gathered into batches
    assert dep.stats()["inference_count"] == 200


async def test_token_counts_group_batches_and_large_requests_embed_exactly(manager):
    dep = await manager.deploy("minilm", MINILM, "text_embedding")
    model = dep.model
    # Equal characters, unequal tokens: a character count is a poor guide to padding.
    common, rare = "the cat is on the mat " * 3, "zygomorphic xanthophyll " * 3
    counts = model.token_lengths([common[: len(rare)], rare, "word " * 600])
    assert counts[0] < counts[1] and counts[2] == 256  # truncated to the window
    # A request large enough to be counted off the event loop gives the same vectors.
    texts = [f"{'the cat is on the mat ' * (i % 9 + 1)}{'zygomorphic xanthophyll ' * (i % 5)}" for i in range(120)]
    assert sum(map(len, texts)) > 2_000
    got = await dep.embed(texts)
    np.testing.assert_allclose(got, dep.model.model.encode(texts, batch_size=16), atol=1e-5)


async def test_e5_prefixes_by_input_type(manager):
    e5 = await manager.deploy("e5", "my-e5-small", "text_embedding")
    plain = await manager.deploy("plain", "tiny-embed", "text_embedding")
    assert e5.model is plain.model  # one copy of the weights
    st = e5.model.model
    query = await e5.embed(["what is search"], input_type="search")
    passage = await e5.embed(["what is search"], input_type="ingest")
    default = await e5.embed(["what is search"])
    np.testing.assert_allclose(query[0], st.encode(["query: what is search"])[0], atol=1e-6)
    np.testing.assert_allclose(passage[0], st.encode(["passage: what is search"])[0], atol=1e-6)
    np.testing.assert_allclose(default[0], passage[0], atol=1e-6)
    # The same model under a non-E5 name gets no prefix.
    unprefixed = await plain.embed(["what is search"], input_type="search")
    np.testing.assert_allclose(unprefixed[0], st.encode(["what is search"])[0], atol=1e-6)
    assert e5.info.dimensions == TINY_HIDDEN_SIZE


async def test_e5_alias_to_packaged_minilm(manager):
    dep = await manager.deploy("e5-minilm", "e5-minilm", "text_embedding")
    got = await dep.embed(["x"], input_type="search")
    np.testing.assert_allclose(got[0], dep.model.model.encode(["query: x"])[0], atol=1e-6)


# -- sparse ------------------------------------------------------------------------------


async def test_sparse_token_weights(manager, tiny):
    dep = await manager.deploy("elser", ".elser_model_2", "sparse_embedding")
    assert dep.info.dimensions is None and dep.info.max_seq_length == 64
    (short, short_trunc), (long_, long_trunc) = await dep.sparse(["the cat sat on the mat", "search " * 200])
    assert short_trunc is False and long_trunc is True
    vocab = {t.replace(".", "__") for t in tiny_vocab()}
    for tokens in (short, long_):
        assert tokens and len(tokens) <= MAX_SPARSE_TOKENS
        assert all(w > 0 for w in tokens.values())
        assert set(tokens) <= vocab
        weights = list(tokens.values())
        assert weights == sorted(weights, reverse=True)
    assert any(t.startswith("##") for t in short)  # WordPiece pieces are kept as they are


async def test_sparse_matches_reference_splade_pooling(manager, tiny):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    dep = await manager.deploy("elser", ".elser_model_2", "sparse_embedding")
    text = "elastic search finds documents"
    [(tokens, _)] = await dep.sparse([text])
    tok = AutoTokenizer.from_pretrained(tiny["sparse"])
    model = AutoModelForMaskedLM.from_pretrained(tiny["sparse"]).eval()
    with torch.inference_mode():
        enc = tok([text], return_tensors="pt")
        logits = model(**enc).logits[0]
        ref = torch.log1p(torch.relu(logits)).amax(dim=0)
    expected = {
        tok.convert_ids_to_tokens(i).replace(".", "__"): float(ref[i])
        for i in torch.nonzero(ref > 0).flatten().tolist()
    }
    assert set(tokens) == set(expected)
    for key, weight in tokens.items():
        assert weight == pytest.approx(expected[key], rel=1e-4, abs=1e-6)


async def test_sparse_batch_independent_of_neighbours(manager):
    dep = await manager.deploy("elser", ".elser_model_2", "sparse_embedding")
    alone = await dep.sparse(["the dog runs"])
    together = await dep.sparse(["a much longer text about the weather and rain today", "the dog runs"])
    assert alone[0][0].keys() == together[1][0].keys()
    for k, w in alone[0][0].items():
        assert together[1][0][k] == pytest.approx(w, rel=1e-4, abs=1e-6)


# -- rerank ------------------------------------------------------------------------------


async def test_rerank_one_raw_score_per_doc_in_order(manager):
    import torch

    dep = await manager.deploy("rerank", ".rerank-v1", "rerank")
    docs = ["the cat", "a dog in the house", "money and tax law", "x " * 100]
    scores = await dep.rerank("where is the cat", docs)
    assert len(scores) == len(docs) and all(isinstance(s, float) for s in scores)
    direct = dep.model.model.predict(
        [("where is the cat", d) for d in docs], activation_fn=torch.nn.Identity()
    )
    np.testing.assert_allclose(scores, direct, atol=1e-5)
    reversed_scores = await dep.rerank("where is the cat", docs[::-1])
    np.testing.assert_allclose(reversed_scores, scores[::-1], atol=1e-5)
    assert await dep.rerank("q", []) == []


async def test_wrong_task_method_is_rejected(manager):
    from sidecar.errors import EsError

    dep = await manager.deploy("rerank", ".rerank-v1", "rerank")
    with pytest.raises(EsError) as e:
        await dep.embed(["x"])
    assert e.value.status == 400 and "rerank" in e.value.reason


# -- device placement --------------------------------------------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


async def _deploy_all(m: ModelManager):
    return (
        await m.deploy("embed", "tiny-embed", "text_embedding"),
        await m.deploy("elser", ".elser_model_2", "sparse_embedding"),
        await m.deploy("rerank", ".rerank-v1", "rerank"),
    )


def _aliases(tiny) -> dict[str, str]:
    return {".elser_model_2": tiny["sparse"], ".rerank-v1": tiny["rerank"], "tiny-embed": tiny["embed"]}


async def test_cpu_device_runs_every_task(tiny):
    m = ModelManager(aliases=_aliases(tiny), device="cpu")
    try:
        embed, elser, rerank = await _deploy_all(m)
        vecs = await embed.embed(["a short text", "another, somewhat longer text"])
        assert isinstance(vecs, np.ndarray) and vecs.dtype == np.float32 and vecs.shape == (2, TINY_HIDDEN_SIZE)
        [(tokens, _)] = await elser.sparse(["the cat sat on the mat"])
        assert tokens and all(isinstance(w, float) for w in tokens.values())
        scores = await rerank.rerank("cat", ["the cat", "tax law"])
        assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    finally:
        await m.close()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda:99"])
async def test_unknown_or_missing_device_fails_the_deployment_with_400(tiny, device):
    from sidecar.errors import EsError

    m = ModelManager(aliases=_aliases(tiny), device=device)
    try:
        with pytest.raises(EsError) as e:
            await m.deploy("embed", "tiny-embed", "text_embedding")
        assert e.value.status == 400
        assert f"[{device}]" in e.value.reason
        assert m.get("embed") is None  # not kept as a failed deployment
    finally:
        await m.close()


@pytest.mark.skipif(_cuda(), reason="this host has CUDA")
async def test_cuda_without_a_gpu_fails_the_deployment_with_400(tiny):
    from sidecar.errors import EsError

    m = ModelManager(aliases=_aliases(tiny), device="cuda")
    try:
        with pytest.raises(EsError) as e:
            await m.deploy("embed", "tiny-embed", "text_embedding")
        assert e.value.status == 400 and e.value.type == "status_exception"
        assert "device [cuda]" in e.value.reason and "CUDA is not available" in e.value.reason
    finally:
        await m.close()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA device")
async def test_cuda_results_match_cpu(tiny):
    texts = ["the cat sat on the mat", "a much longer text about search engines and their indices " * 3, "x"]
    docs = ["the cat", "a dog in the house", "money and tax law"]
    cpu, gpu = ModelManager(aliases=_aliases(tiny), device="cpu"), ModelManager(aliases=_aliases(tiny), device="cuda")
    try:
        c_embed, c_elser, c_rerank = await _deploy_all(cpu)
        g_embed, g_elser, g_rerank = await _deploy_all(gpu)
        c_vecs, g_vecs = await c_embed.embed(texts), await g_embed.embed(texts)
        assert isinstance(g_vecs, np.ndarray) and g_vecs.dtype == np.float32  # back on the host
        np.testing.assert_allclose(g_vecs, c_vecs, atol=1e-4, rtol=1e-3)
        for (c_tokens, c_trunc), (g_tokens, g_trunc) in zip(
            await c_elser.sparse(texts), await g_elser.sparse(texts), strict=True
        ):
            assert c_trunc == g_trunc
            shared = c_tokens.keys() & g_tokens.keys()
            assert len(shared) >= 0.95 * len(c_tokens)  # near-zero weights may differ in sign only
            for key in shared:
                assert g_tokens[key] == pytest.approx(c_tokens[key], rel=1e-3, abs=1e-4)
        np.testing.assert_allclose(
            await g_rerank.rerank("where is the cat", docs), await c_rerank.rerank("where is the cat", docs),
            atol=1e-4, rtol=1e-3,
        )
    finally:
        await cpu.close()
        await gpu.close()
