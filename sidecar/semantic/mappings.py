"""Translating ``semantic_text`` mappings to and from real Elasticsearch mappings.

:func:`to_elasticsearch` turns the mappings a user sends (index creation, ``_mapping``,
index and component templates) into mappings every node understands, following the layout
in :mod:`sidecar.semantic.layout`; :func:`to_user` turns what Elasticsearch returns back
into what the user defined (``semantic_text`` fields with their ``model_settings``, no
internal fields, the user's own ``_meta`` only).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..chunking import parse_chunking_settings
from ..errors import EsError, illegal_argument
from ..es.node import Features
from .layout import INFERENCE_ROOT, META_KEY, default_dense_index_options, inference_mapping, value_mapping

DEFAULT_INFERENCE_ID = ".elser-2-elasticsearch"
# ``DenseVectorFieldMapper.VectorIndexType``
DENSE_INDEX_TYPES = ("hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat",
                     "bbq_disk")
_PARAMS = {"type", "inference_id", "search_inference_id", "model_settings", "chunking_settings",
           "index_options", "meta", "fields"}

# Looks up an endpoint's public configuration (None if it does not exist).
EndpointLookup = Callable[[str], Awaitable[dict[str, Any] | None]]


def mapper_error(reason: str) -> EsError:
    err = EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: {reason}")
    err.extra["caused_by"] = {"type": "mapper_parsing_exception", "reason": reason}
    return err


def has_semantic_text(mappings: Any) -> bool:
    """Cheap check used to decide whether a mapping request needs translating."""
    if isinstance(mappings, dict):
        if mappings.get("type") == "semantic_text":
            return True
        return any(has_semantic_text(v) for v in mappings.values())
    if isinstance(mappings, list):
        return any(has_semantic_text(v) for v in mappings)
    return False


@dataclass
class _Found:
    """What a walk over a mapping's properties collects."""

    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # semantic_text fields
    copy_to: dict[str, list[str]] = field(default_factory=dict)  # field -> its copy_to targets
    multi_fields: dict[str, str] = field(default_factory=dict)  # semantic_text multi-field -> its parent


def _semantic_definition(path: str, definition: dict[str, Any], in_nested: bool, no_subobjects: bool) -> dict:
    """A semantic_text field's definition, checked as the mapper builder checks it."""
    unknown = sorted(set(definition) - _PARAMS)
    if unknown:
        raise mapper_error(f"unknown parameter [{unknown[0]}] on mapper [{path}] of type [semantic_text]")
    for key in ("inference_id", "search_inference_id"):
        if key in definition and (not isinstance(definition[key], str) or not definition[key]):
            raise mapper_error(f"[{key}] on mapper [{path}] of type [semantic_text] must not be empty")
    if in_nested:
        raise illegal_argument(f"semantic_text field [{path}] cannot be nested")
    if no_subobjects:
        raise illegal_argument(f"semantic_text field [{path}] cannot be in an object field with subobjects disabled")
    user = dict(definition)
    user.setdefault("inference_id", DEFAULT_INFERENCE_ID)
    return user


def _walk_properties(properties: dict[str, Any], prefix: str, in_nested: bool, found: _Found,
                     no_subobjects: bool = False) -> dict[str, Any]:
    """Copy ``properties`` replacing semantic_text fields; collect them in ``found``."""
    out: dict[str, Any] = {}
    for name, definition in properties.items():
        path = f"{prefix}{name}"
        if not isinstance(definition, dict):
            out[name] = definition
            continue
        if definition.get("type") == "semantic_text":
            found.fields[path] = _semantic_definition(path, definition, in_nested, no_subobjects)
            out[name] = value_mapping(definition.get("fields"))
            continue
        new_def = dict(definition)
        targets = definition.get("copy_to")
        if targets is not None:
            new_def["copy_to"] = targets  # resolved after all semantic fields are known
            found.copy_to[path] = [targets] if isinstance(targets, str) else list(targets)
        if isinstance(definition.get("properties"), dict):
            nested = in_nested or definition.get("type") == "nested"
            flat = no_subobjects or definition.get("subobjects") in (False, "false")
            new_def["properties"] = _walk_properties(definition["properties"], f"{path}.", nested, found, flat)
        if isinstance(definition.get("fields"), dict):
            subs = {}
            for sub, sub_def in definition["fields"].items():
                if isinstance(sub_def, dict) and sub_def.get("type") == "semantic_text":
                    # A multi-field: embeds its parent's value (no mapping of its own in the node).
                    found.fields[f"{path}.{sub}"] = _semantic_definition(f"{path}.{sub}", sub_def, in_nested,
                                                                         no_subobjects)
                    found.multi_fields[f"{path}.{sub}"] = path
                else:
                    subs[sub] = sub_def
            new_def["fields"] = subs
            if not subs:
                new_def.pop("fields")
        out[name] = new_def
    return out


def _strip_copy_to(properties: dict[str, Any], prefix: str, semantic: set[str]) -> None:
    for name, definition in properties.items():
        if not isinstance(definition, dict):
            continue
        path = f"{prefix}{name}"
        targets = definition.get("copy_to")
        if targets is not None:
            as_list = [targets] if isinstance(targets, str) else list(targets)
            kept = [t for t in as_list if t not in semantic]
            if not kept:
                definition.pop("copy_to")
            elif len(kept) != len(as_list):
                definition["copy_to"] = kept
        if isinstance(definition.get("properties"), dict):
            _strip_copy_to(definition["properties"], f"{path}.", semantic)


def _all_fields(properties: Any):
    if not isinstance(properties, dict):
        return
    for definition in properties.values():
        if isinstance(definition, dict):
            yield definition
            yield from _all_fields(definition.get("properties"))


def _set_path(properties: dict[str, Any], dotted: str, mapping: dict[str, Any]) -> None:
    parts = dotted.split(".")
    node = properties
    for part in parts[:-1]:
        node = node.setdefault(part, {}).setdefault("properties", {})
    node[parts[-1]] = mapping


async def to_elasticsearch(
    mappings: dict[str, Any],
    lookup: EndpointLookup,
    existing_meta: dict[str, Any] | None = None,
    features: Features | None = None,
) -> dict[str, Any]:
    """Translate a user's mappings object. ``existing_meta`` is the index's current ``_meta``
    (for ``_mapping`` updates, which replace ``_meta`` as a whole in Elasticsearch);
    ``features`` are the node's (8.19's rules when not given)."""
    features = features or Features((8, 19, 0))
    if not isinstance(mappings, dict):
        return mappings
    if not has_semantic_text(mappings) and not ((existing_meta or {}).get(META_KEY)) and not any(
        isinstance(d, dict) and d.get("copy_to") for d in _all_fields(mappings.get("properties"))
    ):
        return mappings
    result = copy.deepcopy(mappings)
    walk = _Found()
    if isinstance(result.get("properties"), dict):
        result["properties"] = _walk_properties(result["properties"], "", False, walk,
                                                result.get("subobjects") in (False, "false"))
    found, copy_to = walk.fields, walk.copy_to
    old_sidecar = ((existing_meta or {}).get(META_KEY) or {})
    semantic_defs: dict[str, Any] = dict(old_sidecar.get("semantic_text") or {})
    for path, user in found.items():
        parse_index_options(path, user.get("index_options"), features.semantic_sparse_index_options)
        if user.get("chunking_settings") is not None:
            parsed = parse_chunking_settings(user["chunking_settings"],
                                             max_chunk_size_upper_limit=features.max_chunk_size_cap)
            user["chunking_settings"] = parsed.to_dict() if parsed else None
        previous = semantic_defs.get(path)
        endpoint = await lookup(user["inference_id"])
        changed_id = previous and previous.get("inference_id") != user["inference_id"]
        if changed_id and features.inference_id_updatable:
            check_inference_id_update(path, previous, user["inference_id"], endpoint)
            previous = {k: v for k, v in previous.items() if k != "model_settings"}
        elif changed_id and previous.get("model_settings"):
            raise EsError(
                400, "illegal_argument_exception",
                f"Cannot update parameter [inference_id] from [{previous['inference_id']}] to "
                f"[{user['inference_id']}]",
            )
        model_settings = user.get("model_settings") or (previous or {}).get("model_settings")
        if endpoint is not None:
            from .layout import model_settings_for

            resolved = model_settings_for(endpoint)
            if resolved["task_type"] not in ("text_embedding", "sparse_embedding"):
                raise EsError(
                    400, "illegal_argument_exception",
                    f"Field [{path}] cannot use inference endpoint [{user['inference_id']}] with task type "
                    f"[{resolved['task_type']}]: semantic_text supports [text_embedding, sparse_embedding]",
                )
            if model_settings and model_settings != resolved:
                raise EsError(400, "illegal_argument_exception",
                              f"Incompatible model settings for field [{path}]. Check that the "
                              f"[{user['inference_id']}] inference endpoint is still the one the field was "
                              "created with.")
        else:
            resolved = None
        # Elasticsearch maps the embeddings with the endpoint's settings at once but writes
        # ``model_settings`` into the mapping only when the first document is indexed.
        if model_settings:
            user["model_settings"] = model_settings
        else:
            user.pop("model_settings", None)
        check_index_options(user["inference_id"], user.get("index_options"), model_settings or resolved)
        semantic_defs[path] = user
        _set_path(result.setdefault("properties", {}), f"{INFERENCE_ROOT}.{path}",
                  inference_mapping(model_settings or resolved, user.get("index_options")))
    semantic_paths = set(semantic_defs)
    copy_map: dict[str, list[str]] = dict(old_sidecar.get("copy_to") or {})
    for source, targets in copy_to.items():
        into = [t for t in targets if t in semantic_paths]
        if into:
            copy_map[source] = sorted(set(copy_map.get(source, [])) | set(into))
    if isinstance(result.get("properties"), dict):
        _strip_copy_to(result["properties"], "", semantic_paths)
    if semantic_defs or copy_map:
        user_meta = dict(result.get("_meta") or {k: v for k, v in (existing_meta or {}).items() if k != META_KEY})
        user_meta[META_KEY] = {"semantic_text": semantic_defs, "copy_to": copy_map}
        multi_fields = {**(old_sidecar.get("multi_fields") or {}), **walk.multi_fields}
        if multi_fields:
            user_meta[META_KEY]["multi_fields"] = multi_fields
        result["_meta"] = user_meta
    return result


def parse_index_options(path: str, value: Any, sparse: bool = True) -> None:
    """``index_options`` as ``SemanticTextIndexOptions`` parses them: one of ``dense_vector`` /
    ``sparse_vector``, a dense one with a known ``type``."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise mapper_error(f"[index_options] on mapper [{path}] of type [semantic_text] must be an object")
    if len(value) != 1:
        raise mapper_error(f"Too many index options provided, found [{', '.join(value)}]")
    (kind, options), = value.items()
    if kind not in (("dense_vector", "sparse_vector") if sparse else ("dense_vector",)):
        raise mapper_error(f"Unknown index options type [{kind}]")
    if kind == "dense_vector":
        options = options if isinstance(options, dict) else {}
        if options.get("type") is None:
            raise mapper_error("Required type")
        if options["type"] not in DENSE_INDEX_TYPES:
            raise mapper_error(f"Unsupported index options type {options['type']}")


def check_index_options(inference_id: str, index_options: Any, settings: dict[str, Any] | None) -> None:
    """The user's ``index_options`` checked against the endpoint's model settings, as the
    mapper builder checks them."""
    if index_options is None:
        return
    if not settings:
        raise illegal_argument(f"Model settings must be set to validate index options for inference ID [{inference_id}]")
    (kind, _), = index_options.items()
    required = "text_embedding" if kind == "dense_vector" else "sparse_embedding"
    if settings.get("task_type") != required:
        raise illegal_argument(f"Invalid task type for index options, required [{required}] but was "
                               f"[{settings.get('task_type')}]")


def check_inference_id_update(path: str, previous: dict[str, Any], new_id: str,
                              endpoint: dict[str, Any] | None) -> None:
    """9.3+: a semantic_text field may move to another endpoint if it has no embeddings yet or
    the new endpoint's embeddings are compatible with the stored ones (same task type; for dense
    ones the same dimensions, similarity and element type)."""
    if endpoint is None:
        raise EsError(400, "illegal_argument_exception",
                      f"Cannot update [semantic_text] field [{path}] because inference endpoint [{new_id}] "
                      "does not exist.")
    old = previous.get("model_settings")
    if not old:
        return
    from .layout import model_settings_for

    new = model_settings_for(endpoint)
    keys = ("task_type",) if old.get("task_type") == "sparse_embedding" else (
        "task_type", "dimensions", "similarity", "element_type")
    if any(old.get(k) != new.get(k) for k in keys):
        raise EsError(400, "illegal_argument_exception",
                      f"Cannot update [semantic_text] field [{path}] because inference endpoint "
                      f"[{previous['inference_id']}] with model settings [{_settings_repr(old)}] is not compatible "
                      f"with new inference endpoint [{new_id}] with model settings [{_settings_repr(new)}]")


def _settings_repr(settings: dict[str, Any]) -> str:
    """Model settings as Elasticsearch's ``MinimalServiceSettings`` prints them."""
    fields = ("service", "task_type", "dimensions", "similarity", "element_type")
    names = ("service", "taskType", "dimensions", "similarity", "elementType")
    return "MinimalServiceSettings[" + ", ".join(
        f"{n}={settings.get(f)}".replace("=None", "=null") for f, n in zip(fields, names, strict=True)) + "]"


def _set_multi_field(properties: dict[str, Any], parent: str, name: str, mapping: dict[str, Any]) -> None:
    node: Any = properties
    parts = parent.split(".")
    for part in parts[:-1]:
        node = (node.get(part) or {}).get("properties") or {}
    target = node.get(parts[-1])
    if isinstance(target, dict):
        target.setdefault("fields", {})[name] = mapping


def _remove_path(properties: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    node = properties
    for part in parts[:-1]:
        node = (node.get(part) or {}).get("properties")
        if node is None:
            return
    node.pop(parts[-1], None)


def to_user(mappings: dict[str, Any], include_defaults: bool = False) -> dict[str, Any]:
    """Elasticsearch's mappings of an index → the user's view (semantic_text restored; with
    ``include_defaults``, the default ``index_options`` Elasticsearch serializes then)."""
    if not isinstance(mappings, dict):
        return mappings
    meta = mappings.get("_meta") or {}
    sidecar_meta = meta.get(META_KEY)
    if not sidecar_meta:
        return mappings
    result = copy.deepcopy(mappings)
    props = result.get("properties") or {}
    props.pop(INFERENCE_ROOT, None)
    multi_fields = sidecar_meta.get("multi_fields") or {}
    for path, definition in (sidecar_meta.get("semantic_text") or {}).items():
        shown = {"type": "semantic_text", **{k: v for k, v in definition.items() if k != "type"}}
        if include_defaults and shown.get("index_options") is None:
            default = default_dense_index_options(definition.get("model_settings"))
            if default:
                shown["index_options"] = {"dense_vector": default}
        if path in multi_fields:
            _set_multi_field(props, multi_fields[path], path.rsplit(".", 1)[-1], shown)
        else:
            _set_path(props, path, shown)
    for source, targets in (sidecar_meta.get("copy_to") or {}).items():
        parts = source.split(".")
        node = props
        for part in parts[:-1]:
            node = (node.get(part) or {}).get("properties") or {}
        field = node.get(parts[-1])
        if isinstance(field, dict):
            current = field.get("copy_to")
            as_list = [] if current is None else ([current] if isinstance(current, str) else list(current))
            merged = as_list + [t for t in targets if t not in as_list]
            field["copy_to"] = merged[0] if len(merged) == 1 else merged
    user_meta = {k: v for k, v in meta.items() if k != META_KEY}
    if user_meta:
        result["_meta"] = user_meta
    else:
        result.pop("_meta", None)
    return result


def rewrite_mapping_response(body: Any, include_defaults: bool = False) -> Any:
    """Apply :func:`to_user` to every ``mappings`` object in a GET response body
    (``GET /idx``, ``GET /idx/_mapping``, templates)."""
    if isinstance(body, dict):
        out = {}
        for key, value in body.items():
            if key == "mappings" and isinstance(value, dict):
                out[key] = to_user(value, include_defaults)
            else:
                out[key] = rewrite_mapping_response(value, include_defaults)
        return out
    if isinstance(body, list):
        return [rewrite_mapping_response(v, include_defaults) for v in body]
    return body


def user_error(answer: Any, translated: Any) -> Any:
    """Elasticsearch's error for a translated mapping, naming the user's semantic_text field where
    it names the internal embeddings field (as the mapper reports index options errors)."""
    if not isinstance(answer, dict) or not isinstance(translated, dict):
        return answer
    defs = ((translated.get("_meta") or {}).get(META_KEY) or {}).get("semantic_text") or {}
    names = {f"{INFERENCE_ROOT}.{path}.chunks.embeddings": path for path in defs}
    with_options = [path for path, d in defs.items() if d.get("index_options") is not None]
    if len(with_options) == 1:
        names["[embeddings]"] = f"[{with_options[0]}]"
    return _renamed(answer, names)


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, str):
        for old, new in names.items():
            value = value.replace(old, new)
    return value

