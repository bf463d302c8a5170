"""The ``inference`` processor's own options, read as Elasticsearch's
``InferenceProcessor.Factory.create`` reads them (the generic ``if``, ``tag``,
``on_failure``, … are read with the rest of the pipeline in :mod:`.definition`).

Apart from :mod:`.processor`, which runs the processor, so that compiling a pipeline needs
nothing of the code that calls the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import EsError
from .properties import Reader, config_error

INFERENCE = "inference"
DEFAULT_TARGET_FIELD = "ml.inference"
CONFIG_TYPES = (
    "classification", "regression", "fill_mask", "ner", "pass_through", "question_answering",
    "text_classification", "text_embedding", "text_expansion", "text_similarity", "zero_shot_classification",
)


@dataclass
class InputOutput:
    input_field: str
    output_field: str

    @property
    def base_path(self) -> str | None:
        head, _, _ = self.output_field.rpartition(".")
        return head or None

    @property
    def leaf(self) -> str:
        return self.output_field.rpartition(".")[2]


@dataclass
class InferenceSpec:
    model_id: str
    inputs: list[InputOutput] | None = None
    ignore_missing: bool = False
    target_field: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    results_field: str | None = None


def _bad_request(reader: Reader, reason: str) -> EsError:
    # ExceptionsHelper.badRequestException wrapped by newConfigurationException
    return config_error(reason, processor_type=INFERENCE, tag=reader.tag, type_="status_exception")


def _inference_config(reader: Reader, value: dict[str, Any]) -> str | None:
    if len(value) != 1 or not isinstance(next(iter(value.values())), dict):
        raise _bad_request(reader, "inference_config must be an object with one inference type mapped to an object.")
    kind, options = next(iter(value.items()))
    if kind not in CONFIG_TYPES:
        raise _bad_request(
            reader, f"unrecognized inference configuration type [{kind}]. Supported types [{', '.join(CONFIG_TYPES)}]"
        )
    options = dict(options)
    results_field = options.pop("results_field", None)
    options.pop("tokenization", None)
    options.pop("num_top_classes", None)
    options.pop("num_top_feature_importance_values", None)
    options.pop("top_classes_results_field", None)
    if options:
        raise _bad_request(reader, f"Unrecognized fields [{', '.join(options)}].")
    if results_field is not None and not isinstance(results_field, str):
        raise _bad_request(reader, f"[results_field] must be a string, got [{results_field}]")
    return results_field


def _input_output(reader: Reader, value: Any) -> list[InputOutput]:
    if isinstance(value, dict):
        items = [value]
    elif isinstance(value, list):
        if value and not all(isinstance(v, dict) for v in value):
            raise reader.error("property isn't a list of maps", "input_output")
        items = value
    else:
        raise reader.error("property isn't a map or list of maps", "input_output")
    if not items:
        raise reader.error("property cannot be empty at least one is required", "input_output")
    seen_in: set[str] = set()
    seen_out: set[str] = set()
    out = []
    for item in items:
        item_reader = Reader(dict(item), INFERENCE, reader.tag)
        input_field = item_reader.string("input_field", required=True)
        output_field = item_reader.string("output_field", required=True)
        assert input_field is not None and output_field is not None
        for name, seen, prop in ((input_field, seen_in, "input_field"), (output_field, seen_out, "output_field")):
            if name in seen:
                raise reader.error(f"names must be unique but [{name}] is repeated", prop)
            seen.add(name)
        out.append(InputOutput(input_field, output_field))
    return out


def parse_inference(config: dict[str, Any], tag: str | None) -> InferenceSpec:
    """``InferenceProcessor.Factory.create`` on the processor's own options (the generic
    ones — ``if``, ``tag``, ``on_failure``, … — are not passed here)."""
    reader = Reader(dict(config), INFERENCE, tag)
    model_id = reader.string("model_id", required=True)
    assert model_id is not None
    results_field = None
    config_map = reader.mapping("inference_config")
    if config_map is not None:
        results_field = _inference_config(reader, config_map)
    raw_inputs = reader.config.pop("input_output", None)
    if raw_inputs is not None:
        inputs = _input_output(reader, raw_inputs)
        ignore_missing = reader.boolean("ignore_missing", False)
        if reader.string("target_field") is not None:
            raise reader.error(
                "option is incompatible with [input_output]. Use the [output_field] option to specify where to "
                "write the inference results to.",
                "target_field",
            )
        if results_field is not None:
            raise reader.error(
                "The [inference_config.results_field] setting is incompatible with using [input_output]. Prefer to "
                "use the [input_output.output_field] option to specify where to write the inference results to."
            )
        reader.leftovers()
        return InferenceSpec(model_id=model_id, inputs=inputs, ignore_missing=ignore_missing)
    default_target = DEFAULT_TARGET_FIELD if tag is None else f"{DEFAULT_TARGET_FIELD}.{tag}"
    target_field = reader.string("target_field", default_target)
    field_map = reader.mapping("field_map")
    if field_map is None:
        field_map = reader.mapping("field_mappings")
    reader.leftovers()
    return InferenceSpec(model_id=model_id, target_field=target_field, field_map=dict(field_map or {}),
                         results_field=results_field)
