"""``eland_import_hub_model`` itself, unchanged, uploading a model directory to the sidecar and
starting it. Eland pins its own torch (2.5.1) and an older transformers, so it lives in a
virtualenv of its own; the test runs where that virtualenv exists:

    python3.11 -m venv ~/.cache/es-inference-sidecar/eland-venv
    ~/.cache/es-inference-sidecar/eland-venv/bin/pip install "eland[pytorch]==8.18.2" \\
        "transformers[sentencepiece]>=4.47,<4.48"
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import Elasticsearch

pytestmark = pytest.mark.es

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "es-inference-sidecar"
ELAND = CACHE / "eland-venv" / "bin" / "eland_import_hub_model"


@pytest.mark.skipif(not ELAND.exists(), reason=f"Eland's own virtualenv is not installed ({ELAND} is missing; "
                                                "see this module's docstring)")
def test_eland_import_hub_model_uploads_and_starts_a_model(sidecar_url, tmp_path):
    from sentence_transformers import SentenceTransformer
    from tiny_models import make_tiny_embedding_model

    model_dir = make_tiny_embedding_model(tmp_path / "emb")
    model_id = f"eland-cli-{uuid.uuid4().hex[:8]}"
    client = Elasticsearch(sidecar_url, request_timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    try:
        out = subprocess.run([str(ELAND), "--url", sidecar_url, "--hub-model-id", str(model_dir), "--es-model-id",
                              model_id, "--task-type", "text_embedding", "--start"],
                             capture_output=True, text=True, timeout=600, env={**env, "HF_HUB_OFFLINE": "1"},
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"Model successfully imported with id '{model_id}'" in out.stderr + out.stdout
        config = client.ml.get_trained_models(model_id=model_id, include="definition_status")["trained_model_configs"][0]
        assert config["fully_defined"] is True
        assert config["inference_config"]["text_embedding"]["embedding_size"] == 32
        texts = ["the cat sat on the mat", "Café crème!"]
        got = client.ml.infer_trained_model(model_id=model_id, docs=[{"text_field": t} for t in texts])
        want = SentenceTransformer(str(model_dir), device="cpu").encode(texts)
        for result, reference in zip(got["inference_results"], want, strict=True):
            vector = np.asarray(result["predicted_value"])
            assert float(vector @ reference / np.linalg.norm(vector) / np.linalg.norm(reference)) >= 0.999
    finally:
        client.options(ignore_status=404).ml.delete_trained_model(model_id=model_id, force=True)
