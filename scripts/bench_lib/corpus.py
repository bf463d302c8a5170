"""Benchmark data: the BEIR SciFact files (corpus, test queries, qrels) and ingest documents
of a chosen size cut from the corpus text, plus the chunk texts the sidecar will embed for
them (computed with the sidecar's own chunker, so the in-process baseline embeds exactly
the same texts)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stack import ROOT

# Chunking of the ingest figures' semantic_text field: a few sentences per chunk, so that a
# document of the "medium" size has several chunks.
INGEST_CHUNKING: dict[str, Any] = {"strategy": "sentence", "max_chunk_size": 40, "sentence_overlap": 0}

# Words per document for each document size of the ingest figures.
DOC_SIZES: dict[str, int] = {"short": 30, "medium": 120, "long": 480}


def default_data_dir() -> Path:
    """``$BENCH_DATA_DIR``, else ``shared/data/scifact`` beside the repository (CI clones), else
    ``/work/shared/data/scifact``."""
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env)
    for candidate in (ROOT.parent / "shared" / "data" / "scifact", Path("/work/shared/data/scifact")):
        if (candidate / "corpus.jsonl").is_file():
            return candidate
    return ROOT.parent / "shared" / "data" / "scifact"


@dataclass
class Beir:
    corpus: dict[str, dict[str, str]]  # id -> {"title", "text"}
    queries: dict[str, str]  # test query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: relevance}
    published: dict[str, float]


def load_corpus(data_dir: Path) -> dict[str, dict[str, str]]:
    corpus: dict[str, dict[str, str]] = {}
    with open(data_dir / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = {"title": doc.get("title") or "", "text": doc.get("text") or ""}
    return corpus


def query_texts(data_dir: Path) -> list[str]:
    """Every query's text, in file order (all splits, not only the tested ones)."""
    with open(data_dir / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def load_beir(data_dir: Path) -> Beir:
    corpus = load_corpus(data_dir)
    qrels: dict[str, dict[str, int]] = {}
    with open(data_dir / "qrels-test.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)
        for qid, did, score in reader:
            qrels.setdefault(qid, {})[did] = int(score)
    queries: dict[str, str] = {}
    with open(data_dir / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    return Beir(corpus, queries, qrels, published_scores(data_dir))


def published_scores(data_dir: Path) -> dict[str, float]:
    """The published all-MiniLM-L6-v2 SciFact scores from SOURCE.md (the numbers in the file,
    not copies of them here)."""
    import re

    out: dict[str, float] = {}
    try:
        text = (data_dir / "SOURCE.md").read_text(encoding="utf-8")
    except OSError:
        return out
    m = re.search(r"nDCG@10 = ([0-9.]+)", text)
    if m:
        out["ndcg@10"] = float(m.group(1))
    for name, key in (("Recall@100", "recall@100"), ("Recall@10", "recall@10"), ("nDCG@100", "ndcg@100")):
        m = re.search(rf"\|\s*{re.escape(name)}\s*\|\s*([0-9.]+)\s*\|", text)
        if m:
            out[key] = float(m.group(1))
    return out


def corpus_words(corpus: dict[str, dict[str, str]]) -> list[str]:
    words: list[str] = []
    for doc in corpus.values():
        words.extend(doc["title"].split())
        words.extend(doc["text"].split())
    return words


def make_docs(words: list[str], count: int, size_words: int, *, offset: int = 0) -> list[dict[str, str]]:
    """``count`` documents of ``size_words`` words each, consecutive slices of the corpus
    text (all distinct, so that no embedding is reused between documents), starting at the
    ``offset``-th document slot. ``title`` is a short plain field, ``body`` the semantic one."""
    docs = []
    total = len(words)
    for i in range(offset, offset + count):
        start = (i * size_words) % max(1, total - size_words)
        body = words[start:start + size_words]
        docs.append({"title": " ".join(body[:8]), "body": " ".join(body)})
    return docs


def chunk_texts(docs: list[dict[str, str]], chunking: dict[str, Any], field: str = "body") -> list[str]:
    """The chunk texts the sidecar embeds for ``docs`` (its own chunker and settings)."""
    from sidecar.chunking import chunk_text

    out = []
    for doc in docs:
        for piece in chunk_text(doc[field], chunking):
            if piece.text.strip("\u0000"):
                out.append(piece.text)
    return out
