"""Reading settings maps with Elasticsearch's validation rules and messages.

Mirrors ``ServiceUtils`` of the Elasticsearch inference plugin: every reader *removes* the key
it reads, so whatever is left over at the end is unknown and rejected with
``Configuration contains settings [{k=v}] unknown to the [svc] service``. Validation problems
are collected and raised together as one ``validation_exception`` like ES does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import EsError, bad_request, validation


def java_map_repr(value: Any) -> str:
    """Render a value the way Java's ``Map.toString`` does (``{k=v, k2=v2}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_map_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(java_map_repr(v) for v in value) + "]"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


_JAVA_TYPE = {int: "Integer", float: "Double", str: "String", bool: "Boolean", dict: "Map", list: "List"}


class SettingsReader:
    """Consumes keys from one settings map (``service_settings``, ``task_settings``, …)."""

    def __init__(self, values: dict[str, Any] | None, scope: str) -> None:
        if values is not None and not isinstance(values, dict):
            raise validation(f"[{scope}] must be an object")
        self.values: dict[str, Any] = dict(values or {})
        self.scope = scope
        self.errors: list[str] = []

    # -- primitives --------------------------------------------------------------------
    def _take(self, key: str, kind: type, required: bool) -> Any:
        if key not in self.values:
            if required:
                self.errors.append(f"[{self.scope}] does not contain the required setting [{key}]")
            return None
        value = self.values.pop(key)
        if value is None:
            if required:
                self.errors.append(f"[{self.scope}] does not contain the required setting [{key}]")
            return None
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.errors.append(
                f"field [{key}] is not of the expected type. The value [{java_map_repr(value)}] "
                f"cannot be converted to a [{_JAVA_TYPE.get(kind, kind.__name__)}]"
            )
            return None
        return value

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._take(key, str, required)
        if value is not None and value == "":
            self.errors.append(f"[{self.scope}] Invalid value empty string. [{key}] must be a non-empty string")
            return None
        return default if value is None else value

    def integer(
        self,
        key: str,
        *,
        required: bool = False,
        default: int | None = None,
        positive: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._take(key, int, required)
        if value is None:
            return default
        if positive and value <= 0:
            self.errors.append(f"[{self.scope}] Invalid value [{value}]. [{key}] must be a positive integer")
            return None
        if minimum is not None and value < minimum:
            self.errors.append(
                f"[{self.scope}] Invalid value [{float(value)}]. [{key}] must be a greater than or "
                f"equal to [{float(minimum)}]"
            )
            return None
        if maximum is not None and value > maximum:
            self.errors.append(
                f"[{self.scope}] Invalid value [{float(value)}]. [{key}] must be a less than or "
                f"equal to [{float(maximum)}]"
            )
            return None
        return value

    def number(self, key: str, *, required: bool = False, default: float | None = None) -> float | None:
        value = self._take(key, float, required)
        return default if value is None else value

    def boolean(self, key: str, *, required: bool = False, default: bool | None = None) -> bool | None:
        value = self._take(key, bool, required)
        return default if value is None else value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        return self._take(key, dict, required)

    def string_list(self, key: str, *, required: bool = False) -> list[str] | None:
        value = self._take(key, list, required)
        if value is not None and not all(isinstance(v, str) for v in value):
            self.errors.append(f"field [{key}] is not of the expected type. The value must be a list of strings")
            return None
        return value

    def enum(
        self, key: str, allowed: Iterable[str], *, required: bool = False, default: str | None = None
    ) -> str | None:
        value = self.string(key, required=required)
        if value is None:
            return default
        allowed_list = sorted({a.lower() for a in allowed})
        if value.lower() not in allowed_list:
            self.errors.append(
                f"[{self.scope}] Invalid value [{value}] received. [{key}] must be one of "
                f"[{', '.join(allowed_list)}]"
            )
            return None
        return value.lower()

    def error(self, message: str) -> None:
        self.errors.append(message)

    # -- finishing -----------------------------------------------------------------------
    def raise_if_errors(self) -> None:
        if self.errors:
            raise validation(*self.errors)

    def leftovers(self) -> dict[str, Any]:
        return self.values


def reject_unknown(service: str, *readers_or_maps: SettingsReader | dict[str, Any] | None) -> None:
    """Raise ES's ``unknown to the [svc] service`` error for any unread key."""
    for item in readers_or_maps:
        if item is None:
            continue
        left = item.leftovers() if isinstance(item, SettingsReader) else item
        if left:
            raise bad_request(
                f"Configuration contains settings [{java_map_repr(left)}] unknown to the [{service}] service"
            )


def finish(service: str, *readers: SettingsReader) -> None:
    """Raise collected validation errors first, then unknown keys (ES's order)."""
    errors: list[str] = []
    for reader in readers:
        errors.extend(reader.errors)
    if errors:
        raise validation(*errors)
    reject_unknown(service, *readers)


__all__ = ["EsError", "SettingsReader", "finish", "java_map_repr", "reject_unknown"]
