"""The ``adaptive_allocations`` settings of a deployment, read and checked with
Elasticsearch's messages. How a deployment scales by them is :meth:`.Deployment.adapt`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import validation


@dataclass
class AdaptiveAllocations:
    enabled: bool = False
    min_number_of_allocations: int = 0
    max_number_of_allocations: int = 32

    @classmethod
    def parse(cls, value: dict[str, Any] | None) -> AdaptiveAllocations | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise validation("[adaptive_allocations] must be an object")
        enabled = bool(value.get("enabled", False))
        lo = value.get("min_number_of_allocations")
        hi = value.get("max_number_of_allocations")
        lo = 0 if lo is None else int(lo)
        hi = max(lo, 1, 32) if hi is None else int(hi)
        errors = []
        if lo < 0:
            errors.append("[min_number_of_allocations] must be greater than or equal to 0")
        if hi < 1:
            errors.append("[max_number_of_allocations] must be greater than or equal to 1")
        if hi < lo:
            errors.append(
                "[max_number_of_allocations] must be greater than or equal to [min_number_of_allocations]"
            )
        if errors:
            raise validation(*errors)
        return cls(enabled, lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "min_number_of_allocations": self.min_number_of_allocations,
            "max_number_of_allocations": self.max_number_of_allocations,
        }
