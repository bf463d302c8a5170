"""How Java prints the JSON values Elasticsearch puts into its error messages.

Elasticsearch parses a request body into ``HashMap``/``ArrayList``/``Integer``/``Long``/
``Double``/``String``/``Boolean`` objects and formats them with ``toString()``. Reproducing its
messages byte for byte needs the same rendering: ``Double.toString`` (``5.0``, ``1.0E7``),
``[a, b]`` for lists, ``{k=v}`` for maps, and ``HashMap``'s iteration order for keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1


def is_java_integer(value: Any) -> bool:
    """A JSON number Elasticsearch's parser turns into ``java.lang.Integer``."""
    return type(value) is int and INT_MIN <= value <= INT_MAX


def double_to_string(value: float) -> str:
    """``java.lang.Double.toString`` (shortest round-trip digits, JDK 19+)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    ds = "".join(str(d) for d in digits)
    # value = 0.ds * 10**point, i.e. the decimal point sits after ``point`` digits
    point = len(ds) + int(exponent)
    if 1e-3 <= abs(value) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{ds}"
        if point >= len(ds):
            return f"{sign}{ds}{'0' * (point - len(ds))}.0"
        return f"{sign}{ds[:point]}.{ds[point:]}"
    mantissa = ds[0] + "." + (ds[1:] or "0")
    return f"{sign}{mantissa}E{point - 1}"


def to_string(value: Any) -> str:
    """``String.valueOf(value)`` for a value parsed from JSON by Elasticsearch."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return double_to_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = hash_map_order(list(value))
        return "{" + ", ".join(f"{to_string(k)}={to_string(value[k])}" for k in keys) + "}"
    return str(value)


def java_class_name(value: Any) -> str:
    """The ``java.lang`` / ``java.util`` class Elasticsearch's JSON parser would produce."""
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return "java.lang.Integer"
        if -(2**63) <= value < 2**63:
            return "java.lang.Long"
        return "java.math.BigInteger"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, (list, tuple)):
        return "java.util.ArrayList"
    if isinstance(value, dict):
        return "java.util.HashMap"
    return "java.lang.Object"


# -- java.util.HashMap iteration order --------------------------------------------------------


def string_hash_code(s: str) -> int:
    """``String.hashCode()`` over UTF-16 code units, as an unsigned 32-bit value."""
    h = 0
    data = s.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def _spread(key: str) -> int:
    h = string_hash_code(key)
    return h ^ (h >> 16)


def _table_size_for(cap: int) -> int:
    n = 1
    while n < cap:
        n <<= 1
    return n


def _insert_all(keys: Iterable[str], capacity: int) -> list[str]:
    """Insert ``keys`` (distinct, in order) into a table of ``capacity`` buckets, growing it like
    ``HashMap.resize`` does, and return the iteration order."""
    buckets: list[list[str]] = [[] for _ in range(capacity)]
    size = 0
    for key in keys:
        buckets[_spread(key) & (capacity - 1)].append(key)
        size += 1
        if size > capacity * 0.75:
            # a resize splits every bucket in order, which is the same as re-inserting the
            # entries in iteration order into the larger table
            capacity *= 2
            old = [k for b in buckets for k in b]
            buckets = [[] for _ in range(capacity)]
            for k in old:
                buckets[_spread(k) & (capacity - 1)].append(k)
    return [k for b in buckets for k in b]


def hash_map_order(keys: list[str]) -> list[str]:
    """Iteration order of a ``new HashMap<>()`` filled with ``keys`` in this order."""
    return _insert_all(keys, 16) if keys else []


def hash_map_copy_order(keys: list[str]) -> list[str]:
    """Iteration order of ``new HashMap<>(m)`` where ``m`` iterates in the order ``keys``
    (JDK 19+ pre-sizing: ``tableSizeFor(ceil(size / 0.75))``)."""
    if not keys:
        return []
    return _insert_all(keys, _table_size_for(math.ceil(len(keys) / 0.75)))


def request_map_order(keys: list[str]) -> list[str]:
    """Key order Elasticsearch sees for a JSON object it parsed into a ``HashMap`` and then
    copied with ``new HashMap<>(map)`` (what ``ChunkingSettingsBuilder`` does)."""
    return hash_map_copy_order(hash_map_order(keys))
