"""``chunking_settings``: parsing and validation with Elasticsearch's rules and messages
(``ChunkingSettingsBuilder`` and the ``*ChunkingSettings.fromMap`` methods).

Errors are collected like Elasticsearch's ``ValidationException`` and raised together as
``validation_exception`` (``Validation Failed: 1: ...;2: ...;``); a missing or unknown strategy
is an ``illegal_argument_exception``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EsError, illegal_argument, validation
from .javafmt import double_to_string, is_java_integer, java_class_name, request_map_order, to_string
from .recursive import PLAINTEXT_SEPARATORS, SEPARATOR_GROUPS

SCOPE = "chunking_settings"
STRATEGIES = ("word", "sentence", "none", "recursive")

WORD_MAX_CHUNK_SIZE_LOWER_LIMIT = 10
SENTENCE_MAX_CHUNK_SIZE_LOWER_LIMIT = 20
RECURSIVE_MAX_CHUNK_SIZE_LOWER_LIMIT = 10
# Elasticsearch 8.16 - 9.1 cap max_chunk_size at 300 words; 9.2 dropped the cap
# (elastic/elasticsearch#133718): pass ``max_chunk_size_upper_limit=None`` for that behaviour.
MAX_CHUNK_SIZE_UPPER_LIMIT: int | None = 300
# recent Elasticsearch refuses more than 50 recursive separators on requests
MAX_SEPARATOR_COUNT = 50
DEFAULT_SENTENCE_OVERLAP = 1

_VALID_KEYS = {
    "word": ("strategy", "max_chunk_size", "overlap"),
    "sentence": ("strategy", "max_chunk_size", "sentence_overlap"),
    "recursive": ("strategy", "max_chunk_size", "separator_group", "separators"),
}
_INVALID_KEYS_PREFIX = {
    "word": "Word based chunking settings",
    "sentence": "Sentence based chunking settings",
    "recursive": "Recursive chunking settings",
}


@dataclass(frozen=True)
class ChunkingSettings:
    """Parsed, valid chunking settings. Immutable."""

    strategy: str
    max_chunk_size: int | None = None
    overlap: int | None = None  # word
    sentence_overlap: int | None = None  # sentence
    separators: tuple[str, ...] | None = None  # recursive

    def to_dict(self) -> dict[str, Any]:
        """The settings as Elasticsearch stores and shows them (``toXContent``), defaults filled."""
        if self.strategy == "none":
            return {"strategy": "none"}
        out: dict[str, Any] = {"strategy": self.strategy, "max_chunk_size": self.max_chunk_size}
        if self.strategy == "word":
            out["overlap"] = self.overlap
        elif self.strategy == "sentence":
            out["sentence_overlap"] = self.sentence_overlap
        elif self.strategy == "recursive":
            out["separators"] = list(self.separators or ())
        return out


def word_settings(max_chunk_size: int, overlap: int) -> ChunkingSettings:
    return ChunkingSettings("word", max_chunk_size=max_chunk_size, overlap=overlap)


def sentence_settings(
    max_chunk_size: int, sentence_overlap: int = DEFAULT_SENTENCE_OVERLAP
) -> ChunkingSettings:
    return ChunkingSettings("sentence", max_chunk_size=max_chunk_size, sentence_overlap=sentence_overlap)


def recursive_settings(
    max_chunk_size: int, separators: list[str] | tuple[str, ...] | None = None
) -> ChunkingSettings:
    seps = PLAINTEXT_SEPARATORS if separators is None else tuple(separators)
    return ChunkingSettings("recursive", max_chunk_size=max_chunk_size, separators=seps)


NONE_SETTINGS = ChunkingSettings("none")


# -- field extraction (InferenceUtils / ServiceUtils) -----------------------------------------


def _type_error(name: str, value: Any, expected: str) -> str:
    return f"field [{name}] is not of the expected type. The value [{to_string(value)}] cannot be converted to a [{expected}]"


def _remove_integer(m: dict[str, Any], name: str, errors: list[str]) -> int | None:
    value = m.get(name)
    if value is None:
        return None
    if is_java_integer(value):
        return value
    errors.append(_type_error(name, value, "Integer"))
    return None


def _required_positive_integer(m: dict[str, Any], name: str, errors: list[str]) -> int | None:
    before = len(errors)
    value = _remove_integer(m, name, errors)
    if len(errors) > before:
        return None
    if value is None:
        errors.append(f"[{SCOPE}] does not contain the required setting [{name}]")
    elif value <= 0:
        errors.append(f"[{SCOPE}] Invalid value [{value}]. [{name}] must be a positive integer")
    return None if len(errors) > before else value


def _min_error(name: str, value: int, minimum: int) -> str:
    return (
        f"[{SCOPE}] Invalid value [{double_to_string(float(value))}]. [{name}] must be a greater than or equal to "
        f"[{double_to_string(float(minimum))}]"
    )


def _max_error(name: str, value: int, maximum: int) -> str:
    return (
        f"[{SCOPE}] Invalid value [{double_to_string(float(value))}]. [{name}] must be a less than or equal to "
        f"[{double_to_string(float(maximum))}]"
    )


def _required_positive_integer_between(
    m: dict[str, Any], name: str, minimum: int, maximum: int | None, errors: list[str]
) -> int | None:
    value = _required_positive_integer(m, name, errors)
    if value is not None and value < minimum:
        errors.append(_min_error(name, value, minimum))
        return None
    if value is not None and maximum is not None and value > maximum:
        errors.append(_max_error(name, value, maximum))
        return None
    return value


def _required_positive_integer_at_most(
    m: dict[str, Any], name: str, maximum: int, errors: list[str]
) -> int | None:
    value = _required_positive_integer(m, name, errors)
    if value is not None and value > maximum:
        errors.append(_max_error(name, value, maximum))
    return value


def _java_trim(s: str) -> str:
    """``String.trim()``: strips code points <= U+0020 only."""
    start, end = 0, len(s)
    while start < end and s[start] <= " ":
        start += 1
    while end > start and s[end - 1] <= " ":
        end -= 1
    return s[start:end]


def _optional_separator_group(m: dict[str, Any], errors: list[str]) -> str | None:
    name = "separator_group"
    value = m.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(_type_error(name, value, "String"))
        return None
    if value == "":
        errors.append(f"[{SCOPE}] Invalid value empty string. [{name}] must be a non-empty string")
        return None
    # SeparatorGroup.fromString: valueOf(name.trim().toUpperCase(Locale.ROOT))
    group = {"PLAINTEXT": "plaintext", "MARKDOWN": "markdown"}.get(_java_trim(value).upper())
    if group is None:
        valid = ", ".join(sorted(SEPARATOR_GROUPS))
        errors.append(f"[{SCOPE}] Invalid value [{value}] received. [{name}] must be one of [{valid}]")
        return None
    return group


def _optional_string_list(m: dict[str, Any], name: str, errors: list[str]) -> list[str] | None:
    value = m.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        errors.append(_type_error(name, value, "List"))
        return None
    before = len(errors)
    for item in value:
        if item is None:
            raise EsError(
                500, "null_pointer_exception", 'Cannot invoke "Object.getClass()" because "o" is null'
            )
        if not isinstance(item, str):
            errors.append(_type_error(name, item, "String"))
    return None if len(errors) > before else list(value)


# -- per strategy -----------------------------------------------------------------------------


def _invalid_keys(strategy: str, keys: list[str], errors: list[str]) -> None:
    valid = _VALID_KEYS[strategy]
    invalid = [k for k in keys if k not in valid]
    if invalid:
        errors.append(
            f"{_INVALID_KEYS_PREFIX[strategy]} can not have the following settings: "
            f"[{', '.join(to_string(k) for k in invalid)}]"
        )


def _word(m: dict[str, Any], keys: list[str], upper: int | None) -> ChunkingSettings:
    errors: list[str] = []
    _invalid_keys("word", keys, errors)
    max_size = _required_positive_integer_between(
        m, "max_chunk_size", WORD_MAX_CHUNK_SIZE_LOWER_LIMIT, upper, errors
    )
    overlap = None
    if max_size is not None:
        overlap = _required_positive_integer_at_most(m, "overlap", max_size // 2, errors)
    if errors:
        raise validation(*errors)
    assert max_size is not None and overlap is not None
    return word_settings(max_size, overlap)


def _sentence(m: dict[str, Any], keys: list[str], upper: int | None) -> ChunkingSettings:
    errors: list[str] = []
    _invalid_keys("sentence", keys, errors)
    max_size = _required_positive_integer_between(
        m, "max_chunk_size", SENTENCE_MAX_CHUNK_SIZE_LOWER_LIMIT, upper, errors
    )
    overlap = _remove_integer(m, "sentence_overlap", errors)
    if overlap is None:
        overlap = DEFAULT_SENTENCE_OVERLAP
    elif overlap > 1 or overlap < 0:
        errors.append(f"sentence_overlap[{overlap}] must be either 0 or 1")
    if errors:
        raise validation(*errors)
    assert max_size is not None
    return sentence_settings(max_size, overlap)


def _recursive(m: dict[str, Any], keys: list[str], upper: int | None) -> ChunkingSettings:
    errors: list[str] = []
    _invalid_keys("recursive", keys, errors)
    max_size = _required_positive_integer_between(
        m, "max_chunk_size", RECURSIVE_MAX_CHUNK_SIZE_LOWER_LIMIT, upper, errors
    )
    group = _optional_separator_group(m, errors)
    separators = _optional_string_list(m, "separators", errors)
    if separators is not None and group is not None:
        errors.append("Recursive chunking settings can not have both separators and separator_set")
    if group is not None:
        separators = list(SEPARATOR_GROUPS[group])
    elif separators is not None and not separators:
        errors.append("Recursive chunking settings can not have an empty list of separators")
    if separators is not None and len(separators) > MAX_SEPARATOR_COUNT:
        errors.append(f"separators list size [{len(separators)}] must not exceed [{MAX_SEPARATOR_COUNT}]")
    if errors:
        raise validation(*errors)
    assert max_size is not None
    return recursive_settings(max_size, separators)


def parse_chunking_settings(
    settings: dict[str, Any] | None,
    *,
    max_chunk_size_upper_limit: int | None = MAX_CHUNK_SIZE_UPPER_LIMIT,
) -> ChunkingSettings | None:
    """Parse a ``chunking_settings`` object as Elasticsearch does.

    ``None`` or ``{}`` give ``None``: the caller picks the default (sentence/250/1 for endpoints
    created since 8.16, word/250/100 for older ones). Raises :class:`EsError` with
    Elasticsearch's exact type, status and messages.
    """
    if settings is None:
        return None
    if not isinstance(settings, dict):
        cls = java_class_name(settings)
        raise EsError(
            500,
            "class_cast_exception",
            f"class {cls} cannot be cast to class java.util.Map ({cls} and java.util.Map are in module "
            "java.base of loader 'bootstrap')",
        )
    if not settings:
        return None
    if "strategy" not in settings:
        raise illegal_argument("Can't generate Chunker without ChunkingStrategy provided")
    raw = settings["strategy"]
    if raw is None:
        raise EsError(
            500,
            "null_pointer_exception",
            'Cannot invoke "Object.toString()" because the return value of "java.util.Map.get(Object)" is null',
        )
    strategy = to_string(raw)
    if strategy not in STRATEGIES:
        raise illegal_argument(f"Invalid chunkingStrategy {strategy}")
    if strategy == "none":
        return NONE_SETTINGS
    keys = request_map_order([k for k in settings if isinstance(k, str)])
    parse = {"word": _word, "sentence": _sentence, "recursive": _recursive}[strategy]
    return parse(settings, keys, max_chunk_size_upper_limit)


def coerce_settings(
    settings: ChunkingSettings | dict[str, Any] | None, default: ChunkingSettings
) -> ChunkingSettings:
    """Accept parsed settings, a raw dict, or ``None`` (→ ``default``)."""
    if isinstance(settings, ChunkingSettings):
        return settings
    parsed = parse_chunking_settings(settings, max_chunk_size_upper_limit=None)
    return default if parsed is None else parsed
