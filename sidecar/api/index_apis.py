"""The routes under ``/{index}/...`` as one resource of aiohttp's router, dispatched on the
API segment (``_search``, ``_doc``, ...).

aiohttp finds a request's route by trying, in order, every resource whose path starts with
the same literal prefix; for ``/{index}/_search``, ``/{index}/_doc`` and the rest that prefix is
``/``, shared with the pass-through. Registered one by one, every request that names an index,
and every request passed through to Elasticsearch (``/_cat/indices``, ``/my-index/_refresh``),
would be matched against each of them in turn. Here the request's API segment and its number
of segments pick the one or two that can match; those are aiohttp's own resources, tried in
table order.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from yarl import URL


class IndexApis(web.AbstractResource):
    """``/{index}``, ``/{index}/_api`` and ``/{index}/_api/...`` routes, found by their API
    segment and their number of segments."""

    def __init__(self, index: str) -> None:
        super().__init__()
        self.prefix = f"/{index}"  # the index segment's pattern, e.g. ``{index:[^_/][^/]*}``
        # (API segment, segments in the path) -> resources, in table order
        self._routes: dict[tuple[str, int], list[web.DynamicResource]] = {}

    def add(self, path: str) -> web.DynamicResource:
        """The resource for ``path``: :attr:`prefix`, then optionally ``/_api`` and more
        segments (one resource per path: routes of the same path share it)."""
        rest = path[len(self.prefix):] if path.startswith(self.prefix) else None
        if rest is None or (rest and not rest.startswith("/")):
            raise ValueError(f"{path}: not under {self.prefix}/")
        api = rest.split("/", 2)[1] if rest else ""
        if api.startswith("{"):
            raise ValueError(f"{path}: the segment after the index must be literal")
        group = self._routes.setdefault((api, 1 + rest.count("/")), [])
        for resource in group:
            if resource.raw_match(path):
                return resource
        resource = web.DynamicResource(path)
        group.append(resource)
        return resource

    async def resolve(self, request: web.Request):  # type: ignore[override]
        path = request.rel_url.path_safe
        segments = path.split("/", 3)
        allowed: set[str] = set()
        for resource in self._routes.get((segments[2] if len(segments) > 2 else "", path.count("/")), ()):
            match, methods = await resource.resolve(request)
            if match is not None:
                return match, methods
            allowed |= methods
        return None, allowed

    @property
    def canonical(self) -> str:
        return "/{index}"

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError("the index routes are not named")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("the index routes are not mounted under a prefix")

    def get_info(self) -> dict[str, object]:
        return {"resources": [r.get_info() for group in self._routes.values() for r in group]}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return sum(len(r) for group in self._routes.values() for r in group)

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return (route for group in self._routes.values() for r in group for route in r)
