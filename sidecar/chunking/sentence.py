"""``sentence`` strategy: whole ICU sentences packed greedily up to ``max_chunk_size`` words
(Elasticsearch's ``SentenceBoundaryChunker``).

With ``sentence_overlap: 1`` each chunk after the first starts with the last sentence of the
previous one, cut to at most ``min(max / 2, 20)`` trailing words when that sentence is long. A
sentence (plus its overlap) longer than the maximum is split with the word strategy and an
overlap of ``min(20, (max - 1) / 2)`` words. Offsets are UTF-16 code units.
"""

from __future__ import annotations

from .icu import sentence_breaks
from .offsets import OffsetMap
from .word import word_windows
from .word_counting import WordIndex


def max_words_in_overlap(max_words: int) -> int:
    return min(max_words // 2, 20)


def words_to_skip_in_previous_sentence(words_in_preceding: int, max_words: int) -> int:
    limit = max_words_in_overlap(max_words)
    return words_in_preceding - limit if words_in_preceding > limit else 0


def overlap_for_chunk_size(chunk_size: int) -> int:
    return min(20, (chunk_size - 1) // 2)


def sentence_chunks(text: str, max_words: int, include_preceding_sentence: bool) -> list[tuple[int, int]]:
    """``SentenceBoundaryChunker.chunk(input, maxNumberWordsPerChunk, includePrecedingSentence)``."""
    offsets = OffsetMap(text)
    words = WordIndex.of(text)
    sentences = sentence_breaks(text)
    length16 = offsets.length16

    chunks: list[tuple[int, int]] = []
    chunk_start = 0
    chunk_end = 0
    sentence_start = 0
    chunk_word_count = 0
    words_in_preceding = 0
    previous_sentence_start = 0

    for sentence_end in sentences[1:]:
        words_in_sentence = words.count_words(sentence_start, sentence_end)

        if chunk_word_count + words_in_sentence > max_words:
            # over the maximum: close the chunk before this sentence
            next_chunk_word_count = words_in_sentence
            if chunk_word_count > 0:
                chunks.append((chunk_start, chunk_end))
                if include_preceding_sentence:
                    if words_in_preceding + words_in_sentence > max_words:
                        # keep only the tail of the previous sentence
                        skip = words_to_skip_in_previous_sentence(words_in_preceding, max_words)
                        chunk_start = words.skip_words(previous_sentence_start, skip)
                        chunk_word_count = (words_in_preceding - skip) + words_in_sentence
                    else:
                        chunk_word_count = words_in_preceding + words_in_sentence
                        chunk_start = previous_sentence_start
                    next_chunk_word_count = chunk_word_count
                else:
                    chunk_start = chunk_end
                    chunk_word_count = words_in_sentence

            if next_chunk_word_count > max_words:
                # the sentence (and its overlap) alone is too long: split it on words
                splits = word_windows(
                    offsets.slice16(chunk_start, sentence_end), max_words, overlap_for_chunk_size(max_words)
                )
                for split in splits[:-1]:
                    chunks.append((chunk_start + split.start, chunk_start + split.end))
                # the partly filled last split starts the next chunk
                last = splits[-1]
                chunk_start += last.start
                chunk_word_count = last.word_count
        else:
            chunk_word_count += words_in_sentence

        if include_preceding_sentence:
            previous_sentence_start = sentence_start
            words_in_preceding = words_in_sentence

        sentence_start = sentence_end
        chunk_end = sentence_end

    if chunk_word_count > 0:
        chunks.append((chunk_start, length16))
    if not chunks:
        # nothing to chunk (empty text, only spaces or punctuation): the whole input
        chunks.append((0, length16))
    return chunks
