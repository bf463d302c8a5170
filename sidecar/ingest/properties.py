"""Reading one processor's properties as Elasticsearch's ``ConfigurationUtils`` does: every
read removes the key, so what is left at the end is unknown and refused, and every problem is
an Elasticsearch configuration error naming the property, the processor type and its tag."""

from __future__ import annotations

from typing import Any

from ..errors import EsError
from .document import java_type


def config_error(reason: str, *, prop: str | None = None, processor_type: str | None = None,
                 tag: str | None = None, type_: str = "parse_exception", status: int = 400) -> EsError:
    """``ConfigurationUtils.newConfigurationException``: the reason is prefixed with the
    property and the processor is named in the error's metadata."""
    text = f"[{prop}] {reason}" if prop and type_ == "parse_exception" else reason
    extra: dict[str, Any] = {}
    if prop:
        extra["property_name"] = prop
    if processor_type:
        extra["processor_type"] = processor_type
    if tag:
        extra["processor_tag"] = tag
    return EsError(status, type_, text, **extra)



class Reader:
    """Reads (and removes) properties of one processor's configuration."""

    def __init__(self, config: dict[str, Any], processor_type: str | None, tag: str | None) -> None:
        self.config = config
        self.type = processor_type
        self.tag = tag

    def error(self, reason: str, prop: str | None = None) -> EsError:
        return config_error(reason, prop=prop, processor_type=self.type, tag=self.tag)

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.config.pop(key, None)
        if value is None:
            if required and default is None:
                raise self.error("required property is missing", key)
            return default
        if not isinstance(value, str):
            raise self.error(f"property isn't a string, but of type [{java_type(value)}]", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.config.pop(key, None)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise self.error(f"property isn't a boolean, but of type [{java_type(value)}]", key)

    def mapping(self, key: str) -> dict[str, Any] | None:
        value = self.config.pop(key, None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(f"property isn't a map, but of type [{java_type(value)}]", key)
        return value

    def leftovers(self) -> None:
        if self.config:
            keys = ", ".join(self.config)
            raise self.error(
                f"processor [{self.type}] doesn't support one or more provided configuration parameters [{keys}]"
            )
