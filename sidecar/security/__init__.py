"""Authorization of the sidecar's own APIs, and the fence around its hidden indices.

**Privileges.** When Elasticsearch has security enabled, the sidecar asks it, with the
caller's own credentials, whether the caller may do what the request asks
(``_security/user/_has_privileges`` with the Elasticsearch action name, so any role that
Elasticsearch would allow is allowed here):

- ``PUT _inference/...``: ``cluster:admin/xpack/inference/put`` (``manage_inference``);
- ``PUT|POST _inference/.../_update``: ``cluster:admin/xpack/inference/update`` (``manage_inference``);
- ``DELETE _inference/...``: ``cluster:admin/xpack/inference/delete`` (``manage_inference``);
- ``GET _inference/...``: ``cluster:monitor/xpack/inference/get`` (``monitor_inference``);
- ``GET _inference/_services``: ``cluster:monitor/xpack/inference/services/get`` (``monitor_inference``);
- ``POST _inference/...`` and ``_stream``: ``cluster:monitor/xpack/inference`` (``monitor_inference``);
- ``GET _ml/trained_models/.../_stats``: ``cluster:monitor/xpack/ml/inference/stats/get``
  (``monitor_ml``), or ``monitor_inference``;
- ``GET _tasks/{id}`` and ``POST _tasks/{id}/_cancel`` (the sidecar's reindex tasks):
  ``cluster:monitor/task/get`` (``monitor``), ``cluster:admin/tasks/cancel`` (``cancel_task``).

Answers are cached per credential for :data:`.authorizer.PRIVILEGE_CACHE_TTL_S` seconds. A request
without valid credentials gets Elasticsearch's own ``401``; a caller without the privilege
gets Elasticsearch's ``403 security_exception`` naming the action and the user. A node with
security disabled (its ``_has_privileges`` handler does not exist) gets no checks; that is
re-probed every :data:`.authorizer.SECURITY_PROBE_TTL_S` seconds.

**Hidden indices.** The sidecar's own indices (``.sidecar-inference*``, ``.sidecar-pipelines``,
``.sidecar-tasks`` for the default prefix) are read and written only by the sidecar, with its
own credentials. A request that names them (path, query, or body: ``_bulk`` action lines,
``_msearch`` lines, ``_mget`` docs, terms lookups, ``_reindex``, ``_aliases``, templates,
SQL/ES|QL text) is refused with ``403``, whatever the caller's privileges. Wildcards and
``_all`` that would expand to them (a pattern starting with ``.``, or any pattern with
``expand_wildcards=hidden|all``) are refused too, except for metadata reads (``_cat``,
``_mapping``, ``_settings``, ``_stats``, …) that show no documents. ``_bulk`` and
``_msearch`` bodies are checked line by line as they stream through, so large bodies are
never held in memory.

The parts: :mod:`.actions` (which action a request performs), :mod:`.authorizer` (the
privilege check), :mod:`.indices` (which names reach the hidden indices), :mod:`.fence` (the
check of a request's path, query and body) and :mod:`.body` (the checked body the handlers
read). :func:`guard` puts them in front of a handler (the front door, :mod:`sidecar.api.front`,
applies it to every route).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .actions import action_for
from .authorizer import Authorizer
from .fence import Fence
from .indices import IndexFence

__all__ = ["AUTHORIZER", "FENCE", "Authorizer", "Fence", "IndexFence", "action_for", "guard"]

AUTHORIZER = web.AppKey("sidecar_authorizer", Authorizer)
FENCE = web.AppKey("sidecar_fence", Fence)


async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    """Answer ``request`` with ``handler`` once the privilege check and the fence let it through."""
    action = action_for(request.method, request.path)
    if action is not None:
        passed_back = await request.app[AUTHORIZER].authorize(request, action)
        if passed_back is not None:
            return passed_back
        return await handler(request)
    violation = await request.app[FENCE].check(request)
    try:
        response = await handler(request)
    except Exception:
        if violation.error is not None:
            raise violation.error from None
        raise
    if violation.error is not None and not response.prepared:
        raise violation.error
    return response
