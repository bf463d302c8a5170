"""What a soak run measured and which properties held."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    phase: str
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def measure(self, phase: str, **values: Any) -> None:
        self.measurements.setdefault(phase, {}).update(values)
        for key, value in values.items():
            shown = f"{value:.1f}" if isinstance(value, float) else value
            print(f"  {phase:14} {key:32} {shown}", flush=True)

    def check(self, phase: str, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(phase, name, bool(ok), detail))
        mark = "ok  " if ok else "FAIL"
        print(f"  {phase:14} [{mark}] {name}: {detail}", flush=True)
        return bool(ok)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        if not self.checks:
            return "soak: no property was checked"
        if self.failed:
            lines = [f"soak: FAILED: {len(self.failed)} of {len(self.checks)} properties broke:"]
            lines += [f"  [{c.phase}] {c.name}: {c.detail}" for c in self.failed]
            return "\n".join(lines)
        return f"soak: all {len(self.checks)} properties held"

    def to_json(self) -> dict[str, Any]:
        return {"measurements": self.measurements,
                "checks": [c.__dict__ for c in self.checks],
                "ok": bool(self.checks) and not self.failed}

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=2, default=str)


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)
    sys.stdout.flush()
