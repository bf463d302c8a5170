"""``word`` strategy: fixed windows of ICU words with overlap (Elasticsearch's
``WordBoundaryChunker``).

Whitespace and punctuation after a window's last word belong to the next window; the last window
runs to the end of the text and is kept only if it holds more words than the overlap (or is the
only one). Offsets are UTF-16 code units.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import illegal_argument
from .icu import WORD_NONE, word_breaks


class WordWindow(NamedTuple):
    start: int
    end: int
    word_count: int


def word_windows(text: str, chunk_size: int, overlap: int) -> list[WordWindow]:
    """``WordBoundaryChunker.chunkPositions(text, chunkSize, overlap)``."""
    if overlap > 0 and overlap > chunk_size // 2:
        raise illegal_argument(
            f"Invalid chunking parameters, overlap [{overlap}] must be < chunk size / 2 "
            f"[{chunk_size} / 2 = {chunk_size // 2}]"
        )
    if overlap < 0:
        raise illegal_argument(f"Invalid chunking parameters, overlap [{overlap}] must be >= 0")

    breaks = word_breaks(text)
    bounds, statuses = breaks.bounds, breaks.statuses
    windows: list[WordWindow] = []

    size_less_overlap = chunk_size - overlap
    words_including_overlap = 0
    next_window_start = 0
    window_start = 0
    words_since_mark = 0

    for i in range(1, len(bounds)):
        if statuses[i] == WORD_NONE:
            continue
        boundary = bounds[i]
        words_including_overlap += 1
        words_since_mark += 1

        if words_including_overlap >= chunk_size:
            windows.append(WordWindow(window_start, boundary, words_including_overlap))
            words_including_overlap = overlap
            if overlap == 0:
                next_window_start = boundary
            window_start = next_window_start

        if words_since_mark == size_less_overlap:
            next_window_start = boundary
            words_since_mark = 0

    # the partly filled last window; a window holding only the overlap repeats the previous one
    if words_including_overlap > overlap or not windows:
        windows.append(WordWindow(window_start, bounds[-1], words_including_overlap))
    return windows


def word_chunks(text: str, max_chunk_size: int, overlap: int) -> list[tuple[int, int]]:
    """``WordBoundaryChunker.chunk``: ``(start, end)`` UTF-16 offsets."""
    return [(w.start, w.end) for w in word_windows(text, max_chunk_size, overlap)]
