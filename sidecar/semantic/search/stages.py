"""The single-child retrievers run here (``pinned``, ``rescorer``, ``diversify``) as
Elasticsearch computes them over their child's top ``rank_window_size`` documents, and the
``chunk_rescorer`` inputs of ``text_similarity_reranker``.

* ``pinned``: the pinned documents that exist first, in the order given, scored as
  ``PinnedQueryBuilder`` scores them (just above the organic cap of 2^127, one ulp less per
  position; the filters apply to the organic query only, which the pinned query wraps); then
  the child's documents;
* ``rescorer``: each rescore section rescores the top ``window_size`` documents with its
  ``rescore_query`` (``query_weight``, ``rescore_query_weight``, ``score_mode``) and reorders
  them; documents below the window keep their place;
* ``diversify`` (MMR): ``MMRResultDiversification``: similarities are maximum inner products
  scaled as Lucene scales them, a document's vectors are its dense vector or its semantic_text
  chunk embeddings (best pair counts); the selected documents keep the child's order and scores;
* ``chunk_rescorer``: the field's text chunked (sentence, 300 words by default; a semantic_text
  field's own chunks when no ``chunking_settings`` are given), the chunks scored against
  ``inference_text`` with BM25, the best ``size`` sent to the reranker, a document scoring as its
  best chunk.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from ...chunking import chunk_text, sentence_settings
from ...errors import EsError, illegal_argument
from ..highlight import chunk_texts
from ..layout import inference_path
from ..queries.clauses import index_filtered, listify
from ..rrf import Ranked, sort_key
from ..values import MISSING, get_path

Search = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def docs_query(docs: Sequence[Ranked]) -> dict[str, Any]:
    by_index: dict[str, list[str]] = {}
    for doc in docs:
        by_index.setdefault(doc.index, []).append(doc.id)
    if not by_index:
        return {"match_none": {}}
    should = [index_filtered({"ids": {"values": ids}}, [index]) for index, ids in by_index.items()]
    return should[0] if len(should) == 1 else {"bool": {"should": should}}


# ``MAX_ORGANIC_SCORE``: ``Float.intBitsToFloat(0xfe << 23) - 1`` (2^127 as a float).
_MAX_ORGANIC_BITS = 0xFE << 23


def pin_score(position: int, count: int) -> float:
    """The score of the pinned document at ``position`` (0-based) of ``count``."""
    bits = _MAX_ORGANIC_BITS + 1 + count - position
    return float(np.array([bits], dtype=np.int32).view(np.float32)[0])


async def pinned(search: Search, pins: Sequence[tuple[str | None, str]], child: list[Ranked],
                 window: int) -> tuple[list[Ranked], dict[str, Any]]:
    clauses = []
    for index, doc_id in pins:
        ids = {"ids": {"values": [doc_id]}}
        clauses.append(index_filtered(ids, [index]) if index else ids)
    query: dict[str, Any] = {"bool": {"should": clauses, "minimum_should_match": 1}}
    found = await search({"query": query, "size": 10 * len(pins), "_source": False, "track_total_hits": False})
    present = (found.get("hits") or {}).get("hits") or []
    out: list[Ranked] = []
    taken: set[tuple[str, str]] = set()
    for position, (index, doc_id) in enumerate(pins):
        score = pin_score(position, len(pins))
        for hit in present:
            key = (hit["_index"], hit["_id"])
            if key[1] == doc_id and (index is None or key[0] == index) and key not in taken:
                taken.add(key)
                out.append(Ranked(key[0], key[1], score, None, hit.get("_routing"), len(out)))
    out.sort(key=sort_key)
    out.extend(d for d in child if d.key not in taken)
    return out[:max(window, 0)], {"bool": {"should": clauses}}


def _combine(mode: str, original: np.float32, rescored: np.float32 | None) -> np.float32:
    if rescored is None:
        return original
    if mode == "multiply":
        return np.float32(original * rescored)
    if mode == "avg":
        return np.float32(np.float32(original + rescored) / np.float32(2))
    if mode == "max":
        return max(original, rescored)
    if mode == "min":
        return min(original, rescored)
    return np.float32(original + rescored)


async def rescore(search: Search, sections: Sequence[dict[str, Any]], child: list[Ranked]) -> list[Ranked]:
    docs = list(child)
    for section in sections:
        spec = section["query"]
        window = int(section.get("window_size", 10))
        top = docs[:window]
        if not top:
            continue
        query = {"bool": {"must": spec.get("rescore_query", {"match_all": {}}), "filter": docs_query(top)}}
        found = await search({"query": query, "size": len(top), "_source": False, "track_total_hits": False})
        scores = {(h["_index"], h["_id"]): np.float32(h.get("_score") or 0.0)
                  for h in (found.get("hits") or {}).get("hits") or []}
        qw = np.float32(spec.get("query_weight", 1.0))
        rw = np.float32(spec.get("rescore_query_weight", 1.0))
        mode = str(spec.get("score_mode", "total"))
        rescored = []
        for doc in top:
            hit = scores.get(doc.key)
            value = _combine(mode, np.float32(qw * np.float32(doc.score)),
                             None if hit is None else np.float32(rw * hit))
            rescored.append(Ranked(doc.index, doc.id, float(value), doc.shard_doc, doc.routing, doc.seen, doc.extra))
        rescored.sort(key=sort_key)
        docs = rescored + docs[window:]
    return docs


def _mip(a: np.ndarray, b: np.ndarray) -> np.float32:
    """Lucene's ``MAXIMUM_INNER_PRODUCT`` similarity: the dot product scaled to be positive."""
    dot = np.float32(np.dot(a, b))
    return np.float32(1.0) / np.float32(1.0 - dot) if dot < 0 else np.float32(dot + 1.0)


def mmr(docs: Sequence[Ranked], vectors: Sequence[list[np.ndarray]], query: np.ndarray | None,
        lam: float, size: int) -> list[Ranked]:
    """``MMRResultDiversification.diversify`` over ``docs`` (in the child's order)."""
    if not docs:
        return []
    lam32 = np.float32(lam)
    query_sim: dict[int, np.float32] = {}
    if query is not None:
        for i, vecs in enumerate(vectors):
            if not vecs:
                break
            query_sim[i] = max((_mip(v, query) for v in vecs), default=np.float32(1.4e-45))
    if query_sim:
        best = max(query_sim.values())
        first = min(i for i, v in query_sim.items() if v == best)
    else:
        first = max(range(len(docs)), key=lambda i: (docs[i].score, -i))
    selected = [first]
    cache: dict[tuple[int, int], np.float32] = {}
    for _ in range(size):
        if len(selected) >= size or len(selected) >= len(docs):
            break
        pick, pick_score = -1, np.float32(-np.inf)
        for i, vecs in enumerate(vectors):
            if i in selected or not vecs:
                continue
            highest = np.float32(1.4e-45)
            for j in selected:
                if not vectors[j]:
                    continue
                if (i, j) not in cache:
                    cache[(i, j)] = max(_mip(a, b) for a in vecs for b in vectors[j])
                highest = max(highest, cache[(i, j)])
            value = np.float32(np.float32(lam32 * query_sim.get(i, np.float32(0.0)))
                               - np.float32(np.float32(1.0 - lam32) * highest))
            if value > pick_score:
                pick, pick_score = i, value
        if pick >= 0:
            selected.append(pick)
    return [docs[i] for i in sorted(selected)]


def doc_vectors(source: dict[str, Any] | None, field: str, semantic: bool) -> list[np.ndarray]:
    if not isinstance(source, dict):
        return []
    if semantic:
        chunks = get_path(source, inference_path(field) + ".chunks")
        return [np.asarray(c["embeddings"], dtype=np.float32) for c in listify(chunks)
                if isinstance(c, dict) and isinstance(c.get("embeddings"), list)]
    value = get_path(source, field)
    if value is MISSING or not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], list):
        return [np.asarray(v, dtype=np.float32) for v in value]
    return [np.asarray(value, dtype=np.float32)]


def check_vectors(field: str, vectors: Sequence[list[np.ndarray]]) -> None:
    if vectors and not any(vectors):
        raise EsError(400, "status_exception",
                      f"Failed to retrieve vectors for field [{field}]. Is it a [dense_vector] field?")


_TOKEN = re.compile(r"\w+", re.UNICODE)


def _terms(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def best_chunks(chunks: Sequence[str], query: str, size: int) -> list[str]:
    """``MemoryIndexChunkScorer.scoreChunks``: BM25 (k1 1.2, b 0.75) over the chunks as documents,
    the query's terms as ``should`` clauses; the top ``size`` by score (ties in chunk order); the
    first chunks when none matches."""
    if not chunks or not query.strip():
        return []
    docs = [Counter(_terms(c)) for c in chunks]
    lengths = [sum(d.values()) for d in docs]
    avg = (sum(lengths) / len(docs)) or 1.0
    n = len(docs)
    scored = []
    for i, doc in enumerate(docs):
        score = 0.0
        for term in set(_terms(query)):
            tf = doc.get(term, 0)
            if not tf:
                continue
            df = sum(1 for d in docs if term in d)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * lengths[i] / avg))
        if score > 0:
            scored.append((-score, i))
    scored.sort()
    picked = [chunks[i] for _, i in scored[:size]]
    return picked or list(chunks[:size])


def rescorer_inputs(source: dict[str, Any] | None, field: str, text: str, config: dict[str, Any],
                    query: str, semantic: bool) -> list[str]:
    """The texts a document sends to the reranker under ``chunk_rescorer``."""
    settings = config.get("chunking_settings")
    if semantic and not settings and isinstance(source, dict):
        stored = get_path(source, inference_path(field) + ".chunks")
        if isinstance(stored, list) and stored:
            return best_chunks(chunk_texts(source, stored, field), query, config["size"])
    if settings is None:
        settings = sentence_settings(300, 0)
    elif set(settings) == {"max_chunk_size"}:
        settings = sentence_settings(int(settings["max_chunk_size"]), 0)
    try:
        chunks = [c.text for c in chunk_text(text, settings)] if text else []
    except (ValueError, KeyError, TypeError) as exc:
        raise illegal_argument(f"Invalid chunking settings: {exc}") from None
    return best_chunks(chunks, query, config["size"])
