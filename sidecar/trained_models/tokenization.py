"""Tokenizers of uploaded models, built with Hugging Face ``tokenizers`` from what Eland
uploaded: the vocabulary (``vocabulary``, plus ``merges`` for BPE and ``scores`` for
SentencePiece unigram models) and the ``tokenization`` object of the model's
``inference_config``.

==============  =====================================================================
``bert``        BERT normaliser (lower-casing and accent stripping with ``do_lower_case``),
                BERT pre-tokeniser, WordPiece; ``[CLS] a [SEP] b [SEP]``; 4 model inputs
``mpnet``       as ``bert`` with ``<s> a </s></s> b </s>``; 2 model inputs
``roberta``     byte-level BPE (``merges``), ``add_prefix_space``; ``<s> a </s></s> b </s>``
``xlm_roberta`` SentencePiece unigram (``scores``), ``▁`` metaspace; ``<s> a </s></s> b </s>``
``deberta_v2``  SentencePiece unigram; ``[CLS] a [SEP] b [SEP]``
==============  =====================================================================

``truncate`` (``first``, ``second``, ``none``) and ``max_sequence_length`` behave as in
Elasticsearch: ``none`` refuses inputs longer than the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import status_exception

# The tokenization kinds Elasticsearch knows, with its defaults.
DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": {"do_lower_case": False, "with_special_tokens": True, "max_sequence_length": 512,
             "truncate": "first", "span": -1},
    "bert_ja": {"do_lower_case": False, "with_special_tokens": True, "max_sequence_length": 512,
                "truncate": "first", "span": -1},
    "mpnet": {"do_lower_case": False, "with_special_tokens": True, "max_sequence_length": 512,
              "truncate": "first", "span": -1},
    "roberta": {"add_prefix_space": False, "with_special_tokens": True, "max_sequence_length": 512,
                "truncate": "first", "span": -1},
    "xlm_roberta": {"with_special_tokens": True, "max_sequence_length": 512, "truncate": "first", "span": -1},
    "deberta_v2": {"do_lower_case": False, "with_special_tokens": True, "max_sequence_length": 512,
                   "truncate": "first", "span": -1},
}
TRUNCATE = ("first", "second", "none", "balanced")

_SPECIALS = {
    # kind: (cls, sep, pad, unk, mask, pair separator is doubled)
    "bert": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", False),
    "bert_ja": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", False),
    "mpnet": ("<s>", "</s>", "<pad>", "[UNK]", "<mask>", True),
    "roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>", True),
    "xlm_roberta": ("<s>", "</s>", "<pad>", "<unk>", "<mask>", True),
    "deberta_v2": ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", False),
}


@dataclass
class Encoded:
    """One batch, padded to its longest sequence."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    token_type_ids: list[list[int]]
    truncated: list[bool]
    tokens: list[list[str]] = field(default_factory=list)


class UploadedTokenizer:
    """Tokenises texts (or text pairs) for an uploaded model. Thread-safe: one configured
    ``tokenizers.Tokenizer`` per truncation mode, never reconfigured after construction."""

    def __init__(self, tokenization: dict[str, Any], vocabulary: dict[str, Any]) -> None:
        if len(tokenization) != 1:
            raise status_exception(400, "tokenization must hold exactly one tokenizer kind")
        self.kind, options = next(iter(tokenization.items()))
        if self.kind not in DEFAULTS:
            raise status_exception(400, f"unsupported tokenization [{self.kind}]")
        self.options = {**DEFAULTS[self.kind], **(options or {})}
        self.max_length = int(self.options["max_sequence_length"])
        self.truncate = self.options["truncate"]
        self.with_special_tokens = bool(self.options["with_special_tokens"])
        self.vocab: list[str] = list(vocabulary["vocabulary"])
        cls, sep, pad, unk, mask, doubled = _SPECIALS[self.kind]
        self.pad_id = self._id(pad, 0)
        self._base = self._build(vocabulary, unk)
        if self.with_special_tokens:
            from tokenizers.processors import TemplateProcessing

            c, s = (cls, self._id(cls, 0)), (sep, self._id(sep, 0))
            pair = f"{cls} $A {sep} {sep} $B:1 {sep}:1" if doubled else f"{cls} $A {sep} $B:1 {sep}:1"
            self._base.post_processor = TemplateProcessing(
                single=f"{cls} $A {sep}", pair=pair, special_tokens=[c, s])
        # Texts too long for the window are cut (first/second) or refused (none).
        self._untruncated = self._clone()
        self._by_strategy = {}
        for strategy in ("longest_first", "only_first", "only_second"):
            tok = self._clone()
            tok.enable_truncation(self.max_length, strategy=strategy)
            self._by_strategy[strategy] = tok

    # -- construction ----------------------------------------------------------------------
    def _id(self, token: str, default: int) -> int:
        try:
            return self.vocab.index(token)
        except ValueError:
            return default

    def _build(self, vocabulary: dict[str, Any], unk: str):
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        kind, opts = self.kind, self.options
        if kind in ("bert", "bert_ja", "mpnet"):
            vocab = {t: i for i, t in enumerate(self.vocab)}
            tok = Tokenizer(models.WordPiece(vocab, unk_token=unk if unk in vocab else "[UNK]",
                                             max_input_chars_per_word=100))
            lower = bool(opts.get("do_lower_case"))
            tok.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=lower, lowercase=lower)
            tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            tok.decoder = decoders.WordPiece()
        elif kind == "roberta":
            merges = vocabulary.get("merges")
            if not merges:
                raise status_exception(400, "a [roberta] tokenization needs the vocabulary's [merges]")
            vocab = {t: i for i, t in enumerate(self.vocab)}
            pairs = [tuple(m.split(" ", 1)) for m in merges]
            tok = Tokenizer(models.BPE(vocab, pairs, unk_token=unk if unk in vocab else None))
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(opts.get("add_prefix_space")))
            tok.decoder = decoders.ByteLevel()
        else:  # xlm_roberta, deberta_v2: SentencePiece unigram
            scores = vocabulary.get("scores")
            if not scores or len(scores) != len(self.vocab):
                raise status_exception(
                    400, f"a [{kind}] tokenization needs one vocabulary [scores] entry per token")
            unk_id = self._id(unk, 0)
            tok = Tokenizer(models.Unigram(list(zip(self.vocab, (float(s) for s in scores), strict=True)),
                                           unk_id=unk_id, byte_fallback=False))
            # NFKC stands in for the SentencePiece model's precompiled normaliser (not uploaded).
            steps = [normalizers.NFKC()]
            if kind == "deberta_v2" and opts.get("do_lower_case"):
                steps.append(normalizers.Lowercase())
            tok.normalizer = normalizers.Sequence(steps)
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        return tok

    def _clone(self):
        from tokenizers import Tokenizer

        clone = Tokenizer.from_str(self._base.to_str())
        clone.no_padding()
        clone.no_truncation()
        return clone

    @property
    def needs_token_type_ids(self) -> bool:
        return self.kind in ("bert", "bert_ja", "deberta_v2")

    # -- use -------------------------------------------------------------------------------
    def count(self, texts: list[Any]) -> list[int]:
        """Tokens per item, after truncation (what a forward pass pads to)."""
        tok = self._by_strategy["longest_first"]
        return [len(e.ids) for e in tok.encode_batch([self._input(t) for t in texts],
                                                     add_special_tokens=self.with_special_tokens)]

    @staticmethod
    def _input(item: Any) -> Any:
        return tuple(item) if isinstance(item, tuple | list) else item

    def encode(self, items: list[Any], truncate: str | None = None) -> Encoded:
        """``items`` are texts or (text, text) pairs; ``truncate`` overrides the config's."""
        truncate = truncate or self.truncate
        inputs = [self._input(i) for i in items]
        full = self._untruncated.encode_batch(inputs, add_special_tokens=self.with_special_tokens)
        lengths = [len(e.ids) for e in full]
        too_long = [n > self.max_length for n in lengths]
        if truncate == "none":
            for n in lengths:
                if n > self.max_length:
                    raise status_exception(
                        400, f"Input too large. The tokenized input length [{n}] exceeds the maximum sequence "
                             f"length [{self.max_length}]")
            encodings = full
        elif any(too_long):
            strategy = {"first": "only_first", "second": "only_second"}.get(truncate, "longest_first")
            if strategy != "longest_first" and any(not isinstance(i, tuple) for i in inputs):
                strategy = "longest_first"  # a single sequence is cut at its end
            encodings = self._by_strategy[strategy].encode_batch(
                inputs, add_special_tokens=self.with_special_tokens)
        else:
            encodings = full
        width = max((len(e.ids) for e in encodings), default=0)
        ids, mask, types, tokens = [], [], [], []
        for e in encodings:
            pad = width - len(e.ids)
            ids.append(list(e.ids) + [self.pad_id] * pad)
            mask.append([1] * len(e.ids) + [0] * pad)
            types.append(list(e.type_ids) + [0] * pad)
            tokens.append(list(e.tokens))
        return Encoded(ids, mask, types, too_long, tokens)


def model_inputs(encoded: Encoded, n_args: int):
    """The tensors a traced model takes, in Eland's order: ``input_ids, attention_mask``
    and, for 4-argument traces, ``token_type_ids, position_ids``."""
    import torch

    ids = torch.tensor(encoded.input_ids, dtype=torch.long)
    mask = torch.tensor(encoded.attention_mask, dtype=torch.long)
    if n_args <= 2:
        return (ids, mask)[:max(1, n_args)]
    types = torch.tensor(encoded.token_type_ids, dtype=torch.long)
    positions = torch.arange(ids.shape[1], dtype=torch.long).expand(ids.shape[0], -1).contiguous()
    return (ids, mask, types, positions)[:n_args]
