"""The ``inference`` ingest processor, run by the sidecar for a batch of documents.

Options and messages follow Elasticsearch's ``InferenceProcessor``:

* ``input_output`` (object or list of ``{input_field, output_field}``): every input must be
  a string; the result is written at ``output_field`` with ``model_id`` (first input only)
  and ``is_truncated`` (when the model truncated) beside it, i.e. at the output field's
  parent path, or at the document root when the output field has no dot. ``ignore_missing``
  sends ``""`` for a missing field; when the *first* input is missing the processor does
  nothing (Elasticsearch returns early from inside its input loop).
* ``target_field`` style (default ``ml.inference`` or ``ml.inference.<tag>``), with
  ``field_map``: the model reads ``text_field``; the result is written as
  ``{"predicted_value" (or inference_config.*.results_field): …, "is_truncated"?, "model_id"}``.
  As in Elasticsearch this style needs a model deployment, i.e. an endpoint of the
  ``elasticsearch``/``elser`` service; other endpoints are refused with Elasticsearch's message.
* An existing output value is appended to (it becomes a list), never replaced.

Inference is batched: one call per endpoint per batch of documents (split into the
service's ``batch_size`` and sent concurrently), not one per document.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EsError
from ..inference import Target
from ..protocol.service import DenseEmbeddings, InputType, TaskType
from .document import DocState, FieldError, dig, get_field, set_or_append
from .failures import Failure, from_exception
from .inference_options import InferenceSpec

DEFAULT_RESULTS_FIELD = "predicted_value"
# The input field of Elasticsearch's NLP models (``TrainedModelInput.field_names``).
MODEL_INPUT_FIELD = "text_field"
LOCAL_SERVICES = ("elasticsearch", "elser")


def _inputs_of(spec: InferenceSpec, doc: DocState) -> list[str] | None:
    """The texts one document sends (None: nothing to do). Raises FieldError / EsError."""
    if spec.inputs is None:
        fields = dict(doc.source)
        fields.update({k: v for k, v in doc.meta.items() if v is not None})
        for src, dest in spec.field_map.items():
            value = dig(src, fields)
            if value is not None:
                fields[dest] = value
        value = dig(MODEL_INPUT_FIELD, fields)
        if value is None:
            raise EsError(400, "status_exception", f"Input field [{MODEL_INPUT_FIELD}] does not exist in the source document")
        if not isinstance(value, str):
            raise EsError(400, "status_exception", f"Input value [{value}] for field [{MODEL_INPUT_FIELD}] must be a string")
        return [value]
    texts: list[str] = []
    any_present = False
    for io in spec.inputs:
        _, value = get_field(doc, io.input_field, ignore_missing=spec.ignore_missing)
        if value is not None and not isinstance(value, str):
            raise FieldError(f"input field [{io.input_field}] cannot be processed because it is not a text field")
        any_present = any_present or value is not None
        texts.append(value if value is not None else "")
        if not any_present:
            return None
    return texts


def _float_list(vector: Any) -> list[float]:
    # Elasticsearch widens the model's floats to doubles when it writes them.
    return np.asarray(vector, dtype=np.float32).astype(np.float64).tolist()


def _float32(weight: float) -> float:
    # Token weights are Java floats: written with their shortest float representation.
    return float(str(np.float32(weight)))


@dataclass
class _Result:
    value: Any
    truncated: bool = False


def _not_found(spec: InferenceSpec) -> EsError:
    if spec.inputs is None:
        return EsError(404, "resource_not_found_exception", f"Could not find trained model [{spec.model_id}]")
    return EsError(404, "status_exception",
                   f"[{spec.model_id}] is not an inference service model or a deployed ml model")


class InferenceRunner:
    """Runs inference processors against the sidecar's inference endpoints."""

    def __init__(self, endpoints: Any, *, timeout_s: float | None = None) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s if timeout_s is not None else getattr(endpoints, "default_timeout_s", 30.0)

    async def _target(self, spec: InferenceSpec) -> Target:
        try:
            target = await self.endpoints.inference.target(spec.model_id)
        except EsError as err:
            if err.status == 404:
                raise _not_found(spec) from None
            raise
        endpoint, service = target.endpoint, target.service
        task = endpoint.task_type
        if spec.inputs is None and service.name not in LOCAL_SERVICES:
            raise EsError(400, "status_exception",
                          f"[{spec.model_id}] is configured for the _inference API and does not accept documents as input")
        if task is TaskType.RERANK:
            raise EsError(400, "action_request_validation_exception",
                          "Validation Failed: 1: Field [query] cannot be null for task type [rerank];")
        if task is TaskType.CHAT_COMPLETION:
            raise EsError(400, "status_exception",
                          f"Endpoint [{spec.model_id}] with task type [chat_completion] can only be used with the "
                          f"[_inference/chat_completion/{spec.model_id}/_stream] API")
        return target

    async def _call(self, target: Target, texts: list[str]) -> list[_Result]:
        inference = self.endpoints.inference
        task = target.endpoint.task_type
        settings = dict(target.endpoint.task_settings)
        if task is TaskType.TEXT_EMBEDDING:
            dense: DenseEmbeddings = await inference.embed(target, texts, InputType.INGEST, settings, self.timeout_s)
            truncated = dense.truncated or [False] * len(texts)
            if dense.element_type == "float":
                return [_Result(_float_list(v), bool(t)) for v, t in zip(dense.vectors, truncated, strict=True)]
            return [_Result([float(x) for x in v], bool(t)) for v, t in zip(dense.vectors, truncated, strict=True)]
        if task is TaskType.SPARSE_EMBEDDING:
            sparse = await inference.sparse_embed(target, texts, InputType.INGEST, settings, self.timeout_s)
            return [_Result({t: _float32(w) for t, w in s.tokens.items()}, s.is_truncated) for s in sparse]
        completions = await inference.complete(target, texts, settings, self.timeout_s)
        return [_Result(c.result) for c in completions]

    async def _infer(self, target: Target, texts: list[str]) -> list[_Result | Failure]:
        """All texts, in chunks of the service's batch size sent concurrently."""
        size = max(1, int(getattr(target.service, "batch_size", 16) or 16))
        chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
        outcomes = await asyncio.gather(*(self._call(target, c) for c in chunks), return_exceptions=True)
        results: list[_Result | Failure] = []
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                failure = from_exception(outcome)
                results.extend([failure] * len(chunk))
            else:
                results.extend(outcome)
        return results

    async def run(self, spec: InferenceSpec, docs: list[DocState]) -> list[Failure | None]:
        """Run one processor on documents (its ``if`` already evaluated); the documents are
        changed in place. Returns a failure (or None) per document."""
        out: list[Failure | None] = [None] * len(docs)
        wanted: list[tuple[int, list[str]]] = []
        for i, doc in enumerate(docs):
            try:
                texts = _inputs_of(spec, doc)
            except FieldError as err:
                out[i] = Failure.of("illegal_argument_exception", str(err), 400)
                continue
            except EsError as err:
                out[i] = Failure.from_error(err)
                continue
            if texts is not None:
                wanted.append((i, texts))
        if not wanted:
            return out
        try:
            target = await self._target(spec)
        except EsError as err:
            for i, _ in wanted:
                out[i] = Failure.from_error(err)
            return out
        flat = [t for _, texts in wanted for t in texts]
        results = await self._infer(target, flat)
        position = 0
        for i, texts in wanted:
            mine = results[position:position + len(texts)]
            position += len(texts)
            failed = next((r for r in mine if isinstance(r, Failure)), None)
            if failed is not None:
                out[i] = failed
                continue
            try:
                self._write(spec, docs[i], mine)  # type: ignore[arg-type]
            except FieldError as err:
                out[i] = Failure.of("illegal_argument_exception", str(err), 400)
        return out

    @staticmethod
    def _write(spec: InferenceSpec, doc: DocState, results: list[_Result]) -> None:
        if spec.inputs is None:
            result = results[0]
            value: dict[str, Any] = {spec.results_field or DEFAULT_RESULTS_FIELD: result.value}
            if result.truncated:
                value["is_truncated"] = True
            value["model_id"] = spec.model_id
            assert spec.target_field is not None
            set_or_append(doc, spec.target_field, value)
            return
        for n, (io, result) in enumerate(zip(spec.inputs, results, strict=True)):
            entries: dict[str, Any] = {}
            if result.truncated:
                entries["is_truncated"] = True
            entries[io.leaf] = result.value
            if n == 0:
                entries["model_id"] = spec.model_id
            base = io.base_path
            for key, value in entries.items():
                set_or_append(doc, f"{base}.{key}" if base else key, value)
