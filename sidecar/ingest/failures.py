"""Why a document failed in a pipeline, kept in the form Elasticsearch renders it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EsError
from ..es.errors import UpstreamError, error_object

# Status of an ingest failure by exception type (Elasticsearch's ``ExceptionsHelper.status``);
# the simulate API does not report it, so failures of Elasticsearch-run processors use this.
_STATUS_BY_TYPE = {
    "illegal_argument_exception": 400,
    "parse_exception": 400,
    "x_content_parse_exception": 400,
    "script_exception": 400,
    "document_parsing_exception": 400,
    "mapper_parsing_exception": 400,
    "action_request_validation_exception": 400,
    "validation_exception": 400,
    "security_exception": 403,
    "resource_not_found_exception": 404,
    "index_not_found_exception": 404,
    "timeout_exception": 408,
    "version_conflict_engine_exception": 409,
    "es_rejected_execution_exception": 429,
    "circuit_breaking_exception": 429,
}


@dataclass
class Failure:
    """A failed document: the rendered error plus what ``on_failure`` handlers are told
    (``_ingest.on_failure_processor_type``/``_tag``)."""

    error: dict[str, Any]
    status: int
    processor_type: str | None = None
    processor_tag: str | None = None
    # Failures of Elasticsearch-run processors learn their processor only when a handler
    # needs it (a verbose re-run of the segment); until then this is False.
    located: bool = True

    @property
    def message(self) -> str:
        """``cause.getRootCause().getMessage()``."""
        roots = self.error.get("root_cause")
        if isinstance(roots, list) and roots and isinstance(roots[0], dict):
            return str(roots[0].get("reason"))
        return str(self.error.get("reason"))

    @classmethod
    def of(cls, type_: str, reason: str, status: int, *, processor_type: str | None = None,
           processor_tag: str | None = None) -> Failure:
        return cls(error_object(type_, reason), status, processor_type, processor_tag)

    @classmethod
    def from_error(cls, err: EsError, *, processor_type: str | None = None,
                   processor_tag: str | None = None) -> Failure:
        if isinstance(err, UpstreamError):
            return cls(err.error, err.status, processor_type, processor_tag)
        cause = err.to_cause()
        return cls({"root_cause": [dict(cause)], **cause}, err.status, processor_type, processor_tag)

    @classmethod
    def from_rendered(cls, error: dict[str, Any]) -> Failure:
        """A per-document error of a simulate response (its processor not known yet)."""
        status = _STATUS_BY_TYPE.get(str(error.get("type")), 500)
        return cls(error, status, located=False)

    def to_error(self) -> UpstreamError:
        return UpstreamError.of(self.status, self.error)


def from_exception(exc: BaseException) -> Failure:
    """Any exception raised while running a processor."""
    if isinstance(exc, EsError):
        return Failure.from_error(exc)
    return Failure.of("exception", f"{type(exc).__name__}: {exc}", 500)
