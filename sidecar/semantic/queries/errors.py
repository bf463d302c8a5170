"""Errors as Elasticsearch reports them while it rewrites a query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import EsError


class ShardFailure(EsError):
    """A failure Elasticsearch raises while rewriting the query on the shards of some indices.
    The rewriter records it (those indices' shards fail, the others answer, as in
    Elasticsearch); when every index fails, the search fails with
    ``search_phase_execution_exception`` ("all shards failed")."""

    def __init__(self, indices: Iterable[str], type_: str, reason: str) -> None:
        super().__init__(400, "search_phase_execution_exception", "all shards failed")
        self.cause = {"type": type_, "reason": reason}
        self.failures = {index: dict(self.cause) for index in sorted(set(indices))}

    @classmethod
    def of(cls, failures: dict[str, dict[str, Any]]) -> ShardFailure:
        first = next(iter(failures.values()))
        err = cls([], first["type"], first["reason"])
        err.failures = dict(sorted(failures.items()))
        return err

    def to_body(self) -> dict[str, Any]:
        failed = [{"shard": 0, "index": index, "reason": cause} for index, cause in self.failures.items()]
        causes: list[dict[str, Any]] = []
        for cause in self.failures.values():
            if cause not in causes:
                causes.append(cause)
        return {
            "error": {
                "root_cause": causes,
                "type": self.type,
                "reason": self.reason,
                "phase": "query",
                "grouped": True,
                "failed_shards": failed,
            },
            "status": self.status,
        }


def parsing_error(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason)
