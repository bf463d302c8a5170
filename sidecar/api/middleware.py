"""Turns every failure into an Elasticsearch-shaped error response (never a traceback)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..errors import EsError, InferenceTimeout
from ..es.upstream import es_unreachable
from .keys import NODE_VERSION
from .render import error_response

log = logging.getLogger("sidecar.api")


@web.middleware
async def es_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except InferenceTimeout as err:
        node = request.app.get(NODE_VERSION)
        status = (await node.features()).inference_timeout_status if node is not None else err.status
        return error_response(InferenceTimeout(err.reason, status), request)
    except EsError as err:
        return error_response(err, request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except ConnectionResetError as exc:
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client went away mid-response: nothing to answer, nothing wrong here.
            log.debug("client %s went away during %s %s", request.remote, request.method, request.path)
            raise asyncio.CancelledError from None
        return error_response(es_unreachable(exc), request)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        err = EsError(500, "exception", "the sidecar failed to handle the request; see its log for details")
        return error_response(err, request)
