"""Word counting over ICU word boundaries, with ``BreakIterator``'s exact semantics.

Elasticsearch counts words with ``BreakIterator.preceding(start)`` and then walks forward while
the boundary is ``<= end``, counting every boundary whose rule status is not ``WORD_NONE``. The
status belongs to the segment *ending* at the boundary, so the walk also looks at the segment
that ends at ``preceding(start)`` — the port keeps that quirk, it decides chunk boundaries.
"""

from __future__ import annotations

from bisect import bisect_left

from .icu import WORD_NONE, WordBreaks, word_breaks


class WordIndex:
    """The word boundaries of one text, with ``countWords``/``skipWords`` as Elasticsearch has
    them (``ChunkerUtils.countWords``, ``SentenceBoundaryChunker.skipWords``).

    All offsets are UTF-16 code units.
    """

    __slots__ = ("bounds", "statuses")

    def __init__(self, breaks: WordBreaks) -> None:
        self.bounds = breaks.bounds
        self.statuses = breaks.statuses

    @classmethod
    def of(cls, text: str) -> WordIndex:
        return cls(word_breaks(text))

    @property
    def length16(self) -> int:
        return self.bounds[-1]

    def _preceding(self, offset: int) -> int:
        """Index into ``bounds`` where ``BreakIterator.preceding(offset)`` leaves the iterator.

        At or before the start of the text ICU answers ``DONE`` but stays on boundary 0."""
        if offset > self.bounds[-1]:
            return len(self.bounds) - 1  # ICU: last()
        return max(bisect_left(self.bounds, offset) - 1, 0)

    def count_words(self, start: int, end: int) -> int:
        """``ChunkerUtils.countWords(start, end, iterator)``."""
        i = self._preceding(start)
        bounds, statuses = self.bounds, self.statuses
        n = len(bounds)
        count = 0
        while i < n and bounds[i] <= end:
            if statuses[i] != WORD_NONE:
                count += 1
            i += 1
        return count

    def skip_words(self, start: int, num_words: int) -> int:
        """``SentenceBoundaryChunker.skipWords(start, numWords, iterator)``: the boundary after
        ``num_words`` words counted from ``preceding(start)``, or the end of the text."""
        i = self._preceding(start)
        statuses = self.statuses
        n = len(statuses)
        count = 0
        while i < n and count < num_words:
            if statuses[i] != WORD_NONE:
                count += 1
            i += 1
        return self.bounds[-1] if i >= n else self.bounds[i]


def count_words(text: str) -> int:
    """``ChunkerUtils.countWords(text)``: ICU words in ``text`` (spaces/punctuation excluded)."""
    index = WordIndex.of(text)
    return index.count_words(0, index.length16)
