"""The trained model API through the sidecar process, against the real node, driven the way
Eland drives it: tiny random models are traced as Eland traces them and uploaded with Eland's
request sequence through the official client; what the sidecar then serves is compared with
the same weights run by sentence-transformers / transformers."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import ApiError, Elasticsearch

sys.path.insert(0, str(Path(__file__).resolve().parent / "clients"))
from eland_upload import trace_like_eland, upload_like_eland  # noqa: E402

pytestmark = pytest.mark.es

TEXTS = ["Hello search world", "the cat sat on the mat", "Café crème, naïve façade!", "rain " * 80]


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _cos(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


JSON = {"accept": "application/json", "content-type": "application/json"}  # as the client's own methods send


def _error(call) -> ApiError:
    with pytest.raises(ApiError) as err:
        call()
    return err.value


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trained-models")


@pytest.fixture(scope="module")
def bert_embedding(models_dir):
    from tiny_models import make_tiny_embedding_model

    model_dir = make_tiny_embedding_model(models_dir / "bert-emb")
    return model_dir, *trace_like_eland(model_dir, "text_embedding", models_dir / "bert-emb-traced")


@pytest.fixture(scope="module")
def client(sidecar_url) -> Elasticsearch:
    return Elasticsearch(sidecar_url, request_timeout=120)


@pytest.fixture(scope="module")
def uploaded(client, bert_embedding):
    """A BERT embedding model uploaded the way Eland uploads it, in several parts, started."""
    model_dir, path, config, vocab = bert_embedding
    model_id = _uid("eland-bert")
    steps = upload_like_eland(client, model_id, path, config, vocab, chunk_size=64 * 1024)
    yield model_id, model_dir, steps, path
    client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def test_eland_upload_sequence_and_served_embeddings_match_sentence_transformers(client, uploaded):
    from sentence_transformers import SentenceTransformer

    model_id, model_dir, steps, path = uploaded
    parts = [s for s in steps if s.startswith("part:")]
    assert steps[0] == "get:404" and steps[1] == "put_config" and len(parts) > 1
    assert steps[-2:] == ["vocabulary", "start"]
    got = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": t} for t in TEXTS])
    want = SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS)
    results = got["inference_results"]
    for result, reference in zip(results, want, strict=True):
        assert _cos(result["predicted_value"], reference) >= 0.999
    assert results[-1]["is_truncated"] is True and "is_truncated" not in results[0]
    # The deprecated deployment path answers the same.
    again = client.perform_request("POST", f"/_ml/trained_models/{model_id}/deployment/_infer",
                                   headers={"content-type": "application/json", "accept": "application/json"},
                                   body={"docs": [{"text_field": TEXTS[0]}]})
    assert _cos(again["inference_results"][0]["predicted_value"], want[0]) >= 0.999


def test_get_shows_the_config_with_elasticsearch_defaults(client, uploaded):
    model_id, _, _, path = uploaded
    got = client.ml.get_trained_models(model_id=model_id, include="definition_status")
    assert got["count"] == 1
    config = got["trained_model_configs"][0]
    assert config["model_type"] == "pytorch" and config["created_by"] == "api_user"
    assert config["fully_defined"] is True
    assert config["inference_config"]["text_embedding"]["tokenization"] == {"bert": {
        "do_lower_case": True, "with_special_tokens": True, "max_sequence_length": 64, "truncate": "first",
        "span": -1}}
    assert config["inference_config"]["text_embedding"]["embedding_size"] == 32
    listed = client.ml.get_trained_models(model_id="eland-bert-*")
    assert model_id in [c["model_id"] for c in listed["trained_model_configs"]]
    stats = client.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"]
    assert len(stats) == 1
    assert stats[0]["model_size_stats"]["model_size_bytes"] == Path(path).stat().st_size
    assert stats[0]["deployment_stats"]["state"] == "started"
    assert stats[0]["deployment_stats"]["deployment_id"] == model_id


def test_errors_match_elasticsearch(client, uploaded, bert_embedding):
    model_id, *_ = uploaded
    _, _, config, _ = bert_embedding
    err = _error(lambda: client.ml.put_trained_model(model_id=model_id, **config))
    assert (err.meta.status, err.error) == (400, "resource_already_exists_exception")
    assert err.message.endswith(f"Trained machine learning model [{model_id}] already exists") or \
        f"Trained machine learning model [{model_id}] already exists" in str(err.body)
    missing = _uid("missing")
    err = _error(lambda: client.ml.get_trained_models(model_id=missing))
    assert (err.meta.status, err.body["error"]["reason"]) == (404, f"Could not find trained model [{missing}]")
    err = _error(lambda: client.ml.put_trained_model_definition_part(
        model_id=model_id, part=3, definition="AAAA", total_definition_length=3, total_parts=2))
    assert err.meta.status == 400
    assert err.body["error"]["reason"] == "Validation Failed: 1: [part] must be less than total_parts;"
    err = _error(lambda: client.ml.put_trained_model_definition_part(
        model_id=model_id, part=0, definition="AAAA", total_definition_length=3, total_parts=2))
    assert (err.meta.status, err.error) == (400, "resource_already_exists_exception")
    assert err.body["error"]["reason"] == f"Trained machine learning model chunked doc [{model_id}][0] already exists"
    # Unknown body fields, named by the parser Elasticsearch would use.
    for call, parser in (
        (lambda: client.perform_request("PUT", f"/_ml/trained_models/{model_id}/definition/5",
                                        headers=JSON, body={"bogus": 1}),
         "put_trained_model_definition_part_action"),
        (lambda: client.perform_request("PUT", f"/_ml/trained_models/{model_id}/vocabulary",
                                        headers=JSON, body={"bogus": 1}),
         "put_trained_model_vocabulary_action"),
        (lambda: client.perform_request("POST", f"/_ml/trained_models/{model_id}/_infer",
                                        headers=JSON,
                                        body={"docs": [{"text_field": "x"}], "bogus": 1}),
         "infer_trained_model_request"),
    ):
        err = _error(call)
        assert (err.meta.status, err.error) == (400, "x_content_parse_exception")
        assert err.body["error"]["reason"] == f"[{parser}] unknown field [bogus]"
    err = _error(lambda: client.ml.delete_trained_model(model_id=model_id))
    assert err.meta.status == 409
    # Nothing stored by a refused request.
    assert client.ml.get_trained_models(model_id=model_id)["count"] == 1
    err = _error(lambda: client.ml.start_trained_model_deployment(model_id=model_id))
    assert err.meta.status == 409 and "existing deployment with the same id" in err.body["error"]["reason"]


def test_a_model_not_deployed_is_refused_then_deploys_under_its_own_id(client, bert_embedding):
    _, path, config, vocab = bert_embedding
    model_id = _uid("eland-idle")
    upload_like_eland(client, model_id, path, config, vocab, start=False)
    try:
        err = _error(lambda: client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": "x"}]))
        assert (err.meta.status, err.body["error"]["reason"]) == (
            409, f"Trained model [{model_id}] is not allocated to any nodes")
        started = client.ml.start_trained_model_deployment(
            model_id=model_id, deployment_id=f"{model_id}-search", number_of_allocations=1,
            threads_per_allocation=1, wait_for="started")
        assert started["assignment"]["assignment_state"] == "started"
        assert started["assignment"]["task_parameters"]["deployment_id"] == f"{model_id}-search"
        by_deployment = client.ml.infer_trained_model(model_id=f"{model_id}-search", docs=[{"text_field": "x"}])
        by_model = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": "x"}])
        assert by_deployment == by_model
        updated = client.ml.update_trained_model_deployment(model_id=f"{model_id}-search", number_of_allocations=2)
        assert updated["assignment"]["task_parameters"]["number_of_allocations"] == 2
        stats = client.ml.get_trained_models_stats(model_id=f"{model_id}-search")["trained_model_stats"]
        assert stats[0]["model_id"] == model_id
        assert stats[0]["deployment_stats"]["allocation_status"]["target_allocation_count"] == 2
        assert client.ml.stop_trained_model_deployment(model_id=f"{model_id}-search") == {"stopped": True}
        assert "deployment_stats" not in client.ml.get_trained_models_stats(model_id=model_id)[
            "trained_model_stats"][0]
    finally:
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
    err = _error(lambda: client.ml.get_trained_models(model_id=model_id))
    assert err.meta.status == 404


def test_an_incomplete_upload_cannot_start(client, bert_embedding):
    _, path, config, _ = bert_embedding
    model_id = _uid("eland-partial")
    client.ml.put_trained_model(model_id=model_id, **config)
    try:
        client.ml.put_trained_model_definition_part(model_id=model_id, part=0, definition="AAAA",
                                                    total_definition_length=10, total_parts=2)
        defined = client.ml.get_trained_models(model_id=model_id, include="definition_status")
        assert defined["trained_model_configs"][0]["fully_defined"] is False
        err = _error(lambda: client.ml.start_trained_model_deployment(model_id=model_id, wait_for="started"))
        assert err.meta.status == 400 and "Model definition truncated" in err.body["error"]["reason"]
    finally:
        client.ml.delete_trained_model(model_id=model_id, force=True)


def test_inference_endpoint_of_the_elasticsearch_service_runs_the_uploaded_model(client, uploaded):
    model_id, model_dir, *_ = uploaded
    endpoint = _uid("uploaded-endpoint")
    client.inference.put(task_type="text_embedding", inference_id=endpoint, inference_config={
        "service": "elasticsearch", "service_settings": {"model_id": model_id, "num_allocations": 1,
                                                         "num_threads": 1}})
    try:
        got = client.inference.inference(inference_id=endpoint, input=[TEXTS[1]])
        direct = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": TEXTS[1]}])
        assert _cos(got["text_embedding"][0]["embedding"], direct["inference_results"][0]["predicted_value"]) >= 0.9999
        # Its deployment shows under the uploaded model's stats.
        stats = client.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"]
        assert {s["deployment_stats"]["deployment_id"] for s in stats} == {model_id, endpoint}
    finally:
        client.inference.delete(inference_id=endpoint, force=True)
    # A model of another task is refused, and no endpoint is stored.
    sparse = _uid("uploaded-sparse")
    err = _error(lambda: client.inference.put(task_type="sparse_embedding", inference_id=sparse, inference_config={
        "service": "elasticsearch", "service_settings": {"model_id": model_id, "num_allocations": 1,
                                                         "num_threads": 1}}))
    assert err.meta.status == 400 and "is a [text_embedding] model" in str(err.body)
    assert client.options(ignore_status=404).inference.get(inference_id=sparse).meta.status == 404


def test_text_expansion_and_text_similarity_uploads(client, models_dir):
    import torch
    from tiny_models import make_tiny_rerank_model, make_tiny_sparse_model
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, BertTokenizer

    sparse_dir = make_tiny_sparse_model(models_dir / "mlm")
    rerank_dir = make_tiny_rerank_model(models_dir / "cross")
    expansion = _uid("eland-expansion")
    similarity = _uid("eland-similarity")
    upload_like_eland(client, expansion, *trace_like_eland(sparse_dir, "text_expansion", models_dir / "mlm-t"))
    upload_like_eland(client, similarity, *trace_like_eland(rerank_dir, "text_similarity", models_dir / "cross-t"))
    try:
        tokenizer = BertTokenizer(str(sparse_dir / "vocab.txt"), do_lower_case=True)
        text = "the dog ran to the river"
        got = client.ml.infer_trained_model(model_id=expansion, docs=[{"text_field": text}])
        tokens = got["inference_results"][0]["predicted_value"]
        with torch.no_grad():
            enc = tokenizer(text, return_tensors="pt")
            logits = AutoModelForMaskedLM.from_pretrained(str(sparse_dir)).eval()(**enc).logits[0]
            weights = torch.log1p(torch.relu(logits)).amax(dim=0)
        vocab = tokenizer.convert_ids_to_tokens(list(range(weights.shape[0])))
        # Elasticsearch writes "." in a token as "__" (sparse_vector keys are field names).
        want = {vocab[i].replace(".", "__"): float(weights[i]) for i in torch.nonzero(weights > 0).flatten().tolist()}
        assert set(tokens) == set(want)
        assert all(abs(tokens[k] - want[k]) < 1e-4 for k in want)

        query, docs = "who owns the cat", ["the cat is mine", "the weather is good today"]
        got = client.ml.infer_trained_model(model_id=similarity, docs=[{"text_field": d} for d in docs],
                                            inference_config={"text_similarity": {"text": query}})
        model = AutoModelForSequenceClassification.from_pretrained(str(rerank_dir)).eval()
        with torch.no_grad():
            enc = tokenizer([query] * 2, docs, return_tensors="pt", padding=True)
            want_scores = model(**enc).logits[:, 0].tolist()
        scores = [r["predicted_value"] for r in got["inference_results"]]
        assert np.allclose(scores, want_scores, atol=1e-4)
    finally:
        for model_id in (expansion, similarity):
            client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def test_uploads_and_deployments_survive_a_sidecar_restart(es_url, sidecar_env, client, uploaded, tmp_path):
    from sidecar_fixtures import SidecarProcess

    model_id, model_dir, *_ = uploaded
    before = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": TEXTS[0]}])
    fresh = SidecarProcess(es_url, sidecar_env, tmp_path / "second.log").start()
    try:
        other = Elasticsearch(fresh.url, request_timeout=120)
        assert other.ml.get_trained_models(model_id=model_id)["count"] == 1
        after = other.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": TEXTS[0]}])
        assert _cos(after["inference_results"][0]["predicted_value"],
                    before["inference_results"][0]["predicted_value"]) >= 0.99999
        stats = other.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"]
        assert stats[0]["deployment_stats"]["state"] == "started"
    finally:
        fresh.stop()


def test_built_in_model_downloads_on_put_and_deploys(client):
    model_id = ".elser_model_2"
    client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
    created = client.ml.put_trained_model(model_id=model_id, input={"field_names": ["text_field"]})
    assert created["model_id"] == model_id and "text_expansion" in created["inference_config"]
    try:
        import time

        deadline = time.monotonic() + 60
        while True:
            config = client.ml.get_trained_models(model_id=model_id, include="definition_status")
            if config["trained_model_configs"][0]["fully_defined"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert config["trained_model_configs"][0]["fully_defined"] is True
        stats = client.ml.get_trained_models_stats(model_id=model_id)["trained_model_stats"][0]
        assert stats["model_size_stats"]["model_size_bytes"] > 0
        client.ml.start_trained_model_deployment(model_id=model_id, wait_for="fully_allocated")
        got = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": "the cat and the dog"}])
        assert got["inference_results"][0]["predicted_value"]
        err = _error(lambda: client.ml.put_trained_model(model_id=model_id, input={"field_names": ["t"]},
                                                          description="mine"))
        assert err.meta.status == 400
    finally:
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def test_built_in_model_whose_source_is_missing_fails_its_download(es_url, sidecar_env, tmp_path):
    from sidecar_fixtures import SidecarProcess

    env = {**sidecar_env, "SIDECAR_MODEL_ALIASES": f".rerank-v1={tmp_path / 'not-there'}"}
    proc = SidecarProcess(es_url, env, tmp_path / "failing.log").start()
    try:
        other = Elasticsearch(proc.url, request_timeout=120)
        other.options(ignore_status=404).ml.delete_trained_model(model_id=".rerank-v1", force=True)
        other.ml.put_trained_model(model_id=".rerank-v1", input={"field_names": ["text_field"]})
        err = _error(lambda: other.ml.start_trained_model_deployment(model_id=".rerank-v1"))
        assert err.meta.status == 500 and "download failed" in err.body["error"]["reason"]
        config = other.ml.get_trained_models(model_id=".rerank-v1", include="definition_status")
        assert config["trained_model_configs"][0]["fully_defined"] is False
        other.ml.delete_trained_model(model_id=".rerank-v1")
    finally:
        proc.stop()


def _tiny_mpnet_sentence_transformer(path: Path) -> Path:
    """A sentence-transformers directory over a tiny random MPNet (mean pooling, normalised)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from tiny_models import TINY_HIDDEN_SIZE, TINY_MAX_SEQ_LENGTH, tiny_vocab
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer

    raw = path / "raw"
    raw.mkdir(parents=True)
    words = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"] + [w for w in tiny_vocab() if not w.startswith("[")] + ["<mask>"]
    (raw / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    MPNetTokenizer(str(raw / "vocab.txt"), do_lower_case=True, model_max_length=TINY_MAX_SEQ_LENGTH).save_pretrained(
        str(raw))
    config = MPNetConfig(vocab_size=len(words), hidden_size=TINY_HIDDEN_SIZE, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=TINY_MAX_SEQ_LENGTH + 2,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        MPNetModel(config).eval().save_pretrained(str(raw))
    st = SentenceTransformer(modules=[models.Transformer(str(raw), max_seq_length=TINY_MAX_SEQ_LENGTH),
                                      models.Pooling(TINY_HIDDEN_SIZE, "mean"), models.Normalize()], device="cpu")
    st.save(str(path / "st"))
    return path / "st"


def test_mpnet_upload_two_input_trace_matches_sentence_transformers(client, models_dir):
    from sentence_transformers import SentenceTransformer

    model_dir = _tiny_mpnet_sentence_transformer(models_dir / "mpnet")
    path, config, vocab = trace_like_eland(model_dir, "text_embedding", models_dir / "mpnet-traced")
    assert "mpnet" in config["inference_config"]["text_embedding"]["tokenization"]
    model_id = _uid("eland-mpnet")
    upload_like_eland(client, model_id, path, config, vocab)
    try:
        got = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": t} for t in TEXTS])
        want = SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS)
        for result, reference in zip(got["inference_results"], want, strict=True):
            assert _cos(result["predicted_value"], reference) >= 0.999
    finally:
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def test_start_waiting_only_for_starting_answers_at_once(client, bert_embedding):
    _, path, config, vocab = bert_embedding
    model_id = _uid("eland-starting")
    upload_like_eland(client, model_id, path, config, vocab, start=False)
    try:
        started = client.ml.start_trained_model_deployment(model_id=model_id, wait_for="starting")
        assert started["assignment"]["task_parameters"]["deployment_id"] == model_id
        got = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": "x"}], timeout="30s")
        assert len(got["inference_results"][0]["predicted_value"]) == 32
        err = _error(lambda: client.ml.start_trained_model_deployment(model_id=model_id, threads_per_allocation=3))
        assert err.meta.status == 400
        assert "[threads_per_allocation] must be a power of 2 less than or equal to 32" in err.body["error"]["reason"]
    finally:
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)


def test_prefix_strings_apply_to_ingest_and_search_but_not_to_infer(client, bert_embedding):
    from sentence_transformers import SentenceTransformer

    model_dir, path, config, vocab = bert_embedding
    model_id = _uid("eland-prefixed")
    endpoint = _uid("prefixed-endpoint")
    # eland_import_hub_model --ingest-prefix "passage: " --search-prefix "query: "
    upload_like_eland(client, model_id, path, {**config, "prefix_strings": {"ingest": "passage: ", "search": "query: "}},
                      vocab)
    try:
        st = SentenceTransformer(str(model_dir), device="cpu")
        text = "the river runs to the sea"
        infer = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": text}])
        assert _cos(infer["inference_results"][0]["predicted_value"], st.encode([text])[0]) >= 0.9999
        client.inference.put(task_type="text_embedding", inference_id=endpoint, inference_config={
            "service": "elasticsearch", "service_settings": {"model_id": model_id, "num_allocations": 1,
                                                             "num_threads": 1}})
        for input_type, prefix in (("search", "query: "), ("ingest", "passage: ")):
            got = client.perform_request(
                "POST", f"/_inference/text_embedding/{endpoint}", body={"input": [text], "input_type": input_type},
                headers={"content-type": "application/json", "accept": "application/json"})
            assert _cos(got["text_embedding"][0]["embedding"], st.encode([prefix + text])[0]) >= 0.9999
    finally:
        client.options(ignore_status=404).inference.delete(inference_id=endpoint, force=True)
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
