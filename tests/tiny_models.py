"""Tiny random-initialised models written to disk, for tests.

Each ``make_tiny_*`` function writes a complete, loadable model directory (weights,
``config.json`` and a small WordPiece vocabulary) and returns its path. They are built
with real ``transformers`` classes, so the production loading code runs unchanged; the
weights are random but deterministic (seeded), and the models are small enough to build
in well under a second once torch is imported.

Use them through model aliases, e.g.::

    path = make_tiny_sparse_model(tmp_path / "splade")
    monkeypatch.setenv("SIDECAR_MODEL_ALIASES", f".elser_model_2={path}")

Importing this module is cheap: torch and transformers are imported on first use.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

# The context window of every tiny model (tokens, including [CLS]/[SEP]). Small, so tests
# can exercise truncation with short inputs.
TINY_MAX_SEQ_LENGTH = 64
TINY_HIDDEN_SIZE = 32

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = """
the a an and or of to in on for with is are was be it this that as at by from not no yes
i you he she we they my your our their what which who how when where why can will do does
search elastic elasticsearch index document documents query text vector sparse dense model
inference embedding embeddings token tokens cat cats dog dogs bird fish car cars house tree
city river mountain sea sun moon star water fire food music book books film game play run
good bad big small new old fast slow happy sad red blue green black white one two three
weather rain snow today tomorrow money bank tax law court health doctor school science
""".split()
_PUNCT = list(".,;:!?'\"-()/")


def tiny_vocab() -> list[str]:
    """The vocabulary of every tiny model: special tokens, some whole words, and single
    letters/digits with their ``##`` continuations so that any ASCII text tokenizes without
    ``[UNK]``."""
    chars = list(string.ascii_lowercase + string.digits)
    vocab = _SPECIAL + _PUNCT + chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    for w in _WORDS:
        if w not in seen:
            seen.add(w)
            vocab.append(w)
    return vocab


def _write_tokenizer(path: Path, max_len: int) -> None:
    (path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": True,
                "model_max_length": max_len,
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "mask_token": "[MASK]",
            }
        ),
        encoding="utf-8",
    )
    (path / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "pad_token": "[PAD]",
                "unk_token": "[UNK]",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "mask_token": "[MASK]",
            }
        ),
        encoding="utf-8",
    )


def _bert_config(max_len: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=TINY_HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_len,
        type_vocab_size=2,
        pad_token_id=0,
        **extra,
    )


def _build(path: str | Path, model_cls_name: str, seed: int, max_len: int, **config_extra) -> Path:
    import torch
    import transformers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = _bert_config(max_len, **config_extra)
    model_cls = getattr(transformers, model_cls_name)
    # Seed a private RNG stream so building a model neither depends on nor disturbs the
    # caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.eval()
    model.save_pretrained(str(path))
    _write_tokenizer(path, max_len)
    return path


def make_tiny_sparse_model(
    path: str | Path, *, seed: int = 0, max_seq_length: int = TINY_MAX_SEQ_LENGTH
) -> Path:
    """A ``BertForMaskedLM`` directory: what a SPLADE/ELSER-style sparse model looks like."""
    return _build(path, "BertForMaskedLM", seed, max_seq_length)


def make_tiny_rerank_model(
    path: str | Path, *, seed: int = 1, max_seq_length: int = TINY_MAX_SEQ_LENGTH
) -> Path:
    """A ``BertForSequenceClassification`` (one label) directory, loadable as a
    sentence-transformers ``CrossEncoder``."""
    return _build(path, "BertForSequenceClassification", seed, max_seq_length, num_labels=1)


def make_tiny_embedding_model(
    path: str | Path,
    *,
    seed: int = 2,
    normalize: bool = True,
    max_seq_length: int = TINY_MAX_SEQ_LENGTH,
) -> Path:
    """A sentence-transformers directory: ``Transformer`` (tiny ``BertModel``) → mean
    ``Pooling`` → optional ``Normalize``. Dimensions: :data:`TINY_HIDDEN_SIZE`."""
    path = _build(path, "BertModel", seed, max_seq_length)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
        (path / "2_Normalize").mkdir(exist_ok=True)
    (path / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (path / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}), encoding="utf-8"
    )
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": TINY_HIDDEN_SIZE,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        ),
        encoding="utf-8",
    )
    return path


def make_tiny_clip_model(path: str | Path, *, seed: int = 3, projection_dim: int = 16) -> Path:
    """A multimodal sentence-transformers directory: its ``CLIPModel`` module over a tiny random
    transformers ``CLIPModel`` (text and vision towers) and a ``CLIPProcessor`` (a character-level
    BPE tokenizer, 32×32 images). Embeds texts and images into ``projection_dim`` dimensions.
    The transformers model and processor are written to ``path / "clip"``, the
    sentence-transformers model (what endpoints load) to ``path``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import CLIPModel as ClipModule
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    path = Path(path)
    raw = path / "clip"
    raw.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + "".join(_PUNCT):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (raw / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (raw / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tower = {"hidden_size": TINY_HIDDEN_SIZE, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2, "projection_dim": projection_dim}
    text = CLIPTextConfig(vocab_size=len(vocab), max_position_embeddings=TINY_MAX_SEQ_LENGTH,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1, **tower)
    vision = CLIPVisionConfig(image_size=32, patch_size=8, **tower)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    model.eval()
    model.save_pretrained(str(raw))
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=TINY_MAX_SEQ_LENGTH)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(str(raw))
    SentenceTransformer(modules=[ClipModule(str(raw))], device="cpu").save(str(path))
    return path
