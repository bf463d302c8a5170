"""Settings readers shared by the remote services (Elasticsearch's ``ServiceUtils`` rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from yarl import URL

from ..errors import validation
from ..protocol.settings import SettingsReader, java_map_repr, reject_unknown

SERVICE = "service_settings"
TASK = "task_settings"
SECRET = "secret_settings"

SIMILARITIES = ("cosine", "dot_product", "l2_norm")


def rate_limit(reader: SettingsReader, service: str, default_rpm: int | None) -> dict[str, int] | None:
    """``rate_limit.requests_per_minute`` (a positive long) or the service's default."""
    if "rate_limit" not in reader.values:
        return None if default_rpm is None else {"requests_per_minute": default_rpm}
    raw = reader.mapping("rate_limit")
    if raw is None:
        return None if default_rpm is None else {"requests_per_minute": default_rpm}
    sub = SettingsReader(raw, "rate_limit")
    rpm = sub._take("requests_per_minute", int, False)
    reader.errors.extend(sub.errors)
    if rpm is not None and rpm <= 0:
        reader.error(f"[rate_limit] Invalid value [{rpm}]. [requests_per_minute] must be a positive long")
        rpm = None
    reject_unknown(service, sub)
    if rpm is None:
        return None if default_rpm is None else {"requests_per_minute": default_rpm}
    return {"requests_per_minute": rpm}


def url(reader: SettingsReader, key: str = "url", *, required: bool = False) -> str | None:
    value = reader.string(key, required=required)
    if value is None:
        return None
    try:
        parsed = URL(value)
        if not parsed.is_absolute() or parsed.scheme not in ("http", "https"):
            raise ValueError("an absolute http(s) URL is expected")
    except ValueError as exc:
        reader.error(f"[{reader.scope}] Invalid url [{value}] received for field [{key}]. Error: {exc}")
        return None
    return value


def similarity(reader: SettingsReader) -> str | None:
    return reader.enum("similarity", SIMILARITIES)


def embedding_fields(reader: SettingsReader, default_similarity: str | None) -> dict[str, Any]:
    """``dimensions`` (remembered as set by the user, so that it is sent upstream),
    ``max_input_tokens`` and ``similarity`` (the service's default when not given)."""
    dimensions = reader.integer("dimensions", positive=True)
    return {
        "dimensions": dimensions,
        "max_input_tokens": reader.integer("max_input_tokens", positive=True),
        "similarity": similarity(reader) or default_similarity,
        "dimensions_set_by_user": True if dimensions is not None else None,
    }


def string_map(reader: SettingsReader, key: str) -> dict[str, str] | None:
    """An optional map whose values must be strings (``headers``); null values are dropped."""
    raw = reader.mapping(key)
    if raw is None:
        return None
    values = {k: v for k, v in raw.items() if v is not None}
    for name, value in values.items():
        if not isinstance(value, str):
            shown = java_map_repr(value)
            reader.error(
                f"Map field [{key}] has an entry that is not valid, [{name} => {shown}]. "
                f"Value type of [{shown}] is not one of [String]."
            )
            return None
    return values


def put_set(body: dict[str, Any], settings: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Copy the ``keys`` that are set in ``settings`` into ``body``."""
    body.update({key: settings[key] for key in keys if settings.get(key) is not None})
    return body


def secrets(
    reader: SettingsReader, required: Iterable[str] = ("api_key",), optional: Iterable[str] = ()
) -> dict[str, str]:
    """Move secret keys out of ``reader`` (never echoing a value in an error)."""
    required = tuple(required)
    found: dict[str, str] = {}
    errors: list[str] = []
    for key in (*required, *optional):
        value = reader.values.pop(key, None)
        if value is None:
            if key in required:
                errors.append(f"[{SECRET}] does not contain the required setting [{key}]")
            continue
        if not isinstance(value, str):
            errors.append(
                f"field [{key}] is not of the expected type. The value [*****] cannot be converted to a [String]"
            )
        elif value == "":
            errors.append(f"[{SECRET}] Invalid value empty string. [{key}] must be a non-empty string")
        else:
            found[key] = value
    if errors:
        raise validation(*errors)
    return found


def drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
