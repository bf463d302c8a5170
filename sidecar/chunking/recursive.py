"""``recursive`` strategy: split on separator regexes, level by level (Elasticsearch's
``RecursiveChunker``).

A piece that is too long is split at every match start of the current separator; neighbouring
pieces are merged greedily while they fit ``max_chunk_size`` words; pieces still too long go to
the next separator. When the separators run out, the sentence strategy (no overlap) finishes
the piece. Offsets are UTF-16 code units.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import EsError, illegal_argument
from .javaregex import JavaRegexError, compile_java
from .offsets import OffsetMap
from .sentence import sentence_chunks
from .word_counting import WordIndex

PLAINTEXT_SEPARATORS: tuple[str, ...] = ("(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)")
MARKDOWN_SEPARATORS: tuple[str, ...] = (
    "\n# ",
    "\n## ",
    "\n### ",
    "\n#### ",
    "\n##### ",
    "\n###### ",
    "\n^(?!\\s*$).*\\n-{1,}\\n",
    "\n^(?!\\s*$).*\\n={1,}\\n",
)
SEPARATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "plaintext": PLAINTEXT_SEPARATORS,
    "markdown": MARKDOWN_SEPARATORS,
}

# Elasticsearch bounds separator matching by the characters the regex engine reads; this engine
# bounds it by time instead (base + per character of the searched region).
REGEX_TIMEOUT_BASE_S = 1.0
REGEX_TIMEOUT_PER_CHAR_S = 2e-5


class _Piece(NamedTuple):
    start: int
    end: int
    word_count: int


class _RecursiveChunker:
    def __init__(self, text: str, separators: tuple[str, ...] | list[str], max_words: int) -> None:
        self.text = text
        self.offsets = OffsetMap(text)
        self.words = WordIndex.of(text)
        self.separators = list(separators)
        self.max_words = max_words

    def piece(self, start: int, end: int) -> _Piece:
        return _Piece(start, end, self.words.count_words(start, end))

    def chunk(self, start: int, end: int, level: int) -> list[tuple[int, int]]:
        if start == end or self.piece(start, end).word_count <= self.max_words:
            return [(start, end)]
        if level >= len(self.separators):
            return self.backup(start, end)
        result: list[tuple[int, int]] = []
        for p in self.merge(self.split(start, end, self.separators[level])):
            if p.word_count <= self.max_words:
                result.append((p.start, p.end))
            else:
                result.extend(self.chunk(p.start, p.end, level + 1))
        return result

    def split(self, start: int, end: int, separator: str) -> list[_Piece]:
        try:
            pattern = compile_java(separator)
        except JavaRegexError as e:
            raise EsError(400, "pattern_syntax_exception", str(e)) from None
        region = self.offsets.slice16(start, end)
        timeout = REGEX_TIMEOUT_BASE_S + REGEX_TIMEOUT_PER_CHAR_S * len(region)
        pieces: list[_Piece] = []
        piece_start = start
        region_map = OffsetMap(region) if not self.offsets.identity else None
        try:
            for m in pattern.finditer(region, timeout=timeout):
                piece_end = start + (region_map.to_16(m.start()) if region_map else m.start())
                if piece_start < piece_end:
                    pieces.append(self.piece(piece_start, piece_end))
                piece_start = piece_end
        except TimeoutError:
            raise illegal_argument(
                f"Chunk separator regex [{separator}] has exceeded the character read limit"
            ) from None
        if piece_start < end:
            pieces.append(self.piece(piece_start, end))
        return pieces

    def merge(self, pieces: list[_Piece]) -> list[_Piece]:
        if len(pieces) < 2:
            return pieces
        merged: list[_Piece] = []
        current = pieces[0]
        for i in range(1, len(pieces)):
            nxt = pieces[i]
            candidate = _Piece(current.start, nxt.end, current.word_count + nxt.word_count)
            if candidate.word_count <= self.max_words:
                current = candidate
            else:
                merged.append(current)
                current = nxt
            if i == len(pieces) - 1:
                merged.append(current)
        return merged

    def backup(self, start: int, end: int) -> list[tuple[int, int]]:
        sub = self.offsets.slice16(start, end)
        return [(s + start, e + start) for s, e in sentence_chunks(sub, self.max_words, False)]


def recursive_chunks(
    text: str, separators: tuple[str, ...] | list[str], max_words: int
) -> list[tuple[int, int]]:
    """``RecursiveChunker.chunk``: ``(start, end)`` UTF-16 offsets."""
    chunker = _RecursiveChunker(text, separators, max_words)
    return chunker.chunk(0, chunker.offsets.length16, 0)
