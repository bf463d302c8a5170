"""Trained model configs as Elasticsearch parses, validates and renders them
(``TrainedModelConfig``, the NLP ``inference_config`` objects and their ``tokenization``).

:func:`parse_put` turns a ``PUT _ml/trained_models/{id}`` body into the stored config, with
Elasticsearch's defaults filled in, or raises its error; :func:`render` is what ``GET`` shows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import Any

from ..errors import EsError, action_request_validation, x_content_parse
from .tokenization import DEFAULTS as TOKENIZATION_DEFAULTS
from .tokenization import TRUNCATE

_VALID_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_\-.]*[a-z0-9])?$")
ID_LENGTH_LIMIT = 64
NATIVE_INDEX = ".ml-inference-native-000002"

_CONFIG_FIELDS = {
    "model_id", "model_type", "description", "tags", "metadata", "input", "inference_config",
    "compressed_definition", "definition", "model_size_bytes", "estimated_heap_memory_usage_bytes",
    "estimated_operations", "default_field_map", "location", "platform_architecture", "prefix_strings",
    "model_package", "version", "created_by", "create_time", "license_level",
}
_COMMON = {"tokenization", "results_field", "vocabulary"}
# NLP task → (allowed fields, defaults). Tree-model configs (regression, classification)
# are stored as given.
NLP_TASKS: dict[str, tuple[set[str], dict[str, Any]]] = {
    "text_embedding": (_COMMON | {"embedding_size"}, {}),
    "text_expansion": (_COMMON | {"expansion_type"}, {}),
    "text_similarity": (_COMMON | {"text", "span_score_combination"}, {"span_score_combination": "max"}),
    "pass_through": (_COMMON, {}),
    "fill_mask": (_COMMON | {"num_top_classes", "mask_token"}, {"num_top_classes": 0}),
    "ner": (_COMMON | {"classification_labels"}, {}),
    "text_classification": (_COMMON | {"classification_labels", "num_top_classes"}, {"num_top_classes": 0}),
    "zero_shot_classification": (_COMMON | {"classification_labels", "hypothesis_template", "multi_label",
                                            "labels"},
                                 {"hypothesis_template": "This example is {}.", "multi_label": False}),
    "question_answering": (_COMMON | {"question", "num_top_classes", "max_answer_length"},
                           {"num_top_classes": 0, "max_answer_length": 15}),
}
TREE_TASKS = {"regression", "classification"}
MODEL_TYPES = ("tree_ensemble", "lang_ident", "pytorch")


def invalid_id(model_id: str) -> str:
    return (f"Invalid model_id; '{model_id}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
            "underscores; must start and end with alphanumeric")


def reject_unknown_fields(obj: dict[str, Any], parser: str, fields: Collection[str]) -> None:
    """Elasticsearch's parse error for the first key of ``obj`` its ``parser`` does not know."""
    for key in obj:
        if key not in fields:
            raise x_content_parse(f"[{parser}] unknown field [{key}]")


def object_body(body: Any, parser: str, fields: Collection[str]) -> dict[str, Any]:
    """``body`` as the object ``parser`` reads: a JSON object of known fields, else
    Elasticsearch's parse error."""
    if not isinstance(body, dict):
        raise x_content_parse(f"[{parser}] Expected START_OBJECT")
    reject_unknown_fields(body, parser, fields)
    return body


def _parse_tokenization(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1:
        raise x_content_parse(f"[{where}] failed to parse field [tokenization]")
    kind, options = next(iter(value.items()))
    defaults = TOKENIZATION_DEFAULTS.get(kind)
    if defaults is None:
        raise x_content_parse(f"[{where}] failed to parse field [tokenization]: unknown tokenization [{kind}]")
    options = options or {}
    reject_unknown_fields(options, kind, defaults)
    out = {**defaults, **options}
    if out["truncate"] not in TRUNCATE:
        raise EsError(400, "illegal_argument_exception",
                      f"No enum constant org.elasticsearch.xpack.core.ml.inference.trainedmodel.Tokenization."
                      f"Truncate.{str(out['truncate']).upper()}")
    span = out["span"]
    if span != -1 and out["truncate"] != "none":
        raise action_request_validation(
            f"[span] must not be set when [truncate] is not [none]; truncate: [{out['truncate']}]")
    if span != -1 and span > out["max_sequence_length"]:
        raise action_request_validation(
            f"[span] provided [{span}] must not be greater than [max_sequence_length] [{out['max_sequence_length']}]")
    return {kind: out}


def parse_inference_config(value: Any, *, for_update: bool = False) -> dict[str, Any]:
    """One task object, with defaults (or, ``for_update``, only the fields given)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise x_content_parse("[trained_model_config] failed to parse field [inference_config]")
    task, options = next(iter(value.items()))
    if task in TREE_TASKS:
        return {task: dict(options or {})}
    spec = NLP_TASKS.get(task)
    if spec is None:
        raise x_content_parse(
            f"[trained_model_config] failed to parse field [inference_config]: unknown inference config [{task}]")
    allowed, defaults = spec
    options = dict(options or {})
    reject_unknown_fields(options, task, allowed)
    if "tokenization" in options:
        options["tokenization"] = _parse_tokenization(options["tokenization"], task)
    if for_update:
        return {task: options}
    out: dict[str, Any] = {"vocabulary": {"index": NATIVE_INDEX}}
    out.update(defaults)
    out.update(options)
    out.setdefault("tokenization", {"bert": dict(TOKENIZATION_DEFAULTS["bert"])})
    out.setdefault("results_field", "predicted_value")
    if task == "zero_shot_classification" and not out.get("classification_labels"):
        raise action_request_validation("[zero_shot_classification] requires [classification_labels]")
    return {task: out}


def parse_put(model_id: str, body: Any, *, version: str) -> dict[str, Any]:
    """The config to store for ``PUT _ml/trained_models/{model_id}``."""
    object_body(body, "trained_model_config", _CONFIG_FIELDS)
    if "model_id" in body and body["model_id"] != model_id:
        raise EsError(400, "illegal_argument_exception",
                      f"Inconsistent model_id; '{body['model_id']}' specified in the body differs from "
                      f"'{model_id}' specified as a URL argument")
    errors: list[str] = []
    packaged = model_id.startswith(".")
    model_type = body.get("model_type")
    if model_type is not None and model_type not in MODEL_TYPES:
        raise EsError(400, "illegal_argument_exception",
                      f"No enum constant org.elasticsearch.xpack.core.ml.inference.TrainedModelType."
                      f"{str(model_type).upper()}")
    if not packaged:
        if body.get("definition") is None and body.get("compressed_definition") is None and model_type is None:
            errors.append("[model_type] must be set if [definition] is not defined.")
        if body.get("inference_config") is None:
            errors.append("[inference_config] must not be null.")
    if not _VALID_ID.match(model_id.lstrip(".")) or (not packaged and "." in model_id):
        errors.append(invalid_id(model_id))
    if len(model_id) > ID_LENGTH_LIMIT:
        errors.append(f"Invalid model_id; '{model_id}' cannot contain more than {ID_LENGTH_LIMIT} characters.")
    tags = body.get("tags") or []
    bad = [t for t in tags if not isinstance(t, str) or not _VALID_ID.match(t) or len(t) > ID_LENGTH_LIMIT]
    if bad:
        errors.append(f"Invalid tags {bad}; must only can contain lowercase alphanumeric (a-z and 0-9), hyphens "
                      f"or underscores, must start and end with alphanumeric, and must be less than "
                      f"{ID_LENGTH_LIMIT} characters.")
    if model_id in tags:
        errors.append("none of the tags must equal the model_id")
    field_names = (body.get("input") or {}).get("field_names")
    if body.get("input") is not None and not field_names:
        errors.append("[input.field_names] must not be empty")
    for setting in ("version", "created_by", "create_time", "license_level", "location"):
        if body.get(setting) is not None:
            errors.append(f"illegal to set [{setting}] at inference model creation")
    if errors:
        raise action_request_validation(*errors)
    if body.get("input") is None and not packaged:
        raise action_request_validation("[input] must not be null.")
    config: dict[str, Any] = {
        "model_id": model_id,
        "model_type": model_type or ("pytorch" if body.get("definition") is None else "tree_ensemble"),
        "created_by": "api_user",
        "version": version,
        "create_time": int(time.time() * 1000),
        "model_size_bytes": int(body.get("model_size_bytes") or 0),
        "estimated_operations": int(body.get("estimated_operations") or 0),
        "license_level": "platinum",
        "tags": list(tags),
        "input": {"field_names": list(field_names or ["text_field"])},
    }
    for key in ("description", "metadata", "default_field_map", "platform_architecture", "prefix_strings"):
        if body.get(key) is not None:
            config[key] = body[key]
    if body.get("inference_config") is not None:
        config["inference_config"] = parse_inference_config(body["inference_config"])
    if config["model_type"] == "pytorch":
        config["location"] = {"index": {"name": NATIVE_INDEX}}
    return config


def render(config: dict[str, Any], *, fully_defined: bool | None = None,
           include: set[str] | None = None) -> dict[str, Any]:
    """What ``GET _ml/trained_models`` shows of a stored config."""
    out = {k: v for k, v in config.items() if not k.startswith("_")}
    if fully_defined is not None and include and "definition_status" in include:
        out["fully_defined"] = fully_defined
    return out


def task_of(config: dict[str, Any]) -> str | None:
    inference = config.get("inference_config") or {}
    return next(iter(inference), None)


def tokenization_of(config: dict[str, Any]) -> dict[str, Any]:
    task = task_of(config)
    return ((config.get("inference_config") or {}).get(task) or {}).get("tokenization") or {}
