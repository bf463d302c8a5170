"""sidecar.chunking: Elasticsearch's chunking_settings validation and chunkers.

Golden cases (tests/data/chunking_golden.json) hold the boundaries Elasticsearch's own
algorithms produce on ICU4J; each names the Elasticsearch unit test it instantiates.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.chunking import (
    DEFAULT_CHUNKING_SETTINGS,
    LEGACY_CHUNKING_SETTINGS,
    MARKDOWN_SEPARATORS,
    PLAINTEXT_SEPARATORS,
    Chunk,
    ChunkingSettings,
    chunk_groups,
    chunk_offsets16,
    chunk_text,
    count_words,
    icu,
    parse_chunking_settings,
    utf16_offset,
    utf16_offsets,
)
from sidecar.chunking.javaregex import compile_java
from sidecar.chunking.offsets import OffsetMap, python_index, utf16_len
from sidecar.chunking.recursive import recursive_chunks
from sidecar.chunking.sentence import sentence_chunks
from sidecar.chunking.word import word_chunks, word_windows
from sidecar.chunking.word_counting import WordIndex
from sidecar.errors import EsError

GOLDEN = json.loads((Path(__file__).parent / "data" / "chunking_golden.json").read_text(encoding="utf-8"))
CASES = {c["id"]: c for c in GOLDEN["cases"]}


def _icu_major() -> int:
    return int(icu.backend().version.split(".")[0])


def case_text(case: dict[str, Any]) -> str:
    if "text" in case:
        return case["text"]
    rep = case["text_repeat"]
    return rep["unit"] * rep["times"]


def run_case(case: dict[str, Any]) -> Any:
    text, p = case_text(case), case["params"]
    kind = case["chunker"]
    if kind == "word":
        return [list(x) for x in word_chunks(text, p["chunk_size"], p["overlap"])]
    if kind == "sentence":
        return [list(x) for x in sentence_chunks(text, p["max"], p["overlap"])]
    if kind == "recursive":
        return [list(x) for x in recursive_chunks(text, p["separators"], p["max"])]
    if kind == "settings":
        return [list(x) for x in chunk_offsets16(text, p["settings"])]
    if kind == "count":
        return WordIndex.of(text).count_words(p["start"], p["end"])
    if kind == "skip":
        return WordIndex.of(text).skip_words(p["start"], p["num"])
    raise AssertionError(kind)


def texts(case_id: str) -> list[str]:
    case = CASES[case_id]
    text = case_text(case)
    m = OffsetMap(text)
    return [text[m.to_py(s) : m.to_py(e)] for s, e in case["expected_utf16"]]


# ---------------------------------------------------------------------------------------------
# golden boundaries


@pytest.mark.parametrize("case_id", list(CASES))
def test_golden(case_id: str) -> None:
    case = CASES[case_id]
    if "icu_note" in case and 72 <= _icu_major() <= 76:
        pytest.skip(f"{icu.describe()}: {case['icu_note']}")
    got = run_case(case)
    if "expected" in case:
        assert got == case["expected"]
        return
    assert got == case["expected_utf16"]
    text = case_text(case)
    if case["chunker"] == "settings":
        chunks = chunk_text(text, case["params"]["settings"])
        assert [[c.start, c.end] for c in chunks] == case.get("expected_python", case["expected_utf16"])
        assert [list(x) for x in utf16_offsets(text, chunks)] == case["expected_utf16"]
        assert all(c.text == text[c.start : c.end] for c in chunks)
    if "expected_texts" in case:
        assert texts(case_id) == case["expected_texts"]


def test_golden_covers_the_required_scripts() -> None:
    ids = " ".join(CASES)
    for needle in (
        "chinese",
        "japanese",
        "mixed",
        "emoji",
        "korean",
        "thai",
        "empty",
        "whitespace",
        "very-long-sentence",
    ):
        assert needle in ids
    assert any("expected_python" in c for c in CASES.values()), (
        "a case where UTF-16 and Python offsets differ"
    )


# ---------------------------------------------------------------------------------------------
# Elasticsearch's own assertions, on the golden outputs

TEST_TEXT = CASES["word-single-split"]["text"]


def test_word_punctuation_belongs_to_next_chunk() -> None:
    # WordBoundaryChunkerTests.testPunctuation
    assert texts("word-punct-comma") == ["Comma", ", separated"]
    assert texts("word-punct-mme") == ["Mme", ". Thénardier"]
    assert texts("word-punct-wont-1") == ["Won't", " you", " chunk"]
    assert texts("word-punct-wont-10") == ["Won't you chunk"]


@pytest.mark.parametrize(
    "case_id", ["word-empty", "word-whitespace", "word-blank", "sentence-empty-0", "sentence-blank-1"]
)
def test_no_words_gives_whole_input(case_id: str) -> None:
    # testEmptyString / testWhitespace / testBlankString
    assert texts(case_id) == [case_text(CASES[case_id])]


def test_word_chunk_counts_match_whitespace_words() -> None:
    # WordBoundaryChunkerTests.testChunkSizeOnWhiteSpaceNoOverlap
    n = len(re.split(r"\s+", TEST_TEXT))
    for size in (10, 20, 100, 300):
        assert len(CASES[f"word-test-text-{size}-0"]["expected_utf16"]) == (n + size - 1) // size


def _expected_number_of_chunks(num_words: int, window: int, overlap: int) -> int:
    if num_words < window:
        return 1
    step = window - overlap
    return 1 + (num_words - window + step - 1) // step


def test_word_number_of_chunks() -> None:
    # WordBoundaryChunkerTests.testNumberOfChunks
    for nw in (10, 22, 50, 73, 100):
        for size, ov in ((10, 4), (10, 2), (20, 4), (20, 10)):
            case = CASES[f"word-numbered-{nw}-{size}-{ov}"]
            assert len(case["expected_utf16"]) == _expected_number_of_chunks(nw, size, ov)


def test_word_window_spanning_contents() -> None:
    # WordBoundaryChunkerTests.testWindowSpanningWords (assertChunkContents)
    for nw in (4, 47, 120):
        for size, ov in ((20, 10), (10, 4), (15, 3)):
            chunks = texts(f"word-window-spanning-{nw}-{size}-{ov}")
            start, index = 0, 0
            while True:
                end = min(start + size, nw)
                expected = (" " if index else "") + " ".join(str(i) for i in range(start, end))
                assert chunks[index] == expected
                index += 1
                if end == nw:
                    break
                start += size - ov
            assert len(chunks) == index


def test_word_overlap_section() -> None:
    # testWindowSpanningWithOverlapNumWordsInOverlapSection
    for nw in (7, 8, 9, 10):
        assert len(CASES[f"word-overlap-section-{nw}"]["expected_utf16"]) == 1
    assert len(CASES["word-overlap-section-11"]["expected_utf16"]) == 2


def test_word_multilingual_splits() -> None:
    # WordBoundaryChunkerTests.testMultilingual
    for name in ("croatian", "frisian", "japanese", "sindhi"):
        assert len(CASES[f"word-multilingual-{name}"]["expected_utf16"]) > 1


def test_word_invalid_params() -> None:
    # WordBoundaryChunkerTests.testInvalidParams
    with pytest.raises(EsError) as e:
        word_windows("not evaluated", 4, 10)
    assert e.value.type == "illegal_argument_exception"
    assert e.value.reason == "Invalid chunking parameters, overlap [10] must be < chunk size / 2 [4 / 2 = 2]"
    with pytest.raises(EsError) as e:
        word_windows("not evaluated", 10, 6)
    assert e.value.reason == "Invalid chunking parameters, overlap [6] must be < chunk size / 2 [10 / 2 = 5]"
    with pytest.raises(EsError) as e:
        word_windows("x", 10, -1)
    assert e.value.reason == "Invalid chunking parameters, overlap [-1] must be >= 0"


def test_word_drops_trailing_text_without_words() -> None:
    # WordBoundaryChunker: a final window with only the overlap's words is not emitted
    assert texts("word-trailing-punct-dropped") == ["one two three four five six seven eight nine ten"]


def _ws_words(chunk: str) -> int:
    return len([s for s in re.split(r"[\s\-]+", chunk.strip().replace("=", "")) if s])


def test_sentence_split_long_sentences() -> None:
    # SentenceBoundaryChunkerTests.testChunkSplit_SentencesLongerThanChunkSize
    for size, n in ((10, 21), (30, 7), (50, 4)):
        chunks = texts(f"sentence-long-{size}")
        assert len(chunks) == n
        for chunk in chunks:
            if chunk.strip().endswith("."):
                assert _ws_words(chunk) <= size
            else:
                assert _ws_words(chunk) == size


def test_sentence_split_long_sentences_with_overlap() -> None:
    for size in (10, 30, 50):
        chunks = texts(f"sentence-long-overlap-{size}")
        assert "Word segmentation is the problem of dividing" in chunks[0]
        assert ", with solidification being a stronger norm." in chunks[-1]


def test_sentence_large_chunks_end_on_sentences() -> None:
    # SentenceBoundaryChunkerTests.testChunkSplitLargeChunkSizes
    for size in (100, 200):
        for chunk in texts(f"sentence-large-{size}"):
            assert chunk[0].isupper()
            assert chunk.strip()[-1] == "."


def test_sentence_overlap_starts_with_previous_sentence() -> None:
    # SentenceBoundaryChunkerTests.testChunkSplitLargeChunkSizes_withOverlap
    for size in (70, 80, 100, 120, 150, 200):
        chunks = texts(f"sentence-large-overlap-{size}")
        assert chunks[0][0].isupper()
        for prev, cur in zip(chunks, chunks[1:], strict=False):
            assert cur[0].isupper() or prev[-20:] in cur
        assert chunks[0].strip()[-1] == "." and chunks[-1].strip()[-1] == "."


def test_sentence_fit_in_chunks() -> None:
    # SentenceBoundaryChunkerTests.testWithOverlap_SentencesFitInChunks
    for ns in (2, 3, 4, 5):
        chunks = texts(f"sentence-fit-{ns}")
        assert len(chunks) == 4
        starts = [0] + [None] * 3
        text = CASES[f"sentence-fit-{ns}"]["text"]
        for i, chunk in enumerate(chunks):
            assert chunk.startswith("SStart"), chunk[:20]
            assert chunk.strip().endswith(".")
            if starts[i] is not None:
                assert chunk.startswith(f"SStart{starts[i]} ")
        assert text.startswith(chunks[0])


def test_sentence_short_long_short() -> None:
    # SentenceBoundaryChunkerTests.testShortLongShortSentences_WithOverlap
    chunks = texts("sentence-short-long-short")
    assert len(chunks) == 5
    assert chunks[0].strip().startswith("SStart0") and chunks[0].strip().endswith(".")
    assert chunks[1].strip().startswith("SStart0") and not chunks[1].strip().endswith(".")
    assert chunks[2].strip().endswith(".") and chunks[3].strip().endswith(".")
    assert (
        chunks[4].strip().startswith("SStart2") and "SStart3" in chunks[4] and chunks[4].strip().endswith(".")
    )


def test_sentence_chunk_larger_than_text() -> None:
    assert texts("sentence-larger-than-text-0") == [TEST_TEXT]
    assert texts("sentence-larger-than-text-1") == [TEST_TEXT]


def test_skip_words() -> None:
    # SentenceBoundaryChunkerTests.testSkipWords
    text = CASES["skip-3"]["text"]
    index = WordIndex.of(text)
    pos = index.skip_words(0, 3)
    assert text[pos:].startswith("word3 ")
    pos = index.skip_words(pos + 1, 1)
    assert text[pos:].startswith("word4 ")
    pos = index.skip_words(pos + 1, 5)
    assert text[pos:].startswith("word9 ")
    assert index.skip_words(0, 60) > 0


def test_count_words() -> None:
    # ChunkerUtilsTests
    assert CASES["count-short-1"]["expected"] == 5 and CASES["count-short-2"]["expected"] == 3
    assert count_words("foo != bar") == 2
    assert count_words("foo & bar") == 2
    assert count_words("m&s") == 2
    assert count_words("") == 0
    # testCountWords: sentence sizes of TEST_TEXT match whitespace-separated words
    index = WordIndex.of(TEST_TEXT)
    bounds = icu.sentence_breaks(TEST_TEXT)
    sizes = [len(re.split(r"[ \-]+", s.replace("=", ""))) for s in re.split(r"\.\s+", TEST_TEXT)]
    assert len(bounds) - 1 == len(sizes) == 4
    for (start, end), size in zip(zip(bounds, bounds[1:], strict=False), sizes, strict=True):
        assert index.count_words(start, end) == size


def test_recursive_backup_and_separator_cases() -> None:
    sent = "This is a test sentence that has ten total words. "
    n = len(sent)
    assert CASES["recursive-one-split-no-merge"]["expected_utf16"] == [[0, n], [n, 2 * n + 1]]
    assert CASES["recursive-backup"]["expected_utf16"] == [
        [0, n],
        [n, 2 * n],
        [2 * n, 3 * n + 1],
        [3 * n + 1, 4 * n + 1],
    ]
    assert CASES["recursive-empty"]["expected_utf16"] == [[0, 0]]
    assert CASES["recursive-single-char"]["expected_utf16"] == [[0, 1]]


# ---------------------------------------------------------------------------------------------
# chunking_settings validation


def _err(settings: Any, **kw: Any) -> EsError:
    with pytest.raises(EsError) as e:
        parse_chunking_settings(settings, **kw)
    return e.value


def _validation(*reasons: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {r};" for i, r in enumerate(reasons, 1))


S = "[chunking_settings]"

VALIDATION_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # word
    (
        "word-max-too-small",
        {"strategy": "word", "max_chunk_size": 5, "overlap": 1},
        [f"{S} Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0]"],
    ),
    (
        "word-max-too-large",
        {"strategy": "word", "max_chunk_size": 301, "overlap": 1},
        [f"{S} Invalid value [301.0]. [max_chunk_size] must be a less than or equal to [300.0]"],
    ),
    (
        "word-overlap-over-half",
        {"strategy": "word", "max_chunk_size": 101, "overlap": 51},
        [f"{S} Invalid value [51.0]. [overlap] must be a less than or equal to [50.0]"],
    ),
    (
        "word-overlap-zero",
        {"strategy": "word", "max_chunk_size": 100, "overlap": 0},
        [f"{S} Invalid value [0]. [overlap] must be a positive integer"],
    ),
    (
        "word-overlap-missing",
        {"strategy": "word", "max_chunk_size": 100},
        [f"{S} does not contain the required setting [overlap]"],
    ),
    (
        "word-max-missing",
        {"strategy": "word", "overlap": 10},
        [f"{S} does not contain the required setting [max_chunk_size]"],
    ),
    (
        "word-max-negative",
        {"strategy": "word", "max_chunk_size": -5, "overlap": 1},
        [f"{S} Invalid value [-5]. [max_chunk_size] must be a positive integer"],
    ),
    (
        "word-max-string",
        {"strategy": "word", "max_chunk_size": "100", "overlap": 1},
        [
            "field [max_chunk_size] is not of the expected type. The value [100] cannot be converted to a [Integer]"
        ],
    ),
    (
        "word-max-double",
        {"strategy": "word", "max_chunk_size": 100.0, "overlap": 1},
        [
            "field [max_chunk_size] is not of the expected type. The value [100.0] cannot be converted to a [Integer]"
        ],
    ),
    (
        "word-max-bool",
        {"strategy": "word", "max_chunk_size": True, "overlap": 1},
        [
            "field [max_chunk_size] is not of the expected type. The value [true] cannot be converted to a [Integer]"
        ],
    ),
    (
        "word-max-long",
        {"strategy": "word", "max_chunk_size": 3_000_000_000, "overlap": 1},
        [
            "field [max_chunk_size] is not of the expected type. The value [3000000000] cannot be converted to a [Integer]"
        ],
    ),
    (
        "word-overlap-list",
        {"strategy": "word", "max_chunk_size": 100, "overlap": [1, "a"]},
        [
            "field [overlap] is not of the expected type. The value [[1, a]] cannot be converted to a [Integer]"
        ],
    ),
    (
        "word-unknown-keys",
        {"strategy": "word", "max_chunk_size": 100, "overlap": 10, "sentence_overlap": 1, "foo": 1},
        ["Word based chunking settings can not have the following settings: [sentence_overlap, foo]"],
    ),
    (
        "word-many-errors",
        {"foo": 1, "strategy": "word", "max_chunk_size": 5, "overlap": "x"},
        [
            "Word based chunking settings can not have the following settings: [foo]",
            f"{S} Invalid value [5.0]. [max_chunk_size] must be a greater than or equal to [10.0]",
        ],
    ),
    # sentence
    (
        "sentence-max-too-small",
        {"strategy": "sentence", "max_chunk_size": 19},
        [f"{S} Invalid value [19.0]. [max_chunk_size] must be a greater than or equal to [20.0]"],
    ),
    (
        "sentence-max-too-large",
        {"strategy": "sentence", "max_chunk_size": 1000},
        [f"{S} Invalid value [1000.0]. [max_chunk_size] must be a less than or equal to [300.0]"],
    ),
    (
        "sentence-max-huge",
        {"strategy": "sentence", "max_chunk_size": 12345678},
        [f"{S} Invalid value [1.2345678E7]. [max_chunk_size] must be a less than or equal to [300.0]"],
    ),
    (
        "sentence-overlap-2",
        {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 2},
        ["sentence_overlap[2] must be either 0 or 1"],
    ),
    (
        "sentence-overlap-negative",
        {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": -1},
        ["sentence_overlap[-1] must be either 0 or 1"],
    ),
    (
        "sentence-overlap-string",
        {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": "1"},
        [
            "field [sentence_overlap] is not of the expected type. The value [1] cannot be converted to a [Integer]"
        ],
    ),
    (
        "sentence-word-overlap-key",
        {"strategy": "sentence", "max_chunk_size": 100, "overlap": 10},
        ["Sentence based chunking settings can not have the following settings: [overlap]"],
    ),
    (
        "sentence-max-missing",
        {"strategy": "sentence", "sentence_overlap": 0},
        [f"{S} does not contain the required setting [max_chunk_size]"],
    ),
    (
        "sentence-two-errors",
        {"strategy": "sentence", "max_chunk_size": 10, "sentence_overlap": 5},
        [
            f"{S} Invalid value [10.0]. [max_chunk_size] must be a greater than or equal to [20.0]",
            "sentence_overlap[5] must be either 0 or 1",
        ],
    ),
    # recursive
    (
        "recursive-max-too-small",
        {"strategy": "recursive", "max_chunk_size": 9},
        [f"{S} Invalid value [9.0]. [max_chunk_size] must be a greater than or equal to [10.0]"],
    ),
    (
        "recursive-both",
        {
            "strategy": "recursive",
            "max_chunk_size": 100,
            "separator_group": "plaintext",
            "separators": ["\n"],
        },
        ["Recursive chunking settings can not have both separators and separator_set"],
    ),
    (
        "recursive-empty-list",
        {"strategy": "recursive", "max_chunk_size": 100, "separators": []},
        ["Recursive chunking settings can not have an empty list of separators"],
    ),
    (
        "recursive-bad-group",
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "html"},
        [f"{S} Invalid value [html] received. [separator_group] must be one of [markdown, plaintext]"],
    ),
    (
        "recursive-bad-group-and-separators",
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "default", "separators": ["\n"]},
        [f"{S} Invalid value [default] received. [separator_group] must be one of [markdown, plaintext]"],
    ),
    (
        "recursive-empty-group",
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": ""},
        [f"{S} Invalid value empty string. [separator_group] must be a non-empty string"],
    ),
    (
        "recursive-group-not-string",
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": 1},
        [
            "field [separator_group] is not of the expected type. The value [1] cannot be converted to a [String]"
        ],
    ),
    (
        "recursive-separators-not-list",
        {"strategy": "recursive", "max_chunk_size": 100, "separators": "\\n"},
        ["field [separators] is not of the expected type. The value [\\n] cannot be converted to a [List]"],
    ),
    (
        "recursive-separator-not-string",
        {"strategy": "recursive", "max_chunk_size": 100, "separators": [1, "a", 2.5]},
        [
            "field [separators] is not of the expected type. The value [1] cannot be converted to a [String]",
            "field [separators] is not of the expected type. The value [2.5] cannot be converted to a [String]",
        ],
    ),
    (
        "recursive-too-many-separators",
        {"strategy": "recursive", "max_chunk_size": 100, "separators": ["a"] * 51},
        ["separators list size [51] must not exceed [50]"],
    ),
    (
        "recursive-unknown-keys",
        {"strategy": "recursive", "max_chunk_size": 100, "separators": ["a"], "extra": 1, "another_key": 2},
        ["Recursive chunking settings can not have the following settings: [another_key, extra]"],
    ),
]


@pytest.mark.parametrize(
    ("name", "settings", "reasons"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES]
)
def test_validation_messages(name: str, settings: dict[str, Any], reasons: list[str]) -> None:
    e = _err(settings)
    assert (e.status, e.type) == (400, "validation_exception")
    assert e.reason == _validation(*reasons)
    body = e.to_body()
    assert body["error"]["root_cause"][0]["reason"] == e.reason


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"max_chunk_size": 100}, "Can't generate Chunker without ChunkingStrategy provided"),
        ({"max_chunk_size": 100, "overlap": 10}, "Can't generate Chunker without ChunkingStrategy provided"),
        ({"strategy": "foo"}, "Invalid chunkingStrategy foo"),
        ({"strategy": "WORD", "max_chunk_size": 100, "overlap": 10}, "Invalid chunkingStrategy WORD"),
        ({"strategy": ""}, "Invalid chunkingStrategy "),
        ({"strategy": 5}, "Invalid chunkingStrategy 5"),
        ({"strategy": ["word"]}, "Invalid chunkingStrategy [word]"),
    ],
)
def test_strategy_errors(settings: dict[str, Any], reason: str) -> None:
    e = _err(settings)
    assert (e.status, e.type, e.reason) == (400, "illegal_argument_exception", reason)


def test_null_strategy_and_non_object() -> None:
    e = _err({"strategy": None})
    assert (e.status, e.type) == (500, "null_pointer_exception")
    e = _err("sentence")  # type: ignore[arg-type]
    assert (e.status, e.type) == (500, "class_cast_exception")
    assert e.reason.startswith("class java.lang.String cannot be cast to class java.util.Map")


def test_parse_valid_settings() -> None:
    assert parse_chunking_settings(None) is None
    assert parse_chunking_settings({}) is None
    s = parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 100})
    assert s is not None and s.strategy == "sentence"
    assert s.to_dict() == {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 1}
    assert list(s.to_dict()) == ["strategy", "max_chunk_size", "sentence_overlap"]
    s = parse_chunking_settings({"overlap": 150, "max_chunk_size": 300, "strategy": "word"})
    assert s is not None and s.to_dict() == {"strategy": "word", "max_chunk_size": 300, "overlap": 150}
    s = parse_chunking_settings({"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0})
    assert s is not None and s.to_dict()["sentence_overlap"] == 0
    # none ignores other keys
    s = parse_chunking_settings({"strategy": "none", "max_chunk_size": 5})
    assert s is not None and s.to_dict() == {"strategy": "none"}
    # recursive: plaintext by default, group expanded, names trimmed and case-insensitive
    s = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 10})
    assert s is not None and s.to_dict() == {
        "strategy": "recursive",
        "max_chunk_size": 10,
        "separators": list(PLAINTEXT_SEPARATORS),
    }
    s = parse_chunking_settings(
        {"strategy": "recursive", "max_chunk_size": 50, "separator_group": " Markdown "}
    )
    assert s is not None and s.to_dict()["separators"] == list(MARKDOWN_SEPARATORS)
    s = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n\n", "\n"]})
    assert s is not None and s.separators == ("\n\n", "\n")
    # round trip: what is stored parses back to the same settings
    for stored in (DEFAULT_CHUNKING_SETTINGS, LEGACY_CHUNKING_SETTINGS):
        parsed = parse_chunking_settings(dict(stored))
        assert parsed is not None and parsed.to_dict() == stored


def test_upper_limit_is_version_dependent() -> None:
    big = {"strategy": "sentence", "max_chunk_size": 1000}
    assert _err(big).type == "validation_exception"
    s = parse_chunking_settings(big, max_chunk_size_upper_limit=None)
    assert s is not None and s.max_chunk_size == 1000
    # stored settings are never re-checked against the cap when chunking
    assert chunk_text("One. Two.", big)[0].start == 0


def test_settings_are_immutable() -> None:
    s = parse_chunking_settings(dict(DEFAULT_CHUNKING_SETTINGS))
    assert isinstance(s, ChunkingSettings)
    with pytest.raises(AttributeError):
        s.max_chunk_size = 5  # type: ignore[misc]


def test_chunk_text_defaults_and_none() -> None:
    text = " ".join(f"w{i}." for i in range(600))
    default = chunk_text(text, None)
    assert default == chunk_text(text, {}) == chunk_text(text, dict(DEFAULT_CHUNKING_SETTINGS))
    assert len(default) > 1
    legacy = chunk_text(text, LEGACY_CHUNKING_SETTINGS)
    assert [c.end for c in legacy] != [c.end for c in default]
    assert chunk_text(text, {"strategy": "none"}) == [Chunk(0, len(text), text)]
    with pytest.raises(EsError):
        chunk_text(text, {"strategy": "word"})


# ---------------------------------------------------------------------------------------------
# offsets


def test_utf16_offsets() -> None:
    text = "a😀b𠀀c"
    assert utf16_len(text) == 7
    assert [utf16_offset(text, i) for i in range(len(text) + 1)] == [0, 1, 3, 4, 6, 7]
    assert [python_index(text, o) for o in (0, 1, 3, 4, 6, 7)] == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        python_index(text, 2)
    with pytest.raises(IndexError):
        utf16_offset(text, 6)
    chunks = chunk_text("😀 " * 30, {"strategy": "word", "max_chunk_size": 10, "overlap": 5})
    assert all(c.text == ("😀 " * 30)[c.start : c.end] for c in chunks)
    emoji_case = CASES["word-emoji-10-3"]
    chunks = chunk_text(emoji_case["text"], ChunkingSettings("word", max_chunk_size=10, overlap=3))
    assert [list(x) for x in utf16_offsets(emoji_case["text"], chunks)] == emoji_case["expected_utf16"]
    assert [[c.start, c.end] for c in chunks] == emoji_case["expected_python"]


def test_chunk_groups() -> None:
    assert chunk_groups(3) == [0, 1, 2]
    assert chunk_groups(512) == list(range(512))
    groups = chunk_groups(1024)
    assert groups[:4] == [0, 0, 1, 1] and groups[-1] == 511 and len(set(groups)) == 512
    assert len(set(chunk_groups(700))) == 512


# ---------------------------------------------------------------------------------------------
# Java regex separators


@pytest.mark.parametrize(
    ("pattern", "text", "starts"),
    [
        (".$", "ab\r\ncd", [1, 5]),  # '.' never matches \r; '$' sits before \r\n, not between
        ("^x", "x\rx\r\nx\u2028x", [0, 2, 5, 7]),  # every Java line terminator starts a line
        ("^", "a\n", [0]),  # '^' never matches at the end of the input
        ("\\Qa.b\\E", "a.b axb", [0]),
        ("\\p{Punct}", "a,b;c", [1, 3]),
        ("\\p{Lower}+", "ABcdé", [2]),
        ("\\x{1F600}", "a😀", [1]),
        ("\\h", "a\u00a0b c", [1, 3]),
        ("\\R", "a\r\nb\nc", [1, 4]),
        ("[a-z&&[^b]]", "abc", [0, 2]),
        ("\\w+", "héllo", [0, 2]),  # \w is ASCII in Java
        ("(?i)chapter", "Chapter CHAPTER", [0, 8]),
        ("\\Z", "ab\n", [2, 3]),
    ],
)
def test_java_regex(pattern: str, text: str, starts: list[int]) -> None:
    assert [m.start() for m in compile_java(pattern).finditer(text)] == starts


def test_invalid_separator_regex() -> None:
    with pytest.raises(EsError) as e:
        recursive_chunks("one two three four five six seven eight nine ten eleven", ["("], 10)
    assert (e.value.status, e.value.type) == (400, "pattern_syntax_exception")


# ---------------------------------------------------------------------------------------------
# properties

_PIECES = [
    "alpha",
    "beta",
    "gamma",
    "Delta",
    "x",
    "42",
    "3.14",
    "can't",
    "e-mail",
    "中文",
    "我们",
    "搜索引擎",
    "日本語",
    "ひらがな",
    "カタカナ",
    "한국어",
    "ภาษาไทย",
    "Привет",
    "😀",
    "👍🏽",
    "𠀀",
    "👨‍👩‍👧",
    ",",
    ".",
    "!",
    "?",
    "。",
    "！",
    "、",
    ";",
    "—",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
]


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 400)))


def _settings_for(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["word", "sentence", "recursive", "none"])
    if kind == "word":
        size = rng.randint(10, 60)
        return {"strategy": "word", "max_chunk_size": size, "overlap": rng.randint(1, size // 2)}
    if kind == "sentence":
        return {
            "strategy": "sentence",
            "max_chunk_size": rng.randint(20, 60),
            "sentence_overlap": rng.randint(0, 1),
        }
    if kind == "recursive":
        return {
            "strategy": "recursive",
            "max_chunk_size": rng.randint(10, 60),
            "separator_group": rng.choice(["plaintext", "markdown"]),
        }
    return {"strategy": "none"}


def _chunk_words(text: str, chunk: Chunk) -> int:
    """Words in a chunk. Dictionary segmentation (CJK, Thai) and word-joining punctuation
    ("mail.Привет") depend on the surrounding text, so a chunk counts as within the limit when
    either its words in context (ending inside the chunk) or its words on their own fit."""
    m = OffsetMap(text)
    breaks = icu.word_breaks(text)
    start16, end16 = m.to_16(chunk.start), m.to_16(chunk.end)
    in_context = sum(
        1 for b, s in zip(breaks.bounds, breaks.statuses, strict=True) if s and start16 < b <= end16
    )
    return min(in_context, count_words(chunk.text))


def test_property_offsets_order_and_size() -> None:
    rng = random.Random(20240613)
    for _ in range(250):
        text = _random_text(rng)
        settings = _settings_for(rng)
        chunks = chunk_text(text, settings)
        assert chunks, settings
        limit = settings.get("max_chunk_size")
        for c in chunks:
            assert 0 <= c.start <= c.end <= len(text)
            assert c.text == text[c.start : c.end]
            if limit is not None:
                assert _chunk_words(text, c) <= limit, (settings, c)
        assert [c.start for c in chunks] == sorted(c.start for c in chunks)
        assert [c.end for c in chunks] == sorted(c.end for c in chunks)
        assert chunks[0].start == 0
        if settings["strategy"] != "word":
            assert chunks[-1].end == len(text)
        else:  # the word strategy drops trailing text that holds no word
            assert count_words(text[chunks[-1].end :]) == 0
        # every chunk starts where the previous one ended or inside it (no gaps)
        for prev, cur in zip(chunks, chunks[1:], strict=False):
            assert cur.start <= prev.end


def test_property_overlap_free_strategies_concatenate_to_input() -> None:
    rng = random.Random(7)
    for _ in range(150):
        # sentences short enough for every maximum below, so no sentence needs a word split
        sentences = []
        for _ in range(rng.randint(0, 30)):
            # a sentence starts with an upper-case word: ". alpha" does not end an ICU sentence
            words = [rng.choice(["Alpha", "Beta", "中文"])]
            words += [rng.choice(["alpha", "beta", "中文", "42", "😀x"]) for _ in range(rng.randint(0, 5))]
            sentences.append(" ".join(words) + rng.choice([". ", "! ", "? ", "。", ".\n", ".\n\n"]))
        text = "".join(sentences)
        for settings in (
            {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0},
            {"strategy": "recursive", "max_chunk_size": 10},
            {"strategy": "recursive", "max_chunk_size": 12, "separator_group": "markdown"},
            ChunkingSettings("word", max_chunk_size=10, overlap=0),
        ):
            chunks = chunk_text(text, settings)
            joined = "".join(c.text for c in chunks)
            if isinstance(settings, ChunkingSettings):  # word: trailing no-word text may be dropped
                assert text.startswith(joined) and count_words(text[len(joined) :]) == 0
            else:
                assert joined == text, settings
            for prev, cur in zip(chunks, chunks[1:], strict=False):
                assert prev.end == cur.start


# ---------------------------------------------------------------------------------------------
# ICU bindings


def test_icu_backend_reports_itself() -> None:
    assert icu.describe().startswith("ICU ")
    wb = icu.word_breaks("")
    assert wb.bounds == [0] and wb.statuses == [0]
    assert icu.sentence_breaks("") == [0]


def _other_backends() -> list[Any]:
    others: list[Any] = []
    try:
        others.append(icu._PyIcuBackend())
    except ImportError:
        pass
    path = icu._system_icu()
    if path:
        try:
            others.append(icu._load_c_library(path, "system"))
        except (OSError, icu.IcuUnavailableError):
            pass
    return others


@pytest.mark.parametrize(
    "case_id",
    ["word-chinese-10-3", "word-japanese-10-3", "word-mixed-10-3", "word-emoji-10-3", "word-thai-10-3"],
)
def test_icu_backends_agree(case_id: str) -> None:
    others = _other_backends()
    if not others:
        pytest.skip("only one ICU binding installed")
    text = CASES[case_id]["text"]
    mine = icu.backend()
    for other in others:
        assert other.word(text) == mine.word(text), other.origin
        assert other.sentence(text) == mine.sentence(text), other.origin


def test_icu_falls_back_to_system_library(monkeypatch: pytest.MonkeyPatch) -> None:
    path = icu._system_icu()
    if not path:
        pytest.skip("no system ICU library")
    monkeypatch.setattr(icu, "_bundled_icu4py", lambda: None)
    monkeypatch.setattr(icu, "_PyIcuBackend", _raise_import_error)
    backend = icu._load()
    assert backend.origin == "system"
    assert backend.word("Hello world").bounds == [0, 5, 6, 11]


def _raise_import_error() -> None:
    raise ImportError("not installed")


def test_icu_missing_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icu, "_bundled_icu4py", lambda: None)
    monkeypatch.setattr(icu, "_PyIcuBackend", _raise_import_error)
    monkeypatch.setattr(icu, "_system_icu", lambda: None)
    with pytest.raises(icu.IcuUnavailableError, match="icu4py"):
        icu._load()
