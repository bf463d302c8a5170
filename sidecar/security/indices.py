"""Which index names and patterns reach the sidecar's hidden indices (its endpoint
definitions, secrets, pipelines and tasks), whatever API names them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_DATE_MATH = re.compile(r"\{.*\}")
_DOTTED_TOKEN = re.compile(r"<?\.[^\s,\"'`|()\[\]=;]*")


class IndexFence:
    """Decides whether index expressions reach the sidecar's hidden indices."""

    def __init__(self, families: Iterable[str]) -> None:
        # Name prefixes: every index whose name starts with one of them is the sidecar's.
        self.families = tuple(sorted({f.lower() for f in families}))

    @classmethod
    def for_prefix(cls, system_index_prefix: str) -> IndexFence:
        base = system_index_prefix.removesuffix("-inference")
        return cls((system_index_prefix, f"{base}-pipelines", f"{base}-tasks"))

    def describe(self) -> str:
        return ", ".join(f"{f}*" for f in self.families)

    def _owned(self, name: str) -> bool:
        return name.startswith(self.families)

    def _may_match(self, pattern: str) -> bool:
        """Whether a ``*`` pattern matches some name in a family."""
        literal = pattern.split("*", 1)[0]
        return any(literal.startswith(f) or f.startswith(literal) for f in self.families)

    def reach(self, token: str, expand_hidden: bool) -> str | None:
        """``"explicit"`` when the expression names a hidden index of the sidecar,
        ``"wildcard"`` when it expands to one, else None."""
        expr = token.strip().lower()
        if not expr or expr.startswith("-"):
            return None
        expr = expr.split("::", 1)[0]  # data/failures selectors
        if expr.startswith("<") and expr.endswith(">"):
            expr = _DATE_MATH.sub("*", expr[1:-1])
        if ":" in expr:  # another cluster's index
            return None
        if expr in ("_all", "*"):
            return "wildcard" if expand_hidden else None
        if "*" in expr:
            if self._may_match(expr) and (expand_hidden or expr.startswith(".")):
                return "wildcard"
            return None
        return "explicit" if self._owned(expr) else None

    def mentioned_in_text(self, text: str) -> bool:
        """Whether query text (SQL, ES|QL) names or expands to a hidden index."""
        return any(self.reach(match.group(0).rstrip(".;"), False) is not None
                   for match in _DOTTED_TOKEN.finditer(text.lower()))


def expands_hidden(value: Any) -> bool:
    if isinstance(value, list):
        return any(expands_hidden(v) for v in value)
    if not isinstance(value, str):
        return False
    return any(v.strip().lower() in ("hidden", "all") for v in value.split(","))
