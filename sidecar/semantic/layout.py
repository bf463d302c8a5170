"""How ``semantic_text`` fields are laid out in a plain Elasticsearch index.

Elasticsearch has no ``semantic_text`` type without its inference plugin, so the sidecar maps
each such field onto types every node has, and keeps the user's definition in the index
mapping's ``_meta`` so that ``GET _mapping`` can show the field as the user defined it.

For a field ``content`` defined as ``{"type": "semantic_text", "inference_id": "my-e5"}``:

* ``content`` itself is mapped ``{"type": "object", "enabled": false}``: the user's value is
  kept in ``_source`` exactly as sent (a string or an array of strings) and not indexed, as
  Elasticsearch does for semantic_text.
* The inference results live under one root field, :data:`INFERENCE_ROOT`::

      "_sidecar_inference": {
        "content": {                                  # the semantic_text field's full path
          "inference_id": "my-e5",
          "chunks": [                                  # nested
            {"source": "content",                      # field the text came from (itself or a copy_to source)
             "start_offset": 0, "end_offset": 31,      # UTF-16 offsets into that source's text
             "embeddings": [0.1, ...] | {"tok": 1.2}}  # dense_vector or sparse_vector
          ]
        }
      }

  Each value of a multi-valued source is chunked on its own; offsets index into the values
  joined with ``"\\u0000"`` (as Elasticsearch concatenates them).
* The index ``_meta`` holds :data:`META_KEY`: ``{"semantic_text": {field: definition}}`` where
  the definition is the user's mapping of the field plus ``model_settings``
  (``task_type``, ``dimensions``, ``similarity``, ``element_type``) once known, and
  ``{"copy_to": {source_field: [semantic fields]}}`` for ``copy_to`` into semantic fields.

Searches and gets through the sidecar exclude :data:`INFERENCE_ROOT` from ``_source`` unless
the caller asks for it (``_source_includes`` naming it, or ``fields: ["_inference_fields"]``).
"""

from __future__ import annotations

from typing import Any

INFERENCE_ROOT = "_sidecar_inference"
META_KEY = "sidecar"
NUL = "\u0000"


def inference_path(field: str) -> str:
    return f"{INFERENCE_ROOT}.{field}"


def chunks_path(field: str) -> str:
    return f"{INFERENCE_ROOT}.{field}.chunks"


def embeddings_path(field: str) -> str:
    return f"{INFERENCE_ROOT}.{field}.chunks.embeddings"


def embeddings_mapping(model_settings: dict[str, Any], index_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Elasticsearch mapping of the embeddings of one chunk."""
    task_type = model_settings["task_type"]
    if task_type == "sparse_embedding":
        sparse = (index_options or {}).get("sparse_vector")
        return {"type": "sparse_vector", **({"index_options": sparse} if sparse else {})}
    mapping: dict[str, Any] = {
        "type": "dense_vector",
        "dims": model_settings["dimensions"],
        "similarity": model_settings.get("similarity") or "cosine",
        "element_type": model_settings.get("element_type") or "float",
        "index": True,
    }
    chosen = (index_options or {}).get("dense_vector") or default_dense_index_options(model_settings)
    if chosen:
        mapping["index_options"] = chosen
    return mapping


# ``SemanticTextFieldMapper.defaultBbqHnswDenseVectorIndexOptions``: Lucene's HNSW defaults and a
# rescore oversample of 3.
BBQ_HNSW_DEFAULT = {"type": "bbq_hnsw", "m": 16, "ef_construction": 100, "rescore_vector": {"oversample": 3.0}}
BBQ_MIN_DIMS = 64


def default_dense_index_options(model_settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``index_options`` Elasticsearch (8.19, 9.1+) gives a dense semantic_text field the
    user configured none for: ``bbq_hnsw`` where BBQ can index the vectors (float, at least 64
    dimensions), otherwise none (the dense_vector defaults apply)."""
    if not model_settings or model_settings.get("task_type") != "text_embedding":
        return None
    dims = model_settings.get("dimensions")
    if not isinstance(dims, int) or dims < BBQ_MIN_DIMS or (model_settings.get("element_type") or "float") != "float":
        return None
    return {**BBQ_HNSW_DEFAULT, "rescore_vector": dict(BBQ_HNSW_DEFAULT["rescore_vector"])}


def inference_mapping(model_settings: dict[str, Any] | None, index_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping of ``_sidecar_inference.<field>``; without model settings (endpoint not
    resolved yet) the chunk embeddings are mapped on first ingest."""
    chunk_props: dict[str, Any] = {
        "source": {"type": "keyword", "index": False, "doc_values": False},
        "start_offset": {"type": "integer", "index": False},
        "end_offset": {"type": "integer", "index": False},
    }
    if model_settings:
        chunk_props["embeddings"] = embeddings_mapping(model_settings, index_options)
    return {
        "properties": {
            "inference_id": {"type": "keyword", "index": False, "doc_values": False},
            "chunks": {"type": "nested", "properties": chunk_props},
        }
    }


def value_mapping(fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping of the semantic_text field itself: stored in _source, not indexed. With
    multi-fields of its own, a keyword that indexes nothing itself carries them."""
    if fields:
        return {"type": "keyword", "index": False, "doc_values": False, "fields": fields}
    return {"type": "object", "enabled": False}


def model_settings_for(endpoint_public: dict[str, Any]) -> dict[str, Any]:
    """``model_settings`` as Elasticsearch writes them into a semantic_text mapping."""
    task_type = endpoint_public["task_type"]
    settings: dict[str, Any] = {"task_type": task_type}
    if task_type == "text_embedding":
        service_settings = endpoint_public.get("service_settings", {})
        settings["dimensions"] = service_settings.get("dimensions")
        settings["similarity"] = service_settings.get("similarity") or "cosine"
        settings["element_type"] = service_settings.get("element_type") or "float"
    return settings
