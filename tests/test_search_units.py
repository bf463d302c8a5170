"""Search internals without Elasticsearch: query rewriting, RRF, reranker scores, the semantic
highlighter, ``_source`` hiding and the query-embedding cache."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sidecar.errors import EsError
from sidecar.protocol.service import Endpoint, TaskType
from sidecar.semantic.highlight import FieldHighlight, fragments, utf16_slice
from sidecar.semantic.metadata import IndexSemantics, SemanticField
from sidecar.semantic.queries.context import IndexInfo, RewriteContext
from sidecar.semantic.queries.embedder import _WrongTask
from sidecar.semantic.queries.errors import ShardFailure
from sidecar.semantic.queries.rewriter import QueryRewriter
from sidecar.semantic.queries.sparse import parse_pruning_config
from sidecar.semantic.query_cache import DENSE, SPARSE, QueryEmbedding, QueryEmbeddingCache
from sidecar.semantic.rerank import normalize
from sidecar.semantic.rrf import Ranked, f32, fuse
from sidecar.semantic.search.plan import hide_inference, hide_inference_params

DENSE_SETTINGS = {"task_type": "text_embedding", "dimensions": 3, "similarity": "cosine", "element_type": "float"}
SPARSE_SETTINGS = {"task_type": "sparse_embedding"}


class FakeEmbedder:
    def __init__(self):
        self.calls = []

    async def embed(self, inference_id, text, wanted=None):
        self.calls.append((inference_id, text))
        if inference_id.startswith("sparse"):
            if wanted is TaskType.TEXT_EMBEDDING:
                raise _WrongTask(inference_id, TaskType.SPARSE_EMBEDDING)
            return QueryEmbedding(inference_id, SPARSE, tokens=(("cat", 1.5), ("mat", 0.5)))
        if wanted is TaskType.SPARSE_EMBEDDING:
            raise _WrongTask(inference_id, TaskType.TEXT_EMBEDDING)
        return QueryEmbedding(inference_id, DENSE, vector=(0.1, 0.2, 0.3))


def info(name, fields=None, version=8_537_000):
    semantics = None
    if fields is not None:
        semantics = IndexSemantics(name, {f: SemanticField(f, i, None, s) for f, (i, s) in fields.items()}, {})
    return IndexInfo(name, version, semantics)


def rewriter(indices, types=None, size=None, native=True):
    async def field_types(field, names):
        return {n: (types or {}).get((n, field)) for n in names}

    ctx = RewriteContext(indices={i.name: i for i in indices}, embedder=FakeEmbedder(), field_types=field_types,
                         size=size, native_sparse=native)
    return QueryRewriter(ctx)


def run(coro):
    return asyncio.run(coro)


DENSE_IDX = info("docs", {"content": ("dense-e", DENSE_SETTINGS)})


def test_semantic_dense_is_nested_knn_with_boost_and_name():
    rw = rewriter([DENSE_IDX], size=20)
    out = run(rw.query({"semantic": {"field": "content", "query": "q", "boost": 2.0, "_name": "sem"}}))
    assert out == {"nested": {
        "path": "_sidecar_inference.content.chunks",
        "query": {"knn": {"field": "_sidecar_inference.content.chunks.embeddings", "query_vector": [0.1, 0.2, 0.3],
                          "k": 20}},
        "score_mode": "max", "ignore_unmapped": True, "boost": 2.0, "_name": "sem"}}
    assert [leaf.field for leaf in rw.leaves] == ["content"]


def test_semantic_inside_compound_queries():
    rw = rewriter([DENSE_IDX])
    sem = {"semantic": {"field": "content", "query": "q"}}
    query = {"bool": {"should": [sem, {"match": {"title": "x"}}], "filter": sem},
             "_name": "ignored-by-walker"}
    query = {"dis_max": {"queries": [
        {"bool": {"should": [sem, {"match": {"title": "x"}}], "filter": sem}},
        {"constant_score": {"filter": sem, "boost": 3}},
        {"boosting": {"positive": sem, "negative": {"term": {"t": "x"}}, "negative_boost": 0.5}},
        {"function_score": {"query": sem, "functions": [{"filter": sem, "weight": 2}]}},
    ]}}
    out = run(rw.query(query))
    text = repr(out)
    assert "semantic" not in text
    assert text.count("'nested'") == 6
    assert out["dis_max"]["queries"][0]["bool"]["should"][1] == {"match": {"title": "x"}}


def test_semantic_per_endpoint_clauses_filtered_by_index():
    a = info("a", {"content": ("dense-e", DENSE_SETTINGS)})
    b = info("b", {"content": ("sparse-e", SPARSE_SETTINGS)})
    c = info("c")  # no such field: matches nothing
    rw = rewriter([a, b, c])
    out = run(rw.query({"semantic": {"field": "content", "query": "q", "_name": "n"}}))
    should = out["bool"]["should"]
    assert len(should) == 2
    assert {tuple(s["bool"]["filter"]["terms"]["_index"]) for s in should} == {("a",), ("b",)}
    kinds = {next(iter(s["bool"]["must"]["nested"]["query"])) for s in should}
    assert kinds == {"knn", "sparse_vector"}
    assert all(s["bool"]["must"]["nested"]["_name"] == "n" for s in should)
    assert sorted(i for i, _ in rw.ctx.embedder.calls) == ["dense-e", "sparse-e"]


def test_semantic_without_model_settings_matches_nothing():
    rw = rewriter([info("a", {"content": ("dense-e", None)})])
    assert run(rw.query({"semantic": {"field": "content", "query": "q"}})) == {"match_none": {}}
    # The query is still embedded, as Elasticsearch does while rewriting it (so that an endpoint
    # that does not exist fails the search).
    assert rw.ctx.embedder.calls == [("dense-e", "q")]


def test_semantic_on_other_field_type_is_a_shard_failure():
    rw = rewriter([info("a"), info("b")], types={("a", "title"): {"type": "text"}})
    assert run(rw.query({"semantic": {"field": "title", "query": "q"}})) == {"match_none": {}}
    assert list(rw.failures) == ["a"]  # "b" has no such field: it answers, with no hits
    body = ShardFailure.of(rw.failures).to_body()
    assert body["status"] == 400
    assert body["error"]["type"] == "search_phase_execution_exception"
    assert body["error"]["root_cause"][0] == {
        "type": "illegal_argument_exception",
        "reason": "Field [title] of type [text] does not support semantic queries"}


def test_task_type_mismatch_names_the_field():
    rw = rewriter([info("a", {"content": ("sparse-e", DENSE_SETTINGS)})])
    run(rw.query({"semantic": {"field": "content", "query": "q"}}))
    assert rw.failures["a"]["reason"] == (
        "Field [content] expected query inference results to be of type [text_embedding_result], got "
        "[text_expansion_result]. Has the configuration for inference endpoint [sparse-e] changed?")


def test_match_on_semantic_field_mixed_indices():
    rw = rewriter([DENSE_IDX, info("plain")])
    out = run(rw.query({"match": {"content": {"query": "q", "boost": 2}}}))
    should = out["bool"]["should"]
    assert should[1] == {"bool": {"must": {"match": {"content": {"query": "q", "boost": 2}}},
                                  "filter": {"terms": {"_index": ["plain"]}}}}
    assert should[0]["bool"]["must"]["nested"]["boost"] == 2
    # Only semantic indices: a plain semantic query.
    only = run(rewriter([DENSE_IDX]).query({"match": {"content": "q"}}))
    assert "nested" in only


def test_sparse_vector_without_pruning_is_bool_of_terms():
    rw = rewriter([info("a", version=8_500_000)])
    out = run(rw.query({"sparse_vector": {"field": "tok", "query_vector": {"a": 1.5, "b.c": 2}, "boost": 3}}))
    assert out == {"bool": {"should": [{"term": {"tok": {"value": "a", "boost": 1.5}}},
                                       {"term": {"tok": {"value": "b.c", "boost": 2.0}}}],
                            "minimum_should_match": 1, "boost": 3}}


def test_sparse_vector_pruning_defaults():
    # An 8.19 index prunes by default: the node's own sparse_vector query decides with shard stats.
    out = run(rewriter([info("a")]).query({"sparse_vector": {"field": "tok", "query_vector": {"a": 1}}}))
    assert out == {"sparse_vector": {"field": "tok", "query_vector": {"a": 1.0}}}
    # prune: false is the exact bool-of-terms query everywhere.
    out = run(rewriter([info("a")]).query({"sparse_vector": {"field": "tok", "query_vector": {"a": 1},
                                                             "prune": False}}))
    assert "bool" in out
    # Without the node's query, tokens are not pruned.
    out = run(rewriter([info("a")], native=False).query({"sparse_vector": {"field": "tok", "query_vector": {"a": 1}}}))
    assert "bool" in out


def test_sparse_vector_errors():
    rw = rewriter([info("a")])
    with pytest.raises(EsError, match="inference_id required"):
        run(rw.query({"sparse_vector": {"field": "tok", "query": "text"}}))
    with pytest.raises(EsError, match=r"requires one of \[query_vector\] or \[inference_id\]"):
        run(rw.query({"sparse_vector": {"field": "tok"}}))


def test_text_expansion_and_weighted_tokens():
    rw = rewriter([info("a")])
    out = run(rw.query({"text_expansion": {"tok": {"model_id": "sparse-x", "model_text": "cat", "_name": "te"}}}))
    assert out["bool"]["should"][0] == {"term": {"tok": {"value": "cat", "boost": 1.5}}}
    assert out["bool"]["_name"] == "te"
    out = run(rw.query({"weighted_tokens": {"tok": {"tokens": {"x": 2}, "pruning_config": {}}}}))
    assert out == {"sparse_vector": {"field": "tok", "query_vector": {"x": 2.0}, "prune": True, "pruning_config": {
        "tokens_freq_ratio_threshold": 5, "tokens_weight_threshold": 0.4, "only_score_pruned_tokens": False}}}


def test_pruning_config_validation():
    assert parse_pruning_config({})["tokens_freq_ratio_threshold"] == 5
    with pytest.raises(EsError, match="must be between"):
        parse_pruning_config({"tokens_freq_ratio_threshold": 500})
    with pytest.raises(EsError, match="unknown token"):
        parse_pruning_config({"nope": 1})


def test_knn_query_vector_builder():
    rw = rewriter([info("a")])
    out = run(rw.knn_section({"field": "vec", "k": 3, "num_candidates": 10,
                              "query_vector_builder": {"text_embedding": {"model_id": "dense-e",
                                                                          "model_text": "hello"}}}))
    assert out == {"field": "vec", "k": 3, "num_candidates": 10, "query_vector": [0.1, 0.2, 0.3]}
    with pytest.raises(EsError, match="Is \\[sparse-e\\] a compatible model"):
        run(rw.knn_section({"field": "vec", "query_vector_builder": {"text_embedding": {"model_id": "sparse-e",
                                                                                       "model_text": "x"}}}))


def test_knn_on_semantic_field_uses_its_endpoint():
    rw = rewriter([DENSE_IDX])
    out = run(rw.query({"knn": {"field": "content", "k": 5,
                                "query_vector_builder": {"text_embedding": {"model_text": "x"}}}}))
    assert out["nested"]["query"]["knn"]["field"] == "_sidecar_inference.content.chunks.embeddings"
    assert rw.ctx.embedder.calls == [("dense-e", "x")]


# -- RRF, reranker ------------------------------------------------------------------------------


def test_rrf_matches_hand_computation_in_float32():
    a = [Ranked("i", "1"), Ranked("i", "2"), Ranked("i", "3")]
    b = [Ranked("i", "3"), Ranked("i", "1")]
    fused = fuse([a, b], rank_constant=60, rank_window_size=10)
    assert [d.id for d in fused] == ["1", "3", "2"]
    expect = float(np.float32(np.float32(1 / 61) + np.float32(1 / 62)))
    assert fused[0].score == pytest.approx(expect, rel=1e-7)
    assert f32(fused[2].score) == 0.016129032  # 1/62 as Elasticsearch prints it


def test_rrf_ties_follow_shard_doc_and_window():
    a = [Ranked("i", "x", shard_doc=9)]
    b = [Ranked("i", "y", shard_doc=4)]
    fused = fuse([a, b], rank_constant=1, rank_window_size=1)
    assert [d.id for d in fused] == ["y"]


def test_rerank_score_normalisation():
    assert normalize(2.5) == pytest.approx(3.5)
    assert normalize(-1.0) == pytest.approx(float(np.float32(np.exp(-1.0))))
    assert normalize(0.0) == 1.0


# -- highlighting ---------------------------------------------------------------------------------


def test_utf16_offsets():
    text = "a😀b café"
    assert utf16_slice(text, 0, 3) == "a😀"
    assert utf16_slice(text, 3, 4) == "b"
    assert utf16_slice(text, 5, 9) == "café"


def test_fragments_score_and_document_order():
    source = {"body": "one two. three four. five six."}
    chunks = [{"source": "body", "start_offset": 0, "end_offset": 8, "embeddings": [1.0, 0.0, 0.0]},
              {"source": "body", "start_offset": 9, "end_offset": 20, "embeddings": [0.0, 1.0, 0.0]},
              {"source": "body", "start_offset": 21, "end_offset": 30, "embeddings": [0.0, 0.7, 0.7]}]
    query = QueryEmbedding("e", DENSE, vector=(0.0, 1.0, 0.1))
    top2 = FieldHighlight(number_of_fragments=2, score_order=True)
    assert fragments(source, chunks, [query], "cosine", top2, "body") == ["three four.", "five six."]
    doc_order = FieldHighlight(number_of_fragments=2, score_order=False)
    assert fragments(source, chunks, [query], "cosine", doc_order, "body") == ["three four.", "five six."]
    one = FieldHighlight(number_of_fragments=1)
    assert fragments(source, chunks, [None], "cosine", one, "body") == ["one two."]
    options = FieldHighlight.from_options({"number_of_fragments": 0}, {"order": "score"})
    assert options.number_of_fragments == 1 and options.score_order


# -- _source ----------------------------------------------------------------------------------------


def test_hide_inference_variants():
    body = {}
    assert hide_inference(body, {}) and body["_source"] == {"excludes": ["_sidecar_inference"]}
    body = {"_source": ["title"]}
    assert hide_inference(body, {}) and body["_source"] == {"includes": ["title"],
                                                            "excludes": ["_sidecar_inference"]}
    body = {"_source": {"includes": ["_sidecar_inference.content"]}}
    assert not hide_inference(body, {})
    assert not hide_inference({"_source": False}, {})
    params = {"_source_includes": "title"}
    assert hide_inference({}, params) and params["_source_excludes"] == "_sidecar_inference"
    params = {"_source": "false"}
    assert not hide_inference_params(params)


# -- the query-embedding cache -------------------------------------------------------------------------


def test_query_cache_computes_once_and_evicts():
    endpoint = Endpoint("e", TaskType.TEXT_EMBEDDING, "svc", {"model_id": "m"})
    cache = QueryEmbeddingCache(max_entries=2)
    calls = []

    async def compute(text):
        calls.append(text)
        await asyncio.sleep(0.01)
        return QueryEmbedding("e", DENSE, vector=(1.0,))

    async def scenario():
        await asyncio.gather(*(cache.get(endpoint, DENSE, "a", lambda: compute("a")) for _ in range(3)))
        await cache.get(endpoint, DENSE, "a", lambda: compute("a"))
        await cache.get(endpoint, DENSE, "b", lambda: compute("b"))
        await cache.get(endpoint, DENSE, "c", lambda: compute("c"))
        await cache.get(endpoint, DENSE, "a", lambda: compute("a"))

    asyncio.run(scenario())
    assert calls == ["a", "b", "c", "a"]
    # An endpoint whose settings changed never gets the old embeddings.
    changed = Endpoint("e", TaskType.TEXT_EMBEDDING, "svc", {"model_id": "other"})

    async def again():
        await cache.get(changed, DENSE, "a", lambda: compute("a2"))

    asyncio.run(again())
    assert calls[-1] == "a2"
