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
    vecs, truncated = await dep.embed_with_truncation(["short text", "word " * 600])
    assert vecs.shape == (2, 384)
    assert truncated == [False, True]
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
