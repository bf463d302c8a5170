"""The fusion, normalization, MMR and chunk-scoring arithmetic in process, against hand
computations of Elasticsearch's formulas (float32 throughout)."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.semantic.rrf import Ranked, fuse
from sidecar.semantic.search.fusion import jfloat, linear, normalize
from sidecar.semantic.search.stages import best_chunks, mmr


def docs(*pairs):
    return [Ranked("i", d, s, None, None, n) for n, (d, s) in enumerate(pairs)]


def test_minmax_single_document_and_equal_scores_give_one():
    assert normalize("minmax", docs(("a", 7.5))) == [1.0]
    assert normalize("minmax", docs(("a", 3.0), ("b", 3.0))) == [1.0, 1.0]
    assert normalize("minmax", docs(("a", 10.0), ("b", 9.0), ("c", 5.0))) == [1.0, np.float32(0.8), 0.0]


def test_minmax_max_starts_at_float_min_value():
    # Every score negative: max stays Float.MIN_VALUE (the smallest positive float), as in Java.
    out = normalize("minmax", docs(("a", -1.0), ("b", -3.0)))
    assert out[1] == 0.0 and out[0] == np.float32(np.float32(2.0) / np.float32(1.4e-45 + 3.0))


def test_l2_norm_and_none():
    assert normalize("l2_norm", docs(("a", 3.0), ("b", 4.0))) == [np.float32(0.6), np.float32(0.8)]
    assert normalize("l2_norm", docs(("a", 0.0))) == [0.0]  # norm below epsilon: unchanged
    assert normalize("none", docs(("a", 3.0))) == [3.0]


def test_linear_weighted_sum_window_and_min_score():
    lexical = docs(("1", 10.0), ("2", 9.0), ("3", 5.0))
    knn = docs(("4", 1.0))
    out = linear([lexical, knn], [10.0, 2.0], ["minmax", "none"], 10, None)
    assert [(d.id, d.score) for d in out] == [("1", 10.0), ("2", 8.0), ("4", 2.0), ("3", 0.0)]
    assert [d.id for d in linear([lexical, knn], [10.0, 2.0], ["minmax", "none"], 2, None)] == ["1", "2"]
    assert [d.id for d in linear([lexical, knn], [10.0, 2.0], ["minmax", "none"], 10, 2.0)] == ["1", "2", "4"]


def test_weighted_rrf():
    out = fuse([docs(("1", 1.0)), docs(("2", 1.0))], 60, 10, [0.1, 0.9])
    assert [d.id for d in out] == ["2", "1"]
    assert out[0].score == float(np.float32(0.9) * (np.float32(1) / np.float32(61)))


def test_java_float_strings():
    assert jfloat(20.0) == "20.0"
    assert jfloat(1e-5) == "1.0E-5"
    assert jfloat(np.float32(1) / np.float32(61)) == "0.016393442"


def test_mmr_picks_the_most_relevant_then_the_most_different():
    # Query [1, 0]; a and b nearly identical, c orthogonal. lambda 0.5, size 2.
    vecs = [[np.array([1.0, 0.0], np.float32)], [np.array([0.99, 0.141], np.float32)],
            [np.array([0.0, 1.0], np.float32)]]
    picked = mmr(docs(("a", 3.0), ("b", 2.0), ("c", 1.0)), vecs, np.array([1.0, 0.0], np.float32), 0.5, 2)
    # a first (query similarity 2.0); then b: 0.5*1.99 - 0.5*1.99 = 0, c: 0.5*1.0 - 0.5*1.0 = 0 ->
    # b is seen first and a tie is not a win: b. With lambda 0.3, c wins.
    assert [d.id for d in picked] == ["a", "b"]
    picked = mmr(docs(("a", 3.0), ("b", 2.0), ("c", 1.0)), vecs, np.array([1.0, 0.0], np.float32), 0.3, 2)
    assert [d.id for d in picked] == ["a", "c"]


@pytest.mark.parametrize("size", [1, 2])
def test_best_chunks_bm25(size):
    chunks = ["Rates rose again.", "The cat slept on the rug.", "Markets fell."]
    assert best_chunks(chunks, "cat rug", size)[0] == "The cat slept on the rug."
    assert best_chunks(chunks, "unrelated words", size) == chunks[:size]
