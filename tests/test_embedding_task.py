"""The ``embedding`` task (Elasticsearch 9.4+): text and image inputs, one embedding each, with a
local multimodal model (a tiny random CLIP built here, loaded through sentence-transformers), and
answered as the older node answers where the node predates it."""

from __future__ import annotations

import base64
import io
import uuid

import http_util as http
import numpy as np
import pytest

from sidecar.errors import EsError
from sidecar.protocol.embedding import Content, parse_embedding_request, render


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from tiny_models import make_tiny_clip_model

    return make_tiny_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip")


# -- the request, in process ---------------------------------------------------------------------


def test_every_input_form_parses() -> None:
    assert [g[0].value for g in parse_embedding_request({"input": "one"}).groups] == ["one"]
    assert [g[0].value for g in parse_embedding_request({"input": ["a", "b"]}).groups] == ["a", "b"]
    image = png((1, 2, 3))
    parsed = parse_embedding_request({
        "input": [
            {"content": {"type": "image", "format": "base64", "value": image}},
            {"content": [{"type": "text", "value": "caption"}, {"type": "IMAGE", "value": image}]},
        ],
        "input_type": "SEARCH",
    })
    assert parsed.groups == [
        (Content("image", image, "base64"),),
        (Content("text", "caption", "text"), Content("image", image, "base64")),
    ]
    assert parsed.input_type == "search"
    single = parse_embedding_request({"input": {"content": {"type": "text", "format": "text", "value": "x"}}})
    assert single.groups == [(Content("text", "x", "text"),)]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"input": []}, 400, "Validation Failed: 1: Field [input] cannot be an empty array;"),
        ({}, 400, "Validation Failed: 1: Field [input] cannot be null;"),
        ({"input": {"content": {"type": "audio", "value": "x"}}}, 400,
         "Unrecognized type [audio], must be one of [text, image]"),
        ({"input": {"content": {"type": "text", "format": "png", "value": "x"}}}, 400,
         "Unrecognized format [png], must be one of [text, base64]"),
        ({"input": {"content": {"type": "text", "format": "base64", "value": "x"}}}, 400,
         "Data format [base64] is not supported for data type [text]. Supported formats are [text]"),
        ({"input": {"content": {"type": "text"}}}, 400, "Required [value]"),
        ({"input": "x", "query": "q"}, 400, "[1:2] [inference] unknown field [query]"),
    ],
)
def test_bad_requests_are_refused(body, status, reason) -> None:
    with pytest.raises(EsError) as caught:
        parse_embedding_request(body)
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_response_shape() -> None:
    assert render(np.array([[0.5, 1.0]], dtype=np.float32)) == {"embeddings": [{"embedding": [0.5, 1.0]}]}


def test_clip_model_embeds_texts_images_and_groups(clip_dir) -> None:
    from sidecar.protocol.embedding import parse_embedding_request
    from sidecar.runtime.multimodal import MultimodalModel

    model = MultimodalModel(str(clip_dir), "cpu")
    red, blue = png((220, 10, 10)), png((10, 10, 220))
    groups = parse_embedding_request({"input": [
        "a red square",
        {"content": {"type": "image", "value": red}},
        {"content": {"type": "image", "value": blue}},
        {"content": [{"type": "text", "value": "a red square"}, {"type": "image", "value": red}]},
    ]}).groups
    vectors = model.encode(groups)
    assert vectors.shape == (4, 16) and model.dimensions == 16
    assert not np.allclose(vectors[1], vectors[2])  # the pixels reach the model
    np.testing.assert_allclose(vectors[3], (vectors[0] + vectors[1]) / 2, rtol=1e-5, atol=1e-6)
    with pytest.raises(EsError) as caught:
        model.encode([(Content("image", "data:image/png;base64,bm90IGFuIGltYWdl", "base64"),)])
    assert caught.value.status == 400 and "decode the image" in caught.value.reason


# -- through the sidecar, against the real node --------------------------------------------------


@pytest.mark.es
def test_embedding_endpoint_with_a_local_clip_model(sidecar_url, es_url, clip_dir) -> None:
    inference_id = uid("clip")
    body = {"service": "elasticsearch",
            "service_settings": {"model_id": str(clip_dir), "num_allocations": 1, "num_threads": 1}}
    status, created = http.json_request("PUT", f"{sidecar_url}/_inference/embedding/{inference_id}", body)
    if http.node_version(es_url) < (9, 4):
        # The older node does not know the task type at all.
        assert status == 400 and created["error"]["reason"] == "Unknown task_type [embedding]", created
        status, err = http.json_request("POST", f"{sidecar_url}/_inference/embedding/{inference_id}", {"input": "x"})
        assert status == 400 and err["error"]["reason"] == "Unknown task_type [embedding]"
        status, listed = http.json_request("GET", f"{sidecar_url}/_inference/_services/embedding")
        assert status == 400 and listed["error"]["reason"] == "Unknown task_type [embedding]"
        return
    try:
        assert status == 200, created
        assert created["task_type"] == "embedding"
        assert created["service_settings"]["dimensions"] == 16
        red = png((220, 10, 10))
        status, result = http.json_request("POST", f"{sidecar_url}/_inference/embedding/{inference_id}", {
            "input": [
                "a red square",
                {"content": {"type": "image", "format": "base64", "value": red}},
                {"content": [{"type": "text", "value": "a red square"}, {"type": "image", "value": red}]},
            ]
        })
        assert status == 200, result
        vectors = np.array([e["embedding"] for e in result["embeddings"]])
        assert vectors.shape == (3, 16)
        np.testing.assert_allclose(vectors[2], vectors[:2].mean(axis=0), rtol=1e-4, atol=1e-5)
        # Plain text through the generic route gets the same vector as the content form.
        status, plain = http.json_request("POST", f"{sidecar_url}/_inference/{inference_id}", {"input": "a red square"})
        assert status == 200 and np.allclose(plain["embeddings"][0]["embedding"], vectors[0], atol=1e-5)
        status, err = http.json_request("POST", f"{sidecar_url}/_inference/embedding/{inference_id}", {
            "input": {"content": {"type": "image", "value": "data:image/png;base64,bm90IGFuIGltYWdl"}}})
        assert status == 400 and "decode the image" in err["error"]["reason"]
        status, err = http.json_request("POST", f"{sidecar_url}/_inference/embedding/{inference_id}", {
            "input": {"content": {"type": "video", "value": "x"}}})
        assert status == 400 and err["error"]["type"] == "x_content_parse_exception"
        # A sidecar extension: Elasticsearch's catalogue does not list it for `elasticsearch`.
        status, listed = http.json_request("GET", f"{sidecar_url}/_inference/_services/embedding")
        assert status == 200 and "elasticsearch" not in {s["service"] for s in listed}
    finally:
        http.request("DELETE", f"{sidecar_url}/_inference/{inference_id}")


@pytest.mark.es
def test_text_only_service_refuses_images(sidecar_url, es_url) -> None:
    if http.node_version(es_url) < (9, 4):
        pytest.skip("the embedding task type is 9.4+")
    status, err = http.json_request("PUT", f"{sidecar_url}/_inference/embedding/{uid('openai')}", {
        "service": "openai", "service_settings": {"api_key": "k", "model_id": "m"}})
    assert status == 400
    assert err["error"]["reason"] == "The [openai] service does not support task type [embedding]"
