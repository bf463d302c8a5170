"""Custom: any HTTP inference server, described entirely by the endpoint (Elasticsearch 8.19 and
9.1+): ``text_embedding``, ``sparse_embedding``, ``rerank`` and ``completion``.

``service_settings``: ``url`` and ``request`` (required; ``request`` is the JSON body as a
template), ``headers`` (a map of strings), ``query_parameters`` (a list of ``[key, value]``
pairs), ``response.json_parser`` (required; the paths to the results, per task type),
``secret_parameters`` (a map of strings, stored encrypted and never shown), ``input_type``
(``translation`` from ``ingest``/``search``/``classification``/``clustering`` to the server's
words, and a ``default``), ``batch_size`` (embeddings per request, default 10), ``rate_limit``
(10000 a minute); text embeddings also ``similarity``, ``dimensions``, ``max_input_tokens``.
``task_settings``: ``parameters``, a map of strings, numbers and booleans (per-request
``parameters`` are merged over the endpoint's).

Templates: ``${name}`` in ``url``, ``headers`` and ``query_parameters`` is filled with the string
values of ``secret_parameters`` and ``task_settings.parameters``; in ``request`` every value is
written as JSON: those parameters and ``${input}`` (the list of texts; for ``completion`` the
single text), ``${input_type}`` (embeddings), ``${query}``, ``${top_n}`` and
``${return_documents}`` (rerank). A placeholder left unfilled is refused when the endpoint is
created (checked with test inputs) and when a request is built.

``response.json_parser`` paths (``$.field``, ``$.list[*].field``): ``text_embeddings`` (and
``embedding_type`` ``float``, ``byte`` or ``bit``/``binary``), ``token_path`` and
``weight_path``, ``relevance_score`` (and optional ``reranked_index``, ``document_text``),
``completion_result``.

As in Elasticsearch the service is left out of ``GET _inference/_services`` (it cannot be set up
from a form), a server error is not retried (only 429 is), and an answer the paths do not fit
is a 400 naming the path that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from yarl import URL

from ..errors import EsError, validation
from ..protocol.registry import register
from ..protocol.service import (
    Completion,
    DenseEmbeddings,
    Endpoint,
    InputType,
    ParsedConfig,
    RankedDoc,
    SparseEmbedding,
    TaskType,
)
from ..protocol.settings import SettingsReader, finish, java_map_repr
from ..remote import common_settings as common
from ..remote.client import HttpRequest
from ..remote.errors import (
    AUTHENTICATION,
    RATE_LIMIT,
    REDIRECTION,
    SERVER_ERROR,
    UNSUCCESSFUL,
    ErrorPolicy,
    Redactor,
    malformed,
)
from ..remote.responses import MalformedResponse
from ..remote.service import RemoteService, map_batches
from ..remote.templates import PathError, TemplateError, extract, java_type, substitute, to_json

SERVICE_SCOPE = "service_settings"
RESPONSE_SCOPE = "service_settings.response"
JSON_PARSER_SCOPE = "service_settings.response.json_parser"
SETTINGS_NAME = "custom_service_settings"
DEFAULT_BATCH_SIZE = 10
EMBEDDING_TYPES = ("float", "byte", "bit", "binary")
# Elasticsearch's InputType order (how the translation is shown).
INPUT_TYPE_ORDER = ("ingest", "search", "unspecified", "classification", "clustering")
TRANSLATABLE = "[ingest, search, classification, clustering]"
PARAMETER_TYPES = "[Boolean, Double, Float, Integer, String]"
PARSE_FAILURE = (
    "Failed to parse custom model response, please check that the response parser path matches the response format."
)


def _policy_prefix() -> dict[int, str]:
    # CustomResponseHandler: 5xx server error, 429 rate limit, 401 authentication, 3xx
    # redirection, any other status "unsuccessful".
    prefixes = {status: UNSUCCESSFUL for status in range(400, 500)}
    prefixes.update({401: AUTHENTICATION, 429: RATE_LIMIT})
    prefixes.update({status: REDIRECTION for status in range(300, 400)})
    prefixes.update({status: SERVER_ERROR for status in range(500, 600)})
    return prefixes


POLICY = ErrorPolicy(
    messages=_policy_prefix(),
    too_large=lambda status, message: False,
    retry_status=frozenset({429}),
    retry_server_errors=False,
)


class _Failure(Exception):
    """A reading failure carrying the Java exception type Elasticsearch reports it as."""

    def __init__(self, message: str, kind: str = "illegal_argument_exception") -> None:
        super().__init__(message)
        self.kind = kind


@register
class CustomService(RemoteService):
    name = "custom"
    display_name = "Custom"
    task_types = (TaskType.TEXT_EMBEDDING, TaskType.SPARSE_EMBEDDING, TaskType.RERANK, TaskType.COMPLETION)
    default_rpm = {t: 10_000 for t in task_types}
    hidden_from_catalogue = True
    secret_keys = ()
    configuration: dict[str, dict[str, Any]] = {}
    batch_size = DEFAULT_BATCH_SIZE

    # -- configuration -----------------------------------------------------------------------
    def parse(
        self,
        inference_id: str,
        task_type: TaskType,
        service_settings: dict[str, Any],
        task_settings: dict[str, Any],
    ) -> ParsedConfig:
        self.check_task_type(task_type)
        ss = SettingsReader(service_settings, SERVICE_SCOPE)
        settings = self._read_service_settings(task_type, ss)
        ts = SettingsReader(task_settings, "task_settings")
        task = self._read_task_settings(ts)
        secrets = self._read_secrets(ss)
        finish(self.name, ss, ts)
        endpoint = Endpoint(inference_id, task_type, self.name, settings, task, secrets=secrets)
        try:
            self._build(endpoint, self._test_parameters(endpoint))
        except TemplateError as exc:
            raise validation(f"Failed to validate model configuration: {exc}") from None
        return ParsedConfig(settings, task, secrets)

    def parse_task_settings(self, task_type: TaskType, task_settings: dict[str, Any]) -> dict[str, Any]:
        ts = SettingsReader(task_settings, "task_settings")
        task = self._read_task_settings(ts)
        finish(self.name, ts)
        return task

    # -- PUT _inference/{id}/_update ---------------------------------------------------------
    def update_secrets(self, endpoint: Endpoint, service_settings: dict[str, Any]) -> dict[str, Any] | None:
        """``secret_parameters`` in an update replace the stored ones as a whole (Elasticsearch's
        ``CustomSecretSettings.newSecretSettings``); None when the update names none."""
        if "secret_parameters" not in service_settings:
            return None
        ss = SettingsReader({"secret_parameters": service_settings.pop("secret_parameters")}, SERVICE_SCOPE)
        secrets = self._read_secrets(ss)
        ss.raise_if_errors()
        return secrets

    def merge_task_settings(self, endpoint: Endpoint, task_settings: dict[str, Any]) -> dict[str, Any]:
        """An update's ``parameters`` merged key by key over the stored ones, the update's
        values winning (``CustomTaskSettings.updatedTaskSettings``)."""
        given = self.parse_task_settings(endpoint.task_type, task_settings).get("parameters") or {}
        merged = {**(endpoint.task_settings.get("parameters") or {}), **given}
        return {"parameters": merged} if merged else {}

    def _read_service_settings(self, task_type: TaskType, ss: SettingsReader) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if task_type == TaskType.TEXT_EMBEDDING:
            out["similarity"] = common.similarity(ss)
            out["dimensions"] = ss.integer("dimensions")
            out["max_input_tokens"] = ss.integer("max_input_tokens")
        out["url"] = ss.string("url", required=True)
        out["query_parameters"] = _query_parameters(ss)
        out["headers"] = _string_map(ss, "headers", censor=False) or None
        out["request"] = ss.string("request", required=True)
        response = ss.mapping("response", required=True)
        if response is not None and not response:
            ss.error(f"[{SERVICE_SCOPE}] Invalid value empty map. [response] must be a non-empty map")
            response = None
        response_reader = SettingsReader(dict(response or {}), RESPONSE_SCOPE)
        parser = response_reader.mapping("json_parser", required=True)
        if parser is not None and not parser:
            response_reader.error(f"[{RESPONSE_SCOPE}] Invalid value empty map. [json_parser] must be a non-empty map")
            parser = None
        ss.errors.extend(response_reader.errors)
        json_parser: dict[str, Any] | None = None
        parser_reader = SettingsReader(dict(parser or {}), JSON_PARSER_SCOPE)
        if parser is not None:
            json_parser = _read_json_parser(task_type, parser_reader)
            ss.errors.extend(parser_reader.errors)
            if parser_reader.errors:
                ss.raise_if_errors()
        rate = common.rate_limit(ss, self.name, self.rpm(task_type))
        translator = _input_type_translator(ss)
        batch = ss.integer("batch_size", positive=True)
        if response is None or parser is None:
            ss.raise_if_errors()
        for left, field_name in ((parser_reader, "json_parser"), (response_reader, "response")):
            if left.values:
                raise EsError(
                    400,
                    "status_exception",
                    f"Configuration contains unknown settings [{java_map_repr(left.values)}] while parsing field "
                    f"[{field_name}] for settings [{SETTINGS_NAME}]",
                )
        ss.raise_if_errors()
        out["response"] = {"json_parser": json_parser}
        out["input_type"] = translator
        out["rate_limit"] = rate
        out["batch_size"] = batch or DEFAULT_BATCH_SIZE
        return common.drop_none(out)

    @staticmethod
    def _read_task_settings(ts: SettingsReader) -> dict[str, Any]:
        if not ts.values:
            return {}
        parameters = ts.mapping("parameters")
        ts.raise_if_errors()
        if parameters is None:
            return {}
        parameters = {k: v for k, v in parameters.items() if v is not None}
        for key, value in parameters.items():
            if isinstance(value, list | dict) or value is None:
                raise validation(
                    f"Map field [parameters] has an entry that is not valid, [{key} => {java_map_repr(value)}]. "
                    f"Value type of [{java_map_repr(value)}] is not one of {PARAMETER_TYPES}."
                )
        return {"parameters": parameters} if parameters else {}

    @staticmethod
    def _read_secrets(ss: SettingsReader) -> dict[str, Any]:
        values = _string_map(ss, "secret_parameters", censor=True)
        return {"secret_parameters": values} if values else {}

    # -- requests ----------------------------------------------------------------------------
    @staticmethod
    def _parameters(endpoint: Endpoint, task_settings: dict[str, Any] | None) -> dict[str, Any]:
        stored = dict(endpoint.task_settings.get("parameters") or {})
        given = (task_settings or {}).get("parameters") or {}
        return {**stored, **given}

    def _test_parameters(self, endpoint: Endpoint) -> dict[str, str]:
        """The inputs Elasticsearch checks a new endpoint's templates with."""
        task = endpoint.task_type
        if task == TaskType.RERANK:
            return {"input": to_json(["test input"], "input"), "query": to_json("test query", "query")}
        if task == TaskType.COMPLETION:
            return {"input": to_json("test input", "input")}
        return {"input": to_json(["test input"], "input"), "input_type": self._input_type(endpoint, None)}

    @staticmethod
    def _input_type(endpoint: Endpoint, input_type: InputType | None) -> str:
        translator = endpoint.service_settings.get("input_type") or {}
        translation = translator.get("translation") or {}
        if input_type is not None and input_type.value in translation:
            return to_json(translation[input_type.value], "input_type")
        return to_json(translator.get("default", ""), "input_type")

    def _build(
        self, endpoint: Endpoint, request_params: dict[str, str], task_settings: dict[str, Any] | None = None
    ) -> HttpRequest:
        """The upstream request: ``request_params`` (already JSON) win over the parameters."""
        settings = endpoint.service_settings
        secrets = (endpoint.secrets or {}).get("secret_parameters") or {}
        parameters = self._parameters(endpoint, task_settings)
        strings = {k: v for k, v in {**secrets, **parameters}.items() if isinstance(v, str)}
        as_json = {k: to_json(v, k) for k, v in {**secrets, **parameters}.items()}
        as_json.update(request_params)
        url_text = substitute(settings["url"], strings, "url")
        try:
            url = URL(url_text)
            if not url.is_absolute():
                raise ValueError(f"Expected scheme-specific part at index 0: {url_text}")
            pairs = [
                (key, substitute(value, strings, f"query parameters: [{key}]"))
                for key, value in settings.get("query_parameters") or []
            ]
            if pairs:
                url = url.extend_query(pairs)
        except ValueError as exc:
            if isinstance(exc, TemplateError):
                raise
            raise TemplateError(f"Failed to build URI, error: {exc}") from None
        headers = {"Content-Type": "application/json"}
        for key, value in (settings.get("headers") or {}).items():
            headers[key] = substitute(value, strings, f"header.{key}")
        body = substitute(settings["request"], as_json, "request")
        return HttpRequest(str(url), data=body.encode("utf-8"), headers=headers, encoded=True)

    def _request(
        self, endpoint: Endpoint, request_params: dict[str, str], task_settings: dict[str, Any] | None
    ) -> HttpRequest:
        try:
            return self._build(endpoint, request_params, task_settings)
        except TemplateError as exc:
            raise EsError(
                400,
                "status_exception",
                "Failed to construct the custom service request",
                caused_by={"type": "illegal_argument_exception", "reason": self._scrub(endpoint, str(exc))},
            ) from None

    @staticmethod
    def _scrub(endpoint: Endpoint, text: str) -> str:
        return Redactor(endpoint.secrets)(text)

    async def _send(self, endpoint: Endpoint, request: HttpRequest, read: Any, timeout: float | None) -> Any:
        def parse(obj: Any) -> Any:
            try:
                if not isinstance(obj, dict):  # Elasticsearch reads the answer as a JSON object
                    raise _Failure(
                        f"Failed to parse object: expecting token of type [START_OBJECT] but found "
                        f"[{'START_ARRAY' if isinstance(obj, list) else 'VALUE'}]",
                        "parsing_exception",
                    )
                return read(obj)
            except (_Failure, PathError) as exc:
                kind = exc.kind if isinstance(exc, _Failure) else "illegal_argument_exception"
                raise EsError(
                    400,
                    "status_exception",
                    PARSE_FAILURE,
                    caused_by={"type": kind, "reason": self._scrub(endpoint, str(exc))},
                ) from None

        return await self.call(endpoint, request, parse, timeout=timeout, policy=POLICY)

    # -- tasks -------------------------------------------------------------------------------
    async def embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> DenseEmbeddings:
        parser = endpoint.service_settings["response"]["json_parser"]
        kind = parser.get("embedding_type", "float")
        element_type = "bit" if kind == "binary" else kind
        path = parser["text_embeddings"]
        kind_of_input = self._input_type(endpoint, input_type)

        def build(batch: list[str]) -> HttpRequest:
            params = {"input": to_json(batch, "input"), "input_type": kind_of_input}
            return self._request(endpoint, params, task_settings)

        def read(obj: Any) -> list[Any]:
            return _dense(obj, path, element_type)

        return await self._embed(endpoint, inputs, build, read, element_type, timeout)

    async def _embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        read: Callable[[Any], list[Any]],
        element_type: str,
        timeout: float | None,
    ) -> DenseEmbeddings:
        batch = endpoint.service_settings.get("batch_size", DEFAULT_BATCH_SIZE)
        vectors = await self._batches(endpoint, inputs, build, read, batch, timeout)
        return DenseEmbeddings(vectors=vectors, element_type=element_type)

    async def _batches(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        build: Callable[[list[str]], HttpRequest],
        read: Callable[[Any], list[Any]],
        size: int,
        timeout: float | None,
    ) -> list[Any]:
        """One request per ``size`` inputs (concurrently), the results in input order; a batch
        whose answer has another number of results than it had inputs is an error."""
        if not inputs:
            return []

        async def run(batch: list[str]) -> list[Any]:
            results = await self._send(endpoint, build(batch), read, None)
            if len(results) != len(batch):
                raise malformed(
                    endpoint, MalformedResponse(f"expected [{len(batch)}] results, received [{len(results)}]")
                )
            return results

        return await self.http.with_deadline(map_batches(list(inputs), size, run), timeout)

    async def sparse_embed(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        input_type: InputType | None,
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[SparseEmbedding]:
        parser = endpoint.service_settings["response"]["json_parser"]
        kind_of_input = self._input_type(endpoint, input_type)

        def build(batch: list[str]) -> HttpRequest:
            return self._request(endpoint, {"input": to_json(batch, "input"), "input_type": kind_of_input}, task_settings)

        def read(obj: Any) -> list[SparseEmbedding]:
            return _sparse(obj, parser["token_path"], parser["weight_path"])

        batch = endpoint.service_settings.get("batch_size", DEFAULT_BATCH_SIZE)
        return await self._batches(endpoint, inputs, build, read, batch, timeout)

    async def rerank(
        self,
        endpoint: Endpoint,
        query: str,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[RankedDoc]:
        params = {"input": to_json(list(inputs), "input"), "query": to_json(query, "query")}
        for key in ("top_n", "return_documents"):
            if task_settings.get(key) is not None:
                params[key] = to_json(task_settings[key], key)
        parser = endpoint.service_settings["response"]["json_parser"]
        request = self._request(endpoint, params, task_settings)
        return await self._send(endpoint, request, lambda obj: _ranked(obj, parser, len(inputs)), timeout)

    async def complete(
        self,
        endpoint: Endpoint,
        inputs: Sequence[str],
        task_settings: dict[str, Any],
        timeout: float | None = None,
    ) -> list[Completion]:
        text = inputs[0] if inputs else ""
        request = self._request(endpoint, {"input": to_json(text, "input")}, task_settings)
        path = endpoint.service_settings["response"]["json_parser"]["completion_result"]
        return await self._send(endpoint, request, lambda obj: _completion(obj, path), timeout)


# -- settings readers ---------------------------------------------------------------------------


def _query_parameters(ss: SettingsReader) -> list[list[str]] | None:
    raw = ss._take("query_parameters", list, False)
    if raw is None:
        ss.raise_if_errors()
        return None
    pairs = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, list):
            ss.error(
                f"[{SERVICE_SCOPE}] failed to parse tuple list entry [{index}] for setting [query_parameters], "
                f"expected a list but the entry is [{java_type(entry)}]"
            )
            ss.raise_if_errors()
        if len(entry) != 2:
            ss.error(
                f"[{SERVICE_SCOPE}] failed to parse tuple list entry [{index}] for setting [query_parameters], "
                f"the tuple list size must be two, but was [{len(entry)}]"
            )
            ss.raise_if_errors()
        for position, element in (("the first element", entry[0]), ("the second element", entry[1])):
            if not isinstance(element, str):
                ss.error(
                    f"[{SERVICE_SCOPE}] failed to parse tuple list entry [{index}] for setting [query_parameters], "
                    f"{position} must be a string but was [{java_type(element)}]"
                )
                ss.raise_if_errors()
        pairs.append([entry[0], entry[1]])
    ss.raise_if_errors()
    return pairs or None


def _string_map(ss: SettingsReader, key: str, *, censor: bool) -> dict[str, str]:
    if censor and ss.values.get(key) is not None and not isinstance(ss.values[key], dict):
        ss.values.pop(key)  # a secret given as a plain value: never echoed
        ss.error(f"field [{key}] is not of the expected type. The value [REDACTED] cannot be converted to a [Map]")
        return {}
    raw = ss._take(key, dict, False)
    if raw is None:
        return {}
    values = {k: v for k, v in raw.items() if v is not None}
    for name, value in values.items():
        if not isinstance(value, str):
            if censor:
                ss.error(f"Map field [{key}] has an entry that is not valid. Value type is not one of [String].")
            else:
                shown = java_map_repr(value)
                ss.error(
                    f"Map field [{key}] has an entry that is not valid, [{name} => {shown}]. "
                    f"Value type of [{shown}] is not one of [String]."
                )
            ss.raise_if_errors()
    return values


def _read_json_parser(task_type: TaskType, reader: SettingsReader) -> dict[str, Any]:
    if task_type == TaskType.TEXT_EMBEDDING:
        path = reader.string("text_embeddings", required=True)
        kind = reader.enum("embedding_type", EMBEDDING_TYPES) or "float"
        return {"text_embeddings": path, "embedding_type": kind}
    if task_type == TaskType.SPARSE_EMBEDDING:
        return {"token_path": reader.string("token_path", required=True),
                "weight_path": reader.string("weight_path", required=True)}
    if task_type == TaskType.RERANK:
        return common.drop_none({
            "relevance_score": reader.string("relevance_score", required=True),
            "reranked_index": reader.string("reranked_index"),
            "document_text": reader.string("document_text"),
        })
    return {"completion_result": reader.string("completion_result", required=True)}


def _input_type_translator(ss: SettingsReader) -> dict[str, Any]:
    empty: dict[str, Any] = {"translation": {}, "default": ""}
    if not ss.values:
        return empty
    given = ss.mapping("input_type")
    if given is None:
        return empty
    reader = SettingsReader(dict(given), "input_type")
    translation = reader.mapping("translation") or {}
    ss.errors.extend(reader.errors)
    reader.errors = []
    found: dict[str, str] = {}
    for key, value in translation.items():
        if not isinstance(value, str) or not value:
            ss.error(
                f"Input type translation value for key [{key}] must be a String that is not null and not empty, "
                f"received: [{java_type(value)}]."
            )
            ss.raise_if_errors()
        normalized = str(key).strip().lower()
        if normalized not in INPUT_TYPE_ORDER:
            ss.error(
                f"Invalid input type translation for key: [{key}], is not a valid value. Must be one of {TRANSLATABLE}"
            )
            ss.raise_if_errors()
        found[normalized] = value
    default = reader._take("default", str, False)
    ss.errors.extend(reader.errors)
    if reader.values:
        raise EsError(
            400,
            "status_exception",
            f"Configuration contains unknown settings [{java_map_repr(reader.values)}] while parsing field "
            "[input_type] for settings [input_type_translator]",
        )
    ordered = {k: found[k] for k in INPUT_TYPE_ORDER if k in found}
    return {"translation": ordered, "default": default or ""}


# -- response readers ---------------------------------------------------------------------------


def _list(value: Any, field_name: str) -> list[Any]:
    if value is None:
        raise _Failure(f"Failed to parse field [{field_name}], extracted field was null", "null_pointer_exception")
    if not isinstance(value, list):
        raise _Failure(
            f"Extracted field [{field_name}] is an invalid type, expected a list but received [{java_type(value)}]"
        )
    return value


def _number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Failure(f"Unable to convert field [{field_name}] of type [{java_type(value)}] to Number")
    return value


def _dense(obj: Any, path: str, element_type: str) -> list[list[float]]:
    found = extract(obj, path)
    rows = _list(found.value if found else None, found.field_name(0) if found else "unknown")
    entry_name = found.field_name(1) if found else "unknown"
    vectors = []
    for i, row in enumerate(rows):
        try:
            values = _list(row, entry_name)
            vector = []
            for j, value in enumerate(values):
                try:
                    number = _number(value, entry_name)
                    if element_type != "float":
                        if number != int(number) or not -128 <= number <= 127:
                            raise _Failure(f"Value [{value}] is out of range for a byte")
                        number = int(number)
                    vector.append(number)
                except _Failure as exc:
                    raise _Failure(f"Failed to parse list entry [{j}], error: {exc}", "illegal_state_exception") from None
            vectors.append(vector)
        except _Failure as exc:
            raise _Failure(f"Failed to parse text embedding entry [{i}], error: {exc}") from None
    return vectors


def _sparse(obj: Any, token_path: str, weight_path: str) -> list[SparseEmbedding]:
    tokens_found, weights_found = extract(obj, token_path), extract(obj, weight_path)
    tokens = _list(tokens_found.value if tokens_found else None, tokens_found.field_name(0) if tokens_found else "unknown")
    weights = _list(
        weights_found.value if weights_found else None, weights_found.field_name(0) if weights_found else "unknown"
    )
    _same_size(tokens, weights)
    token_name = tokens_found.field_name(1) if tokens_found else "unknown"
    weight_name = weights_found.field_name(1) if weights_found else "unknown"
    out = []
    for i, (token_list, weight_list) in enumerate(zip(tokens, weights, strict=True)):
        try:
            token_list, weight_list = _list(token_list, token_name), _list(weight_list, weight_name)
            _same_size(token_list, weight_list)
            embedding: dict[str, float] = {}
            for j, (token, weight) in enumerate(zip(token_list, weight_list, strict=True)):
                try:
                    embedding[java_map_repr(token)] = float(_number(weight, weight_name))
                except _Failure as exc:
                    raise _Failure(f"Failed to parse weight item: [{j}] of array, error: {exc}") from None
            out.append(SparseEmbedding(tokens=embedding))
        except _Failure as exc:
            raise _Failure(f"Failed to parse sparse embedding entry [{i}], error: {exc}", "illegal_state_exception") from None
    return out


def _same_size(tokens: list[Any], weights: list[Any]) -> None:
    if len(tokens) != len(weights):
        raise _Failure(
            f"The extracted tokens list is size [{len(tokens)}] but the weights list is size [{len(weights)}]. "
            "The list sizes must be equal.",
            "illegal_state_exception",
        )


def _ranked(obj: Any, parser: dict[str, str], count: int) -> list[RankedDoc]:
    scores_found = extract(obj, parser["relevance_score"])
    scores = _list(scores_found.value if scores_found else None, scores_found.field_name(0) if scores_found else "unknown")
    indices: list[Any] | None = None
    texts: list[Any] | None = None
    if parser.get("reranked_index"):
        found = extract(obj, parser["reranked_index"])
        indices = _list(found.value if found else None, found.field_name(0) if found else "unknown")
    if parser.get("document_text"):
        found = extract(obj, parser["document_text"])
        texts = _list(found.value if found else None, found.field_name(0) if found else "unknown")
    for name, values in (("index", indices), ("document text", texts)):
        if values is not None and len(values) != len(scores):
            raise _Failure(
                f"The number of {name} fields [{len(values)}] was not the same as the number of scores [{len(scores)}]",
                "illegal_state_exception",
            )
    docs = []
    for i, score in enumerate(scores):
        index = i
        if indices is not None:
            raw = indices[i]
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise _Failure(f"Unable to convert field [{parser['reranked_index']}] of type [{java_type(raw)}] to Number")
            index = raw
        if not 0 <= index < count:
            raise _Failure(f"Index [{index}] in the response is out of range for [{count}] documents")
        text = None
        if texts is not None:
            if not isinstance(texts[i], str):
                raise _Failure(
                    f"Unable to convert field [{parser['document_text']}] of type [{java_type(texts[i])}] to [String]"
                )
            text = texts[i]
        docs.append(RankedDoc(index=index, relevance_score=float(_number(score, parser["relevance_score"])), text=text))
    return docs


def _completion(obj: Any, path: str) -> list[Completion]:
    found = extract(obj, path)
    value = found.value if found else None
    if value is None:
        raise _Failure(f"Failed to parse field [{path}], extracted field was null", "null_pointer_exception")
    if isinstance(value, str):
        return [Completion(value)]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _Failure(
                    f"Failed to parse list entry [{i}], error: Unable to convert field [{path}] of type "
                    f"[{java_type(item)}] to [String]",
                    "illegal_state_exception",
                )
            out.append(Completion(item))
        return out
    raise _Failure(
        f"Extracted field [{found.field_name(0)}] from path [{path}] is an invalid type, expected a list or a "
        f"string but received [{java_type(value)}]"
    )
