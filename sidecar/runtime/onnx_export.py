"""Export a local model to ONNX and quantise it to int8: the build step of the ``onnx-int8``
backend, run as its own process (``python -m sidecar.runtime.onnx_export MODEL_DIR OUT_DIR
--task TASK``) so that the serving process never runs torch.

What is exported is the whole inference graph of the task, in fp32, with dynamic batch and
sequence axes:

==================  ============================================================  =====================
task                graph                                                         output
==================  ============================================================  =====================
text_embedding      sentence-transformers pipeline (Transformer → Pooling →       ``(batch, dims)``
                    Dense/Normalize … as the model declares)
sparse_embedding    masked-LM logits with SPLADE pooling                           ``(batch, vocab)``
                    ``max_t log(1 + relu(logits)) · mask``
rerank              cross-encoder scores (raw, no activation)                      ``(batch, labels)``
==================  ============================================================  =====================

The fp32 graph is then quantised dynamically (int8 weights, activations quantised per
batch at run time) with ONNX Runtime's quantiser. Next to ``model.onnx`` the output
directory gets ``tokenizer.json`` (the model's fast tokenizer, for the ``tokenizers``
library) and ``manifest.json`` (what the serving side needs to know: inputs, window,
dimensions, similarity, prefixes, sparse vocabulary). Progress goes to stdout, one line per
step, for the parent to log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .onnx_recipe import QUANT_SETTINGS, RECIPE_VERSION

# The attention the graph is traced from. Traced from torch's scaled-dot-product attention, the
# graph carries a NaN guard on every attention matrix (``IsNaN`` + ``Where`` over
# batch × heads × tokens², for rows that are all padding): with long texts about a fifth of
# ONNX Runtime's operator time. Eager attention adds the padding mask to the scores instead;
# its outputs agree with SDPA's to ~1e-7.
EXPORT_ATTENTION = "eager"

# The tokenizer outputs a BERT-family graph can take, in the order the graph declares them.
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _progress(message: str) -> None:
    print(message, flush=True)


def _input_names(tokenizer) -> list[str]:
    names = list(getattr(tokenizer, "model_input_names", None) or ["input_ids", "attention_mask"])
    return [n for n in _INPUT_NAMES if n in names or n == "input_ids"]


def _info(model) -> dict[str, Any]:
    info = dataclasses.asdict(model.info)
    info.update(query_prefix=model.query_prefix, passage_prefix=model.passage_prefix, do_lower_case=False)
    return info


# Per task: the torch model (the serving classes of the torch backend, so that window,
# dimensions, similarity, prefixes and vocabulary are the same), a graph from tokenizer
# outputs to the task's output, the tokenizer, and files for the serving side.


def _dense(path: str):
    import torch

    from .models import DenseModel

    model = DenseModel(path, device="cpu", dtype="float32", attn_implementation=EXPORT_ATTENTION)
    st = model.model
    names = _input_names(st.tokenizer)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *inputs):
            return self.st(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    info = _info(model)
    # sentence-transformers lower-cases texts itself when the Transformer module says so.
    info["do_lower_case"] = bool(getattr(st[0], "do_lower_case", False))
    return Graph().eval(), st.tokenizer, names, info, {}


def _sparse(path: str):
    import torch

    from .models import SparseModel

    model = SparseModel(path, device="cpu", dtype="float32", attn_implementation=EXPORT_ATTENTION)
    mlm = model.model
    names = _input_names(model.tokenizer)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlm = mlm

        def forward(self, *inputs):
            features = dict(zip(names, inputs, strict=True))
            logits = self.mlm(**features).logits  # (batch, tokens, vocab)
            mask = features["attention_mask"].unsqueeze(-1).to(logits.dtype)
            return (torch.log1p(torch.relu(logits)) * mask).amax(dim=1)

    return Graph().eval(), model.tokenizer, names, _info(model), {"sparse_vocab.json": model.vocab}


def _rerank(path: str):
    import torch

    from .models import RerankModel

    model = RerankModel(path, device="cpu", dtype="float32", attn_implementation=EXPORT_ATTENTION)
    cross = model.model
    names = _input_names(cross.tokenizer)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cross = cross

        def forward(self, *inputs):
            return self.cross(dict(zip(names, inputs, strict=True)))["scores"]

    return Graph().eval(), cross.tokenizer, names, _info(model), {}


_BUILDERS = {"text_embedding": _dense, "sparse_embedding": _sparse, "rerank": _rerank}
_SAMPLES = ["warm up text for the export", "a second, longer sample sentence for the export"]


def _export(graph, features: dict[str, Any], names: list[str], out: Path) -> None:
    import torch

    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    args = tuple(features[n] for n in names)
    # The TorchScript-based exporter: no extra dependencies, fast, and it handles the
    # data-dependent Python control flow of the pooling modules by tracing.
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            graph,
            args,
            str(out),
            input_names=names,
            output_names=["output"],
            dynamic_axes={**axes, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _quantise(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=QUANT_SETTINGS["per_channel"],
        reduce_range=QUANT_SETTINGS["reduce_range"],
        weight_type=getattr(QuantType, QUANT_SETTINGS["weight_type"]),
    )


def _tokenizer_json(tokenizer, out: Path) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not getattr(tokenizer, "is_fast", False):
        raise ValueError("the model has no fast tokenizer (tokenizer.json), which the onnx-int8 backend needs")
    backend.save(str(out))


def build(model_dir: str, out_dir: str, task: str) -> None:
    """Write ``model.onnx`` (int8), ``tokenizer.json`` and ``manifest.json`` into ``out_dir``
    (which must exist and be empty)."""
    import warnings

    builder = _BUILDERS.get(task)
    if builder is None:
        raise ValueError(f"unknown task [{task}]")
    out = Path(out_dir)
    t0 = time.monotonic()
    _progress(f"loading [{model_dir}] with torch for the export")
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    graph, tokenizer, names, info, extra = builder(model_dir)
    pairs = task == "rerank"
    features = tokenizer(*([_SAMPLES, _SAMPLES[::-1]] if pairs else [_SAMPLES]), padding=True,
                         truncation=True, max_length=32, return_tensors="pt")
    features = {n: features[n] for n in names}
    fp32 = out / "model-fp32.onnx"
    _progress(f"exporting the fp32 graph to ONNX ({time.monotonic() - t0:.1f} s)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(graph, features, names, fp32)
        with torch.no_grad():
            reference = graph(*(features[n] for n in names)).float().numpy()
    _progress(f"quantising to int8 ({fp32.stat().st_size / 1e6:.0f} MB fp32, {time.monotonic() - t0:.1f} s)")
    _quantise(fp32, out / "model.onnx")
    fp32.unlink()
    _progress(f"int8 vs fp32 on the export samples: {_agreement(out / 'model.onnx', features, reference)}")
    _tokenizer_json(tokenizer, out / "tokenizer.json")
    for name, value in extra.items():
        (out / name).write_text(json.dumps(value), encoding="utf-8")
    manifest = {
        "task": task,
        "inputs": names,
        "pad_id": int(getattr(tokenizer, "pad_token_id", None) or 0),
        "info": info,
        "quantisation": QUANT_SETTINGS,
        "recipe": RECIPE_VERSION,
        "source": os.path.realpath(model_dir),
        "torch": torch.__version__,
        "files": {p.name: p.stat().st_size for p in out.iterdir()},
    }
    # Written last: an entry without a manifest is incomplete.
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    size = (out / "model.onnx").stat().st_size / 1e6
    _progress(f"done: int8 model {size:.0f} MB in {time.monotonic() - t0:.1f} s")


def _agreement(model: Path, features: dict[str, Any], reference) -> str:
    """How close the int8 graph's output is to the fp32 model's on the export samples."""
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in features.items()})[0].reshape(len(reference), -1)
    ref = reference.reshape(len(reference), -1)
    if ref.shape[1] == 1:
        return f"largest score difference {float(np.abs(got - ref).max()):.4f}"
    cos = (got * ref).sum(1) / np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    return f"smallest cosine {float(cos.min()):.4f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sidecar.runtime.onnx_export", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("out_dir")
    p.add_argument("--task", default="text_embedding", choices=sorted(_BUILDERS))
    args = p.parse_args(argv)
    try:
        build(args.model_dir, args.out_dir, args.task)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
