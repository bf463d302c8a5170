"""Elasticsearch time values (``30s``, ``500ms``, ``1m``, ``-1``)."""

from __future__ import annotations

import re

from ..errors import EsError

_UNITS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(nanos|micros|ms|s|m|h|d)\s*$")


def parse_time_value(value: str | None, setting: str, default: float | None) -> float | None:
    """Seconds, or None for ``-1`` (no limit). Raises ES's parse error on bad input."""
    if value is None or value == "":
        return default
    if value.strip() in ("-1", "0"):
        return None if value.strip() == "-1" else 0.0
    match = _PATTERN.match(value)
    if not match:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"failed to parse setting [{setting}] with value [{value}] as a time value: unit is missing or unrecognized",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]
