"""The routes under ``/{index}/...`` as one resource of aiohttp's router, dispatched on the
API segment (``_search``, ``_doc``, ...).

aiohttp finds a request's route by trying, in order, every resource whose path starts with
the same literal prefix; for ``/{index}/_search``, ``/{index}/_doc`` and the rest that prefix is
``/``, shared with the pass-through. Registered one by one, every request that names an index,
and every request passed through to Elasticsearch (``/_cat/indices``, ``/my-index/_refresh``),
would be matched against each of them in turn. Here the request's API segment picks the few
that can match; those are aiohttp's own resources, tried in table order.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from yarl import URL


class IndexApis(web.AbstractResource):
    """``/{index}``, ``/{index}/_api`` and ``/{index}/_api/{id}`` routes, by API segment."""

    def __init__(self, index: str) -> None:
        super().__init__()
        self.prefix = f"/{index}"  # the index segment's pattern, e.g. ``{index:[^_/][^/]*}``
        self._by_api: dict[str, list[web.DynamicResource]] = {}

    def add(self, path: str) -> web.DynamicResource:
        """A resource for ``path``: :attr:`prefix`, then optionally ``/_api`` and more."""
        rest = path[len(self.prefix):] if path.startswith(self.prefix) else None
        if rest is None or (rest and not rest.startswith("/")):
            raise ValueError(f"{path}: not under {self.prefix}/")
        api = rest.split("/", 2)[1] if rest else ""
        if api.startswith("{"):
            raise ValueError(f"{path}: the segment after the index must be literal")
        resource = web.DynamicResource(path)
        self._by_api.setdefault(api, []).append(resource)
        return resource

    async def resolve(self, request: web.Request):  # type: ignore[override]
        segments = request.rel_url.path_safe.split("/", 3)
        allowed: set[str] = set()
        for resource in self._by_api.get(segments[2] if len(segments) > 2 else "", ()):
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
        return {"resources": [r.get_info() for group in self._by_api.values() for r in group]}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return sum(len(r) for group in self._by_api.values() for r in group)

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return (route for group in self._by_api.values() for r in group for route in r)
