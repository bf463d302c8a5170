"""Pipeline definitions: reading them as Elasticsearch's ``Pipeline.create`` does and
splitting them into what the sidecar runs and what Elasticsearch runs.

A pipeline's processors become a list of *steps*:

* :class:`EsSegment` — consecutive processors that Elasticsearch runs itself (one
  ``_simulate`` call per segment and batch of documents);
* :class:`NodeStep` — an ``inference`` processor (run by the sidecar), or an Elasticsearch
  processor whose ``on_failure`` handler contains inference processors (Elasticsearch runs
  the processor, the sidecar runs the handler).

Only the inference-specific options and the pipeline's top-level keys are checked here;
everything else is validated by Elasticsearch on the *Elasticsearch view* of the pipeline
(:func:`es_view`), in which every inference processor is replaced by a stand-in carrying its
``if``, ``tag``, ``description``, ``ignore_failure`` and ``on_failure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import EsError
from .document import java_type
from .inference_options import INFERENCE, InferenceSpec, parse_inference
from .properties import Reader, config_error

# The processor Elasticsearch runs in place of an inference processor when it only has to
# check the options around it or evaluate its ``if`` (every distribution has it).
STAND_IN = "set_security_user"
STAND_IN_FIELD = "_es_inference_sidecar"
_GENERIC = ("tag", "description", "if", "ignore_failure", "on_failure")
_TOP_KEYS = ("description", "version", "_meta", "deprecated", "processors", "on_failure")


# -- the compiled form -------------------------------------------------------------------------


@dataclass
class Node:
    """One processor of a list."""

    type: str
    raw: Any  # the processor's configuration as written (what Elasticsearch is sent)
    tag: str | None = None
    description: str | None = None
    condition: Any = None
    ignore_failure: bool = False
    on_failure: list[Step] | None = None
    spec: InferenceSpec | None = None  # the parsed options of an inference processor

    @property
    def is_inference(self) -> bool:
        return self.type == INFERENCE

    def es_config(self) -> dict[str, Any]:
        """``{type: config}`` as Elasticsearch is sent it (a sidecar-run handler removed)."""
        raw = self.raw
        if isinstance(raw, dict) and _contains_inference(raw.get("on_failure")):
            # The sidecar runs that handler (or, with ignore_failure, it never runs).
            raw = {k: v for k, v in raw.items() if k != "on_failure"}
        return {self.type: raw}

    def unhandled_failure_type(self) -> str:
        """The processor type Elasticsearch reports for a failure of this processor that no
        handler of its own caught: an ``if`` wraps the processor in a ``conditional`` one."""
        return "conditional" if self.condition is not None else self.type


@dataclass
class EsSegment:
    """Processors Elasticsearch runs, in one ``_simulate`` call per batch."""

    nodes: list[Node]

    def processors(self) -> list[dict[str, Any]]:
        return [n.es_config() for n in self.nodes]

    @property
    def has_reroute(self) -> bool:
        return any(n.type == "reroute" for n in self.nodes)


@dataclass
class NodeStep:
    """A processor run on its own: an inference processor, or an Elasticsearch processor
    whose ``on_failure`` handler the sidecar runs."""

    node: Node


Step = EsSegment | NodeStep


@dataclass
class CompiledPipeline:
    id: str
    body: dict[str, Any]
    steps: list[Step]
    on_failure: list[Step] | None
    model_ids: list[str] = field(default_factory=list)


# -- inspection --------------------------------------------------------------------------------


def _processor_items(processors: Any):
    if not isinstance(processors, list):
        return
    for element in processors:
        if isinstance(element, dict):
            yield from element.items()


def _contains_inference(processors: Any) -> bool:
    for ptype, cfg in _processor_items(processors):
        if ptype == INFERENCE:
            return True
        if isinstance(cfg, dict):
            if _contains_inference(cfg.get("on_failure")):
                return True
            inner = cfg.get("processor")
            if ptype == "foreach" and isinstance(inner, dict) and _contains_inference([inner]):
                return True
    return False


def contains_inference(body: Any) -> bool:
    """Whether a pipeline definition has an ``inference`` processor anywhere."""
    if not isinstance(body, dict):
        return False
    return _contains_inference(body.get("processors")) or _contains_inference(body.get("on_failure"))


def _collect_models(processors: Any, out: list[str]) -> None:
    for ptype, cfg in _processor_items(processors):
        if not isinstance(cfg, dict):
            continue
        if ptype == INFERENCE and isinstance(cfg.get("model_id"), str) and cfg["model_id"] not in out:
            out.append(cfg["model_id"])
        _collect_models(cfg.get("on_failure"), out)
        if ptype == "foreach" and isinstance(cfg.get("processor"), dict):
            _collect_models([cfg["processor"]], out)


def model_ids(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    _collect_models(body.get("processors"), out)
    _collect_models(body.get("on_failure"), out)
    return out


# -- the Elasticsearch view --------------------------------------------------------------------


def _view_list(processors: Any) -> Any:
    if not isinstance(processors, list):
        return processors
    out = []
    for element in processors:
        if not isinstance(element, dict):
            out.append(element)
            continue
        converted = {}
        for ptype, cfg in element.items():
            if ptype == INFERENCE and isinstance(cfg, dict):
                stand_in = {"field": STAND_IN_FIELD}
                for key in _GENERIC:
                    if key in cfg:
                        stand_in[key] = _view_list(cfg[key]) if key == "on_failure" else cfg[key]
                converted[STAND_IN] = stand_in
            elif isinstance(cfg, dict) and "on_failure" in cfg:
                converted[ptype] = {**cfg, "on_failure": _view_list(cfg["on_failure"])}
            else:
                converted[ptype] = cfg
        out.append(converted)
    return out


def es_view(body: dict[str, Any]) -> dict[str, Any]:
    """The pipeline with every inference processor replaced by a stand-in, so that
    Elasticsearch can check everything else exactly as it checks its own pipelines."""
    view: dict[str, Any] = {"processors": _view_list(body.get("processors"))}
    if "on_failure" in body:
        view["on_failure"] = _view_list(body["on_failure"])
    return view


# -- compiling ---------------------------------------------------------------------------------


def check_top_level(pipeline_id: str, body: Any) -> None:
    """The checks of ``Pipeline.create`` on the pipeline's own keys (with its real id)."""
    if not isinstance(body, dict):
        raise EsError(400, "parse_exception", "request body is required")
    top = Reader(dict(body), None, None)
    top.string("description")
    version = top.config.pop("version", None)
    if version is not None:
        try:
            int(str(version))
        except ValueError:
            raise top.error(f"property cannot be converted to an int [{version}]", "version") from None
    top.mapping("_meta")
    top.boolean("deprecated", False)
    processors = top.config.pop("processors", None)
    if processors is None:
        raise top.error("required property is missing", "processors")
    if not isinstance(processors, list):
        raise top.error(f"property isn't a list, but of type [{java_type(processors)}]", "processors")
    on_failure = top.config.pop("on_failure", None)
    if on_failure is not None and not isinstance(on_failure, list):
        raise top.error(f"property isn't a list, but of type [{java_type(on_failure)}]", "on_failure")
    if top.config:
        keys = ", ".join(top.config)
        raise EsError(
            400, "parse_exception",
            f"pipeline [{pipeline_id}] doesn't support one or more provided configuration parameters [{keys}]",
        )
    if on_failure is not None and not on_failure:
        raise EsError(400, "parse_exception", f"pipeline [{pipeline_id}] cannot have an empty on_failure option defined")


def _compile_node(ptype: str, raw: Any) -> Node:
    if not isinstance(raw, dict):
        return Node(type=ptype, raw=raw)
    tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
    node = Node(
        type=ptype,
        raw=raw,
        tag=tag,
        description=raw.get("description") if isinstance(raw.get("description"), str) else None,
        condition=raw.get("if"),
        ignore_failure=raw.get("ignore_failure") is True,
    )
    handler = raw.get("on_failure")
    if ptype == INFERENCE:
        if isinstance(handler, list) and handler:
            node.on_failure = compile_steps(handler)
        specific = {k: v for k, v in raw.items() if k not in _GENERIC}
        node.spec = parse_inference(specific, tag)
    elif ptype == "foreach" and isinstance(raw.get("processor"), dict) and _contains_inference([raw["processor"]]):
        raise config_error(
            "inference processors cannot run inside a [foreach] processor through es-inference-sidecar; "
            "put them at the top level of the pipeline or in an on_failure handler",
            processor_type=ptype, tag=tag,
        )
    elif not node.ignore_failure and isinstance(handler, list) and _contains_inference(handler):
        node.on_failure = compile_steps(handler)
    return node


def compile_steps(processors: list[Any]) -> list[Step]:
    steps: list[Step] = []
    segment: list[Node] = []
    for element in processors:
        items = element.items() if isinstance(element, dict) else [("", element)]
        for ptype, raw in items:
            node = _compile_node(ptype, raw)
            if node.is_inference or node.on_failure is not None:
                if segment:
                    steps.append(EsSegment(segment))
                    segment = []
                steps.append(NodeStep(node))
            else:
                segment.append(node)
    if segment:
        steps.append(EsSegment(segment))
    return steps


def compile_pipeline(pipeline_id: str, body: Any) -> CompiledPipeline:
    """Check and compile a definition. Raises :class:`EsError` as Elasticsearch would."""
    check_top_level(pipeline_id, body)
    on_failure = body.get("on_failure")
    return CompiledPipeline(
        id=pipeline_id,
        body=body,
        steps=compile_steps(body["processors"]),
        on_failure=compile_steps(on_failure) if on_failure else None,
        model_ids=model_ids(body),
    )
