"""Responses in Elasticsearch's form: JSON bodies with the headers ES always sends."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from aiohttp import web

from ..errors import EsError

PRODUCT_HEADER = {"X-elastic-product": "Elasticsearch"}
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(body: Any, pretty: bool = False) -> bytes:
    opts = _OPTS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(body, option=opts, default=_default)


def content_type_for(request: web.Request | None) -> str:
    """ES answers a ``compatible-with`` Accept header with the same vendor media type."""
    accept = request.headers.get("Accept", "") if request is not None else ""
    if "vnd.elasticsearch+json" in accept:
        version = accept.split("compatible-with=")[-1].split(";")[0].strip() or "8"
        return f"application/vnd.elasticsearch+json;compatible-with={version}"
    return "application/json"


def json_response(
    body: Any,
    status: int = 200,
    request: web.Request | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    pretty = request is not None and request.query.get("pretty") not in (None, "false")
    out = {**PRODUCT_HEADER, "Content-Type": content_type_for(request), **(headers or {})}
    return web.Response(body=dumps(body, pretty), status=status, headers=out)


def error_response(err: EsError, request: web.Request | None = None) -> web.Response:
    return json_response(err.to_body(), status=err.status, request=request, headers=err.headers)


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """Parse a request body as JSON with ES-shaped errors for bad input."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise EsError(400, "parse_exception", "request body is required")
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EsError(
            400,
            "x_content_parse_exception",
            f"[1:{exc.pos + 1}] Unexpected character or end of input: {exc.msg}",
        ) from None


def require_object(value: Any, what: str = "request body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EsError(400, "parse_exception", f"{what} must be a JSON object")
    return value


def query_flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean URL parameter as Elasticsearch reads it: absent gives ``default``, empty or
    ``true`` is true, ``false`` is false, anything else a 400."""
    value = request.query.get(name)
    if value is None:
        return default
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise EsError(400, "illegal_argument_exception",
                  f"Failed to parse value [{value}] as only [true] or [false] are allowed.")
