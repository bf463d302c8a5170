"""In-process checks of the trained model core: tokenizers built from an uploaded vocabulary
agree with the Hugging Face tokenizers Eland took the vocabulary from, and configs are
validated and completed as Elasticsearch does."""

from __future__ import annotations

import pytest

from sidecar.errors import EsError
from sidecar.trained_models.config import parse_put
from sidecar.trained_models.tokenization import UploadedTokenizer

TEXTS = [
    "Hello, World! This is Elasticsearch.",
    "Café crème brûlée — naïve façade",
    "the dogs ran to the river; 42 cats watched",
    "",
    "UPPER lower MiXeD 123abc",
]


def _eland_vocab(tokenizer) -> dict:
    """``TransformerModel._load_vocab`` of Eland."""
    items = tokenizer.get_vocab().items()
    vocab = {"vocabulary": [k for k, _ in sorted(items, key=lambda kv: kv[1])]}
    ranks = getattr(tokenizer, "bpe_ranks", {})
    if ranks:
        vocab["merges"] = [" ".join(m) for m, _ in sorted(ranks.items(), key=lambda kv: kv[1])]
    return vocab


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tiny_models import make_tiny_embedding_model

    return make_tiny_embedding_model(tmp_path_factory.mktemp("tok") / "bert")


@pytest.mark.parametrize("lower", [True, False])
def test_bert_wordpiece_matches_the_hugging_face_tokenizer(bert_dir, lower):
    from transformers import BertTokenizer

    reference = BertTokenizer(str(bert_dir / "vocab.txt"), do_lower_case=lower)
    ours = UploadedTokenizer({"bert": {"do_lower_case": lower, "max_sequence_length": 64}}, _eland_vocab(reference))
    encoded = ours.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        want = reference(text)["input_ids"]
        assert encoded.input_ids[i][:len(want)] == want
        assert sum(encoded.attention_mask[i]) == len(want)
    pair = ours.encode([("the cat", "a dog in the house")])
    assert pair.input_ids[0] == reference("the cat", "a dog in the house")["input_ids"]
    assert pair.token_type_ids[0] == reference("the cat", "a dog in the house")["token_type_ids"]


def test_truncation_first_second_and_none(bert_dir):
    from transformers import BertTokenizer

    reference = BertTokenizer(str(bert_dir / "vocab.txt"), do_lower_case=True)
    vocab = _eland_vocab(reference)
    long = "the cat " * 40
    first = UploadedTokenizer({"bert": {"do_lower_case": True, "max_sequence_length": 16}}, vocab)
    out = first.encode([long, "short"])
    assert out.truncated == [True, False]
    assert out.input_ids[0] == reference(long, truncation=True, max_length=16)["input_ids"]
    second = UploadedTokenizer({"bert": {"do_lower_case": True, "max_sequence_length": 16, "truncate": "second"}},
                               vocab)
    pair = second.encode([("a short query", long)])
    assert pair.input_ids[0] == reference("a short query", long, truncation="only_second", max_length=16)["input_ids"]
    none = UploadedTokenizer({"bert": {"do_lower_case": True, "max_sequence_length": 16, "truncate": "none"}}, vocab)
    with pytest.raises(EsError) as err:
        none.encode([long])
    assert err.value.status == 400
    assert "exceeds the maximum sequence length [16]" in err.value.reason


def test_mpnet_uses_its_own_special_tokens(tmp_path):
    from tiny_models import tiny_vocab
    from transformers import MPNetTokenizer

    words = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"] + [w for w in tiny_vocab() if not w.startswith("[")] + ["<mask>"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    reference = MPNetTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True)
    ours = UploadedTokenizer({"mpnet": {"do_lower_case": True, "max_sequence_length": 64}}, _eland_vocab(reference))
    encoded = ours.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        want = reference(text)["input_ids"]
        assert encoded.input_ids[i][:len(want)] == want
    assert ours.encode([("the cat", "a dog")]).input_ids[0] == reference("the cat", "a dog")["input_ids"]


def test_roberta_byte_level_bpe_from_uploaded_merges(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(TEXTS * 20 + ["search the index for documents about rivers and cities"] * 20,
                                vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trainer.save_model(str(tmp_path))
    reference = RobertaTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    vocab = _eland_vocab(reference)
    # Eland reads the slow tokenizer's ``bpe_ranks``: the merges file's lines, in rank order.
    vocab.setdefault("merges", [line for line in (tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines()
                                if line and not line.startswith("#version")])
    assert vocab["merges"]
    ours = UploadedTokenizer({"roberta": {"add_prefix_space": False, "max_sequence_length": 128}}, vocab)
    for text, ids in zip(TEXTS, ours.encode(TEXTS).input_ids, strict=True):
        want = reference(text)["input_ids"]
        assert ids[:len(want)] == want
    with pytest.raises(EsError):
        UploadedTokenizer({"roberta": {}}, {"vocabulary": vocab["vocabulary"]})


def test_config_is_completed_with_elasticsearch_defaults():
    config = parse_put("my-model", {"model_type": "pytorch", "input": {"field_names": ["text_field"]},
                                    "inference_config": {"text_embedding": {"tokenization": {"bert": {
                                        "do_lower_case": True}}}}}, version="12.0.0")
    assert config["created_by"] == "api_user"
    assert config["license_level"] == "platinum"
    assert config["inference_config"]["text_embedding"] == {
        "vocabulary": {"index": ".ml-inference-native-000002"},
        "tokenization": {"bert": {"do_lower_case": True, "with_special_tokens": True, "max_sequence_length": 512,
                                  "truncate": "first", "span": -1}},
        "results_field": "predicted_value"}
    similarity = parse_put("sim", {"model_type": "pytorch", "input": {"field_names": ["t"]},
                                   "inference_config": {"text_similarity": {}}}, version="12.0.0")
    assert similarity["inference_config"]["text_similarity"]["span_score_combination"] == "max"
    zero_shot = parse_put("zs", {"model_type": "pytorch", "input": {"field_names": ["t"]},
                                 "inference_config": {"zero_shot_classification": {
                                     "classification_labels": ["entailment", "neutral", "contradiction"]}}},
                          version="12.0.0")
    assert zero_shot["inference_config"]["zero_shot_classification"]["hypothesis_template"] == "This example is {}."


@pytest.mark.parametrize(("model_id", "body", "kind", "reason"), [
    ("m", {"model_type": "pytorch", "input": {"field_names": ["t"]}}, "action_request_validation_exception",
     "Validation Failed: 1: [inference_config] must not be null.;"),
    ("m", {"input": {"field_names": ["t"]}, "inference_config": {"pass_through": {}}},
     "action_request_validation_exception", "Validation Failed: 1: [model_type] must be set if [definition] is not defined.;"),
    ("Bad_Id", {"model_type": "pytorch", "input": {"field_names": ["t"]}, "inference_config": {"ner": {}}},
     "action_request_validation_exception", "Invalid model_id; 'Bad_Id' can contain lowercase alphanumeric"),
    ("m", {"model_type": "pytorch", "bogus": 1}, "x_content_parse_exception",
     "[trained_model_config] unknown field [bogus]"),
    ("m", ["not", "an", "object"], "x_content_parse_exception", "[trained_model_config] Expected START_OBJECT"),
    ("m", {"model_type": "pytorch", "input": {"field_names": ["t"]},
           "inference_config": {"ner": {"bogus": 1}}}, "x_content_parse_exception", "[ner] unknown field [bogus]"),
    ("m", {"model_type": "pytorch", "input": {"field_names": ["t"]},
           "inference_config": {"ner": {"tokenization": {"bert": {"bogus": 1}}}}}, "x_content_parse_exception",
     "[bert] unknown field [bogus]"),
    ("m", {"model_type": "pytorch", "input": {"field_names": ["t"]},
           "inference_config": {"text_embedding": {"tokenization": {"bert": {"truncate": "none", "span": 600,
                                                                              "max_sequence_length": 512}}}}},
     "action_request_validation_exception", "[span] provided [600] must not be greater than [max_sequence_length]"),
    ("m", {"model_type": "pytorch", "input": {"field_names": ["t"]}, "create_time": 1,
           "inference_config": {"pass_through": {}}},
     "action_request_validation_exception", "illegal to set [create_time] at inference model creation"),
])
def test_bad_configs_are_refused_as_elasticsearch_refuses_them(model_id, body, kind, reason):
    with pytest.raises(EsError) as err:
        parse_put(model_id, body, version="12.0.0")
    assert err.value.status == 400
    assert err.value.type == kind
    assert reason in err.value.reason


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/_ml/trained_models", "cluster:monitor/xpack/ml/inference/get"),
    ("GET", "/_ml/trained_models/m/_stats", "cluster:monitor/xpack/ml/inference/stats/get"),
    ("PUT", "/_ml/trained_models/m", "cluster:admin/xpack/ml/inference/put"),
    ("DELETE", "/_ml/trained_models/m", "cluster:admin/xpack/ml/inference/delete"),
    ("PUT", "/_ml/trained_models/m/definition/0", "cluster:admin/xpack/ml/trained_models/part/put"),
    ("PUT", "/_ml/trained_models/m/vocabulary", "cluster:admin/xpack/ml/trained_models/vocabulary/put"),
    ("POST", "/_ml/trained_models/m/deployment/_start", "cluster:admin/xpack/ml/trained_models/deployment/start"),
    ("POST", "/_ml/trained_models/m/deployment/_stop", "cluster:admin/xpack/ml/trained_models/deployment/stop"),
    ("POST", "/_ml/trained_models/m/deployment/_update", "cluster:admin/xpack/ml/trained_models/deployment/update"),
    ("POST", "/_ml/trained_models/m/_infer", "cluster:monitor/xpack/ml/inference/infer"),
    ("POST", "/_ml/trained_models/m/deployment/_infer", "cluster:monitor/xpack/ml/inference/infer"),
])
def test_every_trained_model_api_is_access_checked_with_its_ml_action(method, path, action):
    from sidecar.security import action_for

    assert action_for(method, path).name == action


@pytest.mark.parametrize(("kind", "tokenizer_class", "specials"), [
    ("xlm_roberta", "XLMRobertaTokenizer", ["<s>", "<pad>", "</s>", "<unk>"]),
    ("deberta_v2", "DebertaV2Tokenizer", ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]),
])
def test_sentencepiece_unigram_from_uploaded_scores(kind, tokenizer_class, specials):
    import json

    import transformers
    from tokenizers import SentencePieceUnigramTokenizer

    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(TEXTS * 30 + ["search the index for documents about rivers and cities"] * 30,
                                vocab_size=150, special_tokens=specials, unk_token=specials[3])
    mask = "<mask>" if kind == "xlm_roberta" else "[MASK]"
    pieces = [(p, s) for p, s in json.loads(trainer.to_str())["model"]["vocab"]] + [(mask, 0.0)]
    reference = getattr(transformers, tokenizer_class)(vocab=pieces)
    # Eland uploads the vocabulary in id order and one SentencePiece score per entry.
    upload = {"vocabulary": [p for p, _ in pieces], "scores": [s for _, s in pieces]}
    ours = UploadedTokenizer({kind: {"max_sequence_length": 128}}, upload)
    texts = [t for t in TEXTS if t.isascii()] + ["two  spaces\tand a tab", "search the index"]
    for text, ids in zip(texts, ours.encode(texts).input_ids, strict=True):
        want = reference(text)["input_ids"]
        assert ids[:len(want)] == want
    pair = ours.encode([("the cat", "the river")])
    assert pair.input_ids[0] == reference("the cat", "the river")["input_ids"]
    want = reference("the cat", "the river")
    if "token_type_ids" in want:  # DeBERTa takes segment ids; XLM-RoBERTa does not
        assert pair.token_type_ids[0] == want["token_type_ids"]
