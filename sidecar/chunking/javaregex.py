"""Java regular expressions (``java.util.regex``) on Python's ``regex`` engine.

The ``recursive`` strategy's separators are Java regexes compiled with ``Pattern.MULTILINE`` and
matched inside a region with Java's default (opaque, anchoring) bounds. This module rewrites the
constructs whose meaning differs between the two dialects:

* ``.`` excludes every Java line terminator (``\\n \\r \\u0085 \\u2028 \\u2029``), not just ``\\n``;
* ``^``/``$`` in multiline mode follow Java (``\\r\\n`` is one terminator, ``^`` never matches at
  the end of the input), ``\\Z`` allows a final terminator, ``\\z`` is the absolute end;
* ``\\h \\H \\v \\V \\R \\e \\cX \\0ooo \\x{h..h} \\Q..\\E \\k<name>`` and the POSIX/``java*``
  ``\\p{...}`` classes;
* ``\\w \\d \\s \\b`` are ASCII, as in Java without ``UNICODE_CHARACTER_CLASS``;
* character-class unions/intersections (``[a-z&&[^e]]``) use ``regex``'s version-1 sets.

A region is matched by slicing the text, which is exactly Java's default region behaviour:
look-around cannot see outside it and ``^``/``$`` match at its edges.
"""

from __future__ import annotations

from functools import lru_cache

import regex

_TERMINATORS = "\\n\\r\\u0085\\u2028\\u2029"
_DOT = f"[^{_TERMINATORS}]"
_CARET_MULTILINE = "(?:\\A|(?<=[\\n\\u0085\\u2028\\u2029])|(?<=\\r)(?!\\n))(?!\\Z)"
_DOLLAR_MULTILINE = "(?:\\Z|(?=[\\r\\u0085\\u2028\\u2029])|(?<!\\r)(?=\\n))"
_CARET = "\\A(?!\\Z)"
_DOLLAR = "(?=(?:\\r\\n|[" + _TERMINATORS + "])?\\Z)"
_JAVA_Z = _DOLLAR
_LINEBREAK = "(?>\\r\\n|[\\n\\x0b\\f\\r\\u0085\\u2028\\u2029])"
_HSPACE = "[ \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000]"
_NOT_HSPACE = "[^ \\t\\xa0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000]"
_VSPACE = "[\\n\\x0b\\f\\r\\u0085\\u2028\\u2029]"
_NOT_VSPACE = "[^\\n\\x0b\\f\\r\\u0085\\u2028\\u2029]"

# java.util.regex property classes that mean something else (or nothing) to ``regex``
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
    "javaLowerCase": "\\p{Lowercase}",
    "javaUpperCase": "\\p{Uppercase}",
    "javaWhitespace": "\\t\\n\\x0b\\f\\r\\x1c-\\x1f\\p{Zs}--[\\xa0\\u2007\\u202f]",
    "javaMirrored": "\\p{Bidi_Mirrored}",
    "javaLetter": "\\p{L}",
    "javaDigit": "\\p{Nd}",
    "javaLetterOrDigit": "\\p{L}\\p{Nd}",
    "javaAlphabetic": "\\p{Alphabetic}",
    "javaSpaceChar": "\\p{Z}",
    "javaIdeographic": "\\p{Ideographic}",
    "javaTitleCase": "\\p{Lt}",
}


class JavaRegexError(ValueError):
    """The separator is not a regex this engine can compile (Java: ``PatternSyntaxException``)."""

    def __init__(self, message: str, pattern: str) -> None:
        super().__init__(message)
        self.pattern = pattern


def _code_point(cp: int) -> str:
    return f"\\U{cp:08x}"


def _property(name: str, negated: bool) -> str:
    if name in _POSIX:
        return f"[{'^' if negated else ''}{_POSIX[name]}]"
    if name.startswith("In") and "=" not in name:
        name = "Block=" + name[2:]
    return ("\\P{" if negated else "\\p{") + name + "}"


def _literal(ch: str) -> str:
    return ch if ch.isalnum() or ch == "_" else "\\" + ch if ord(ch) < 128 else ch


def translate(pattern: str) -> str:
    """Rewrite a Java regex (compiled with ``MULTILINE``) into ``regex`` V1 syntax."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    depth = 0  # character-class nesting
    dotall = False
    multiline = True
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise JavaRegexError(f"Unexpected internal error near index {n}", pattern)
            e = pattern[i + 1]
            i += 2
            if e == "Q":
                end = pattern.find("\\E", i)
                quoted = pattern[i:] if end < 0 else pattern[i:end]
                out.append("".join(_literal(ch) for ch in quoted))
                i = n if end < 0 else end + 2
            elif e in "pP":
                if i < n and pattern[i] == "{":
                    close = pattern.find("}", i)
                    if close < 0:
                        raise JavaRegexError(f"Unclosed character family near index {n}", pattern)
                    name = pattern[i + 1 : close]
                    i = close + 1
                elif i < n:
                    name = pattern[i]
                    i += 1
                else:
                    raise JavaRegexError(f"Illegal/unsupported escape sequence near index {i}", pattern)
                out.append(_property(name, e == "P"))
            elif e == "x" and i < n and pattern[i] == "{":
                close = pattern.find("}", i)
                if close < 0:
                    raise JavaRegexError(f"Unclosed hexadecimal escape sequence near index {i}", pattern)
                out.append(_code_point(int(pattern[i + 1 : close], 16)))
                i = close + 1
            elif e == "0":
                digits = ""
                while i < n and len(digits) < 3 and pattern[i] in "01234567":
                    if len(digits) == 2 and digits[0] > "3":
                        break
                    digits += pattern[i]
                    i += 1
                if not digits:
                    raise JavaRegexError(f"Illegal octal escape sequence near index {i}", pattern)
                out.append(_code_point(int(digits, 8)))
            elif e == "c":
                if i >= n:
                    raise JavaRegexError(f"Illegal control escape sequence near index {i}", pattern)
                out.append(_code_point(ord(pattern[i]) ^ 64))
                i += 1
            elif e == "e":
                out.append("\\x1b")
            elif e == "h":
                out.append(_HSPACE)
            elif e == "H":
                out.append(_NOT_HSPACE)
            elif e == "v":
                out.append(_VSPACE)
            elif e == "V":
                out.append(_NOT_VSPACE)
            elif e == "R" and depth == 0:
                out.append(_LINEBREAK)
            elif e == "Z" and depth == 0:
                out.append(_JAVA_Z)
            elif e == "z" and depth == 0:
                out.append("\\Z")
            elif e == "k" and depth == 0 and i < n and pattern[i] == "<":
                close = pattern.find(">", i)
                if close < 0:
                    raise JavaRegexError(
                        f"named capturing group is missing trailing '>' near index {i}", pattern
                    )
                out.append(f"(?P={pattern[i + 1 : close]})")
                i = close + 1
            else:
                out.append("\\" + e)
            continue
        if depth > 0:
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            out.append(c)
            i += 1
            continue
        if c == "[":
            depth = 1
            out.append(c)
            i += 1
            # a ']' right after '[' or '[^' is a literal
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            j = i + 2
            while j < n and pattern[j] in "idmsuxU-":
                j += 1
            if j > i + 2 and j < n and pattern[j] in ":)":
                flags = pattern[i + 2 : j]
                on, _, off = flags.partition("-")
                if pattern[j] == ")":
                    dotall = (dotall or "s" in on) and "s" not in off
                    multiline = (multiline or "m" in on) and "m" not in off
                keep_on = "".join(f for f in on if f in "imsx") + ("u" if "U" in on else "")
                keep_off = "".join(f for f in off if f in "imsx")
                if keep_on or keep_off:
                    out.append("(?" + keep_on + ("-" + keep_off if keep_off else "") + pattern[j])
                else:
                    out.append("(?:" if pattern[j] == ":" else "")
                i = j + 1
                continue
        if c == ".":
            out.append("." if dotall else _DOT)
        elif c == "^":
            out.append(_CARET_MULTILINE if multiline else _CARET)
        elif c == "$":
            out.append(_DOLLAR_MULTILINE if multiline else _DOLLAR)
        else:
            out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_java(pattern: str) -> regex.Pattern[str]:
    """Compile a separator as ``Pattern.compile(pattern, Pattern.MULTILINE)`` would."""
    try:
        return regex.compile(translate(pattern), regex.V1 | regex.ASCII)
    except regex.error as e:
        raise JavaRegexError(
            f"{e.msg} near index {e.pos if e.pos is not None else 0}\n{pattern}", pattern
        ) from e
