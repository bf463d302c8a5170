"""Elasticsearch's ``chunking_settings``, exactly: ``word``, ``sentence``, ``recursive``, ``none``.

Word and sentence boundaries come from ICU's ``BreakIterator`` for the root locale, as in
Elasticsearch, so chunk boundaries match, Chinese/Japanese text without spaces included.

Offsets: :class:`Chunk` carries Python string indices (``text[c.start:c.end] == c.text``).
Elasticsearch reports UTF-16 code-unit offsets; convert with :func:`utf16_offset` (or
:func:`utf16_offsets` for a whole list) before storing or returning them in Elasticsearch's
format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .icu import describe as icu_description
from .offsets import OffsetMap, utf16_len, utf16_offset
from .recursive import MARKDOWN_SEPARATORS, PLAINTEXT_SEPARATORS, recursive_chunks
from .sentence import sentence_chunks
from .settings import (
    MAX_CHUNK_SIZE_UPPER_LIMIT,
    ChunkingSettings,
    coerce_settings,
    parse_chunking_settings,
    sentence_settings,
    word_settings,
)
from .word import word_chunks
from .word_counting import count_words

DEFAULT_CHUNKING_SETTINGS: dict[str, Any] = {
    "strategy": "sentence",
    "max_chunk_size": 250,
    "sentence_overlap": 1,
}
LEGACY_CHUNKING_SETTINGS: dict[str, Any] = {"strategy": "word", "max_chunk_size": 250, "overlap": 100}

DEFAULT_SETTINGS = sentence_settings(250, 1)
LEGACY_SETTINGS = word_settings(250, 100)

# Elasticsearch stores at most this many chunks per input; see chunk_groups().
MAX_CHUNKS = 512


@dataclass(frozen=True)
class Chunk:
    """One chunk: Python string offsets into the input, ``end`` exclusive."""

    start: int
    end: int
    text: str


def chunk_offsets16(text: str, settings: ChunkingSettings | dict[str, Any] | None) -> list[tuple[int, int]]:
    """Chunk boundaries as Elasticsearch computes and reports them: UTF-16 ``(start, end)``."""
    s = coerce_settings(settings, DEFAULT_SETTINGS)
    if s.strategy == "word":
        return word_chunks(text, s.max_chunk_size or 0, s.overlap or 0)
    if s.strategy == "sentence":
        return sentence_chunks(text, s.max_chunk_size or 0, bool(s.sentence_overlap))
    if s.strategy == "recursive":
        return recursive_chunks(text, s.separators or PLAINTEXT_SEPARATORS, s.max_chunk_size or 0)
    return [(0, utf16_len(text))]


def chunk_text(text: str, settings: ChunkingSettings | dict[str, Any] | None) -> list[Chunk]:
    """Split ``text`` as Elasticsearch would with ``settings`` (``None`` → the default,
    sentence/250/overlap 1)."""
    offsets = OffsetMap(text)
    chunks = []
    for start16, end16 in chunk_offsets16(text, settings):
        start, end = offsets.to_py(start16), offsets.to_py(end16)
        chunks.append(Chunk(start, end, text[start:end]))
    return chunks


def utf16_offsets(text: str, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk in UTF-16 code units, as Elasticsearch reports offsets."""
    offsets = OffsetMap(text)
    return [(offsets.to_16(c.start), offsets.to_16(c.end)) for c in chunks]


def chunk_groups(n_chunks: int, max_chunks: int = MAX_CHUNKS) -> list[int]:
    """For each chunk, the index of the stored chunk it is merged into.

    Elasticsearch (``EmbeddingRequestChunker``) embeds every chunk but stores at most
    ``max_chunks`` per input: chunk ``i`` of ``n`` goes to ``i * max_chunks // n`` when
    ``n > max_chunks``; a stored chunk spans from its first to its last member and its
    embedding merges theirs."""
    if n_chunks <= max_chunks:
        return list(range(n_chunks))
    return [i * max_chunks // n_chunks for i in range(n_chunks)]


__all__ = [
    "DEFAULT_CHUNKING_SETTINGS",
    "DEFAULT_SETTINGS",
    "LEGACY_CHUNKING_SETTINGS",
    "LEGACY_SETTINGS",
    "MARKDOWN_SEPARATORS",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE_UPPER_LIMIT",
    "PLAINTEXT_SEPARATORS",
    "Chunk",
    "ChunkingSettings",
    "chunk_groups",
    "chunk_offsets16",
    "chunk_text",
    "count_words",
    "icu_description",
    "parse_chunking_settings",
    "utf16_len",
    "utf16_offset",
    "utf16_offsets",
]
