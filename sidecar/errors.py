"""Elasticsearch-shaped errors.

Every error the sidecar produces itself is an :class:`EsError`; handlers render it as
Elasticsearch does::

    {"error": {"root_cause": [{"type": ..., "reason": ...}], "type": ..., "reason": ...},
     "status": N}
"""

from __future__ import annotations

from typing import Any


class EsError(Exception):
    """An error that renders exactly like an Elasticsearch REST error."""

    def __init__(
        self,
        status: int,
        type_: str,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.type = type_
        self.reason = reason
        self.headers = headers or {}
        self.extra = extra

    def to_cause(self) -> dict[str, Any]:
        cause: dict[str, Any] = {"type": self.type, "reason": self.reason}
        cause.update(self.extra)
        return cause

    def to_body(self) -> dict[str, Any]:
        cause = self.to_cause()
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def status_exception(status: int, reason: str, **extra: Any) -> EsError:
    return EsError(status, "status_exception", reason, **extra)


def bad_request(reason: str) -> EsError:
    return EsError(400, "status_exception", reason)


def illegal_argument(reason: str) -> EsError:
    return EsError(400, "illegal_argument_exception", reason)


def validation(*reasons: str) -> EsError:
    """ES ``ValidationException``: ``Validation Failed: 1: a;2: b;``."""
    text = "".join(f"{i}: {r};" for i, r in enumerate(reasons, 1))
    return EsError(400, "validation_exception", f"Validation Failed: {text}")


def action_request_validation(*reasons: str) -> EsError:
    text = "".join(f"{i}: {r};" for i, r in enumerate(reasons, 1))
    return EsError(400, "action_request_validation_exception", f"Validation Failed: {text}")


def not_found(reason: str, **extra: Any) -> EsError:
    return EsError(404, "resource_not_found_exception", reason, **extra)


def already_exists(reason: str) -> EsError:
    return EsError(400, "resource_already_exists_exception", reason)


def parse_error(reason: str) -> EsError:
    return EsError(400, "parse_exception", reason)


def x_content_parse(reason: str) -> EsError:
    return EsError(400, "x_content_parse_exception", reason)


def too_many_requests(reason: str, retry_after_s: int = 1) -> EsError:
    return EsError(
        429,
        "es_rejected_execution_exception",
        reason,
        headers={"Retry-After": str(max(1, int(retry_after_s)))},
    )


def unavailable(reason: str) -> EsError:
    return EsError(503, "status_exception", reason)


class InferenceTimeout(EsError):
    """An inference call that ran out of time. Elasticsearch answers it with 408 before 9.4 and
    with 504 from 9.4 on (the inference API acts as a gateway); the HTTP layer picks the status
    for the node's version."""

    def __init__(self, reason: str, status: int = 408) -> None:
        super().__init__(status, "timeout_exception", reason)


def timeout(reason: str) -> EsError:
    return InferenceTimeout(reason)
