"""Elasticsearch's own errors, passed on as it rendered them, and the one translation of a
failed call to Elasticsearch into the error the sidecar answers with."""

from __future__ import annotations

from typing import Any

from elasticsearch import ApiError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import TransportError as EsTransportError

from ..errors import EsError, status_exception, unavailable

# What a call with the sidecar's own client (elasticsearch-py) raises when it fails.
CLIENT_FAILURES = (ApiError, EsConnectionError, EsTransportError)


def error_object(type_: str, reason: str, **extra: Any) -> dict[str, Any]:
    """An exception as ``generateFailureXContent`` renders it (one root cause)."""
    cause = {"type": type_, "reason": reason, **extra}
    return {"root_cause": [dict(cause)], **cause}


class UpstreamError(EsError):
    """An error answer whose body Elasticsearch produced (or one shaped exactly like it):
    rendered as-is, ``root_cause`` and ``caused_by`` included."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = error_object("exception", str(error if error is not None else body))
        super().__init__(status, str(error.get("type", "exception")), str(error.get("reason", "")))
        self.error = error
        self.body = body if isinstance(body, dict) and "error" in body else {"error": error, "status": status}

    @classmethod
    def of(cls, status: int, error: dict[str, Any]) -> UpstreamError:
        """From the ``error`` object of a response (or of one item of it)."""
        return cls(status, {"error": error, "status": status})

    def to_cause(self) -> dict[str, Any]:
        return {k: v for k, v in self.error.items() if k != "root_cause"}

    def to_body(self) -> Any:
        return self.body


def unreachable(exc: BaseException) -> EsError:
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return unavailable(f"Elasticsearch is unavailable: {detail}")


def translate(exc: BaseException, store: str | None = None) -> EsError:
    """The error to answer with when a call to Elasticsearch raised ``exc``.

    An unreachable node is a 503 ``unavailable``. Otherwise, with ``store`` (a read or write
    of one of the sidecar's own indices, named like "inference endpoint store") it is a
    ``status_exception`` naming that store, at least a 500: the caller did nothing wrong.
    Without ``store`` Elasticsearch's own answer is passed on."""
    if isinstance(exc, EsConnectionError):
        return unreachable(exc)
    if store is not None:
        status = exc.meta.status if isinstance(exc, ApiError) else 500
        return status_exception(status if status >= 500 else 500, f"Failed to access the {store}: {exc}")
    if isinstance(exc, ApiError):
        return UpstreamError(exc.meta.status, exc.body)
    return unreachable(exc)
