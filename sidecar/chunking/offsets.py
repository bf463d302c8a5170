"""Python string indices vs UTF-16 code-unit offsets.

Elasticsearch (Java) measures text in UTF-16 code units; Python indexes code points. They differ
by one for every supplementary-plane character (emoji, CJK Extension B, …) before the position.
"""

from __future__ import annotations

import re
from bisect import bisect_left

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def utf16_len(text: str) -> int:
    """``String.length()`` in Java: the number of UTF-16 code units."""
    return len(text) + len(_ASTRAL.findall(text))


def utf16_offset(text: str, index: int) -> int:
    """UTF-16 code-unit offset of the Python string index ``index`` in ``text``."""
    if index < 0 or index > len(text):
        raise IndexError(f"index {index} out of range for a text of length {len(text)}")
    return index + len(_ASTRAL.findall(text, 0, index))


def python_index(text: str, offset16: int) -> int:
    """Python string index of the UTF-16 offset ``offset16`` (which must not split a pair)."""
    return OffsetMap(text).to_py(offset16)


class OffsetMap:
    """Converts offsets both ways for one text (O(log n) per conversion)."""

    __slots__ = ("text", "length16", "_astral_py", "_astral_16")

    def __init__(self, text: str) -> None:
        self.text = text
        self._astral_py = [m.start() for m in _ASTRAL.finditer(text)]
        # UTF-16 offset of each supplementary character's high surrogate
        self._astral_16 = [i + k for k, i in enumerate(self._astral_py)]
        self.length16 = len(text) + len(self._astral_py)

    @property
    def identity(self) -> bool:
        return not self._astral_py

    def to_py(self, offset16: int) -> int:
        if not self._astral_py:
            return offset16
        k = bisect_left(self._astral_16, offset16)
        if k > 0 and self._astral_16[k - 1] + 1 == offset16:
            raise ValueError(f"UTF-16 offset {offset16} splits a surrogate pair")
        return offset16 - k

    def to_16(self, index: int) -> int:
        if not self._astral_py:
            return index
        return index + bisect_left(self._astral_py, index)

    def slice16(self, start16: int, end16: int) -> str:
        """``text.substring(start16, end16)`` in Java terms."""
        return self.text[self.to_py(start16) : self.to_py(end16)]
