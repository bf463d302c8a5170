"""What Eland does to put a Hugging Face model into Elasticsearch, replayed step by step from a
model directory: trace it as ``eland.ml.pytorch.transformers.TransformerModel`` traces it
(slow tokenizer, the sentence-transformers wrapper with the pooler removed, inputs padded to
the window, ``torch.jit.trace`` then ``torch.jit.freeze``), build the vocabulary and config
objects it builds, and upload them with the official client in the order of
``eland_import_hub_model --start``:

1. ``GET _ml/trained_models/{id}`` (does it exist?), 2. ``PUT _ml/trained_models/{id}`` (config),
3. ``PUT .../definition/{n}`` for each 4 MiB base64 part, 4. ``PUT .../vocabulary``,
5. ``POST .../deployment/_start?wait_for=started&timeout=60s``.
"""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path
from typing import Any

CHUNK_SIZE = 4 * 1024 * 1024  # eland.ml.pytorch._pytorch_model.DEFAULT_CHUNK_SIZE


_TRACEABLE = {"return_dict": False}


def _two_parameter(tokenizer) -> bool:
    import transformers

    return isinstance(tokenizer, (transformers.BartTokenizer, transformers.MPNetTokenizer,
                                  transformers.RobertaTokenizer, transformers.XLMRobertaTokenizer))


def _wrapper(model_dir: str, task_type: str, tokenizer):
    """Eland's wrappers (``_SentenceTransformerWrapper``/``_TwoParameter...``) and plain
    models for the other tasks, loaded for tracing (Eland's ``torchscript=True``: tuple
    outputs; transformers 5 spells it ``return_dict=False``)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    two = _two_parameter(tokenizer)
    if task_type == "text_embedding":
        hf = AutoModel.from_pretrained(model_dir, **_TRACEABLE)
        st = SentenceTransformer(model_dir, device="cpu")
        if hasattr(hf, "pooler"):
            hf.pooler = None
        st._modules["0"].auto_model = hf

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self._hf_model, self._st_model = hf, st

            def forward(self, input_ids, attention_mask, token_type_ids=None, position_ids=None):
                inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
                if token_type_ids is not None:
                    inputs["token_type_ids"] = token_type_ids
                    inputs["position_ids"] = position_ids
                return self._st_model(inputs)["sentence_embedding"]

        wrapped = Wrapper()
        if two:
            class Two(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.inner = wrapped

                def forward(self, input_ids, attention_mask):
                    return self.inner(input_ids, attention_mask)

            return Two()
        return wrapped
    if task_type == "text_expansion":
        # ELSER-style: the traced module pools SPLADE weights itself (one vector per input).
        mlm = AutoModelForMaskedLM.from_pretrained(model_dir, **_TRACEABLE)

        class Splade(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mlm = mlm

            def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
                logits = self.mlm(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids, position_ids=position_ids)[0]
                weights = torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1)
                return weights.amax(dim=1)

        return Splade()
    return AutoModelForSequenceClassification.from_pretrained(model_dir, **_TRACEABLE)


def trace_like_eland(model_dir: str | Path, task_type: str, out_dir: str | Path,
                     es_version: tuple[int, int, int] = (8, 19, 0)) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(traced model path, config, vocabulary) as Eland writes them."""
    import torch
    import transformers

    model_dir = str(model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, use_fast=False)
    model = _wrapper(model_dir, task_type, tokenizer)
    model.eval()
    sample = ("What is the meaning of life?The meaning of life, according to the hitchikers guide, is 42."
              if task_type == "text_similarity" else "This is an example sentence.")
    inputs = tokenizer(sample, padding="max_length", return_tensors="pt")
    if "token_type_ids" not in inputs:
        inputs["token_type_ids"] = torch.zeros(inputs["input_ids"].size(1), dtype=torch.long)
    if _two_parameter(tokenizer):
        example = (inputs["input_ids"], inputs["attention_mask"])
    else:
        positions = torch.arange(inputs["input_ids"].size(1), dtype=torch.long)
        example = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], positions)
    traced = torch.jit.freeze(torch.jit.trace(model, example_inputs=example))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = str(out / "traced_pytorch_model.pt")
    torch.jit.save(traced, path)

    vocab_items = tokenizer.get_vocab().items()
    vocabulary: dict[str, Any] = {"vocabulary": [k for k, _ in sorted(vocab_items, key=lambda kv: kv[1])]}
    ranks = getattr(tokenizer, "bpe_ranks", {})
    if ranks:
        vocabulary["merges"] = [" ".join(m) for m, _ in sorted(ranks.items(), key=lambda kv: kv[1])]

    max_len = int(tokenizer.model_max_length)
    if isinstance(tokenizer, transformers.MPNetTokenizer):
        tokenization = {"mpnet": {"do_lower_case": getattr(tokenizer, "do_lower_case", None),
                                  "max_sequence_length": max_len}}
    elif isinstance(tokenizer, (transformers.RobertaTokenizer, transformers.BartTokenizer)):
        tokenization = {"roberta": {"add_prefix_space": getattr(tokenizer, "add_prefix_space", None),
                                    "max_sequence_length": max_len}}
    else:
        tokenization = {"bert": {"do_lower_case": getattr(tokenizer, "do_lower_case", None),
                                 "max_sequence_length": max_len}}
    kind = next(iter(tokenization))
    tokenization[kind] = {k: v for k, v in tokenization[kind].items() if v is not None}
    options: dict[str, Any] = {"tokenization": tokenization}
    if task_type == "text_similarity":
        tokenization[kind]["truncate"] = "second"
    if task_type == "text_embedding" and es_version >= (8, 8, 0):
        with torch.no_grad():
            options["embedding_size"] = int(model(*example).size(-1))
    config = {
        "description": f"Model {model_dir} for task type '{task_type}'",
        "model_type": "pytorch",
        "inference_config": {task_type: options},
        "input": {"field_names": ["text_field"]},
        "metadata": {"per_deployment_memory_bytes": 0, "per_allocation_memory_bytes": 0},
    }
    return path, config, vocabulary


def upload_like_eland(client, model_id: str, model_path: str, config: dict[str, Any],
                      vocabulary: dict[str, Any], *, chunk_size: int = CHUNK_SIZE, start: bool = True) -> list[str]:
    """Eland's request sequence with the official client; returns the steps it took."""
    steps = []
    existing = client.options(ignore_status=404).ml.get_trained_models(model_id=model_id)
    steps.append(f"get:{existing.meta.status}")
    client.ml.put_trained_model(model_id=model_id, **config)
    steps.append("put_config")
    size = os.stat(model_path).st_size
    total_parts = math.ceil(size / chunk_size)
    with open(model_path, "rb") as f:
        for part in range(total_parts):
            data = base64.b64encode(f.read(chunk_size)).decode()
            client.ml.put_trained_model_definition_part(
                model_id=model_id, part=part, total_definition_length=size, total_parts=total_parts,
                definition=data)
            steps.append(f"part:{part}")
    client.perform_request("PUT", f"/_ml/trained_models/{model_id}/vocabulary",
                           headers={"accept": "application/json", "content-type": "application/json"},
                           body=vocabulary)
    steps.append("vocabulary")
    if start:
        client.options(request_timeout=60).ml.start_trained_model_deployment(
            model_id=model_id, timeout="60s", wait_for="started")
        steps.append("start")
    return steps
