"""What runs in front of every handler, the pass-through included, outermost first:

1. metrics: every answer is counted with the status the caller got (:mod:`sidecar.metrics`);
2. Elasticsearch-shaped errors: every failure becomes an error body, never a traceback;
3. the node's verdict on ``compatible-with`` headers, for the APIs the sidecar answers itself
   (:mod:`.compat`; what is passed through reaches the node with its headers);
4. the security checks: the privileges of the sidecar's own APIs and the fence around its
   hidden indices (:mod:`sidecar.security`).

They are applied by wrapping each route's handler once, when the routes are registered
(:func:`guarded`), rather than as aiohttp middlewares: a middleware stack costs a call and a
coroutine per layer (aiohttp adds a layer of its own) on every request, and most requests are
passed through to Elasticsearch and need none of that. The route's metrics label is worked
out there too, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import metrics
from ..errors import EsError, InferenceTimeout
from ..es.upstream import es_unreachable
from ..security import guard
from .compat import asks_node, node_refusal
from .keys import NODE_VERSION
from .render import error_response

log = logging.getLogger("sidecar.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _timeout_response(request: web.Request, err: InferenceTimeout) -> web.Response:
    node = request.app.get(NODE_VERSION)
    status = (await node.features()).inference_timeout_status if node is not None else err.status
    return error_response(InferenceTimeout(err.reason, status), request)


def _reset_response(request: web.Request, exc: ConnectionResetError) -> web.Response:
    transport = request.transport
    if transport is None or transport.is_closing():
        # The client went away mid-response: nothing to answer, nothing wrong here.
        log.debug("client %s went away during %s %s", request.remote, request.method, request.path)
        raise asyncio.CancelledError from None
    return error_response(es_unreachable(exc), request)


def _failure_response(request: web.Request) -> web.Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    err = EsError(500, "exception", "the sidecar failed to handle the request; see its log for details")
    return error_response(err, request)


def guarded(handler: Handler, route: str, *, passthrough: bool = False, counts_inputs: bool = False) -> Handler:
    """``handler`` behind the front door. ``route`` is its metrics label (a template, never a
    path with values); ``passthrough`` marks the route to Elasticsearch; ``counts_inputs``
    marks the perform-inference routes, whose inputs and failures are counted."""

    async def front_door(request: web.Request) -> web.StreamResponse:
        started = metrics.request_started()
        status = 500
        try:
            try:
                refused = None if passthrough or not asks_node(request) else await node_refusal(request)
                response = refused if refused is not None else await guard(request, handler)
            except InferenceTimeout as err:
                response = await _timeout_response(request, err)
            except EsError as err:
                response = error_response(err, request)
            except (web.HTTPException, asyncio.CancelledError):
                raise
            except ConnectionResetError as exc:
                response = _reset_response(request, exc)
            except Exception:
                response = _failure_response(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            metrics.request_finished(route, request.method, status, started)
            if counts_inputs and status != 499:
                await metrics.count_inference(request, status)

    front_door.__name__ = front_door.__qualname__ = getattr(handler, "__name__", "handler")
    return front_door
