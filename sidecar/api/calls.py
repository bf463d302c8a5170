"""The caller-credential client (:class:`sidecar.es.caller.Caller`) of one HTTP request."""

from __future__ import annotations

from aiohttp import web

from ..es.caller import Caller
from ..proxy import forwarded_request_headers
from .keys import UPSTREAM


def caller_for(request: web.Request) -> Caller:
    """Calls to Elasticsearch with this request's end-to-end headers (its credentials)."""
    return Caller(request.app[UPSTREAM], forwarded_request_headers(request))
