"""ICU word and sentence boundaries, as Elasticsearch computes them.

Elasticsearch chunks with ICU4J's ``BreakIterator`` for the root locale. The same rules and
dictionaries ship with ICU4C, so this module asks ICU4C for the boundaries, through one of:

* the ICU library bundled in the ``icu4py`` wheel (binary wheels, no compiler needed),
* PyICU (``import icu``), when it is installed,
* the system ICU (``libicuuc``, e.g. Debian's ``libicu72``).

The bundled ICU is preferred: its version (78) is the closest to Elasticsearch's ICU4J (77.1 in
9.x; 8.x's older ICU4J segments the same way). ICU 72-76 — e.g. Debian 12's ``libicu72`` — tailor
the root word rules (``stream:true`` and ``10:30`` split at the colon; 72-73 also keep
``user@host`` together), so a system ICU of those versions differs from Elasticsearch on such text.

Every function returns boundaries as **UTF-16 code-unit offsets**, exactly as ICU (and Java)
reports them. A word boundary carries ICU's rule status: ``0`` (``UBRK_WORD_NONE``) for spaces
and punctuation, a non-zero value for numbers, letters, kana and ideographs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

WORD_NONE = 0
_UBRK_WORD = 1
_UBRK_SENTENCE = 3
_UBRK_DONE = -1


class IcuUnavailableError(RuntimeError):
    """No ICU binding could be loaded."""


@dataclass(frozen=True)
class WordBreaks:
    """All word boundaries of a text: ``bounds[0] == 0``, ``bounds[-1] == len16``.

    ``statuses[i]`` is ICU's rule status of the boundary ``bounds[i]`` (the rule that ended the
    segment before it); ``statuses[0]`` is ``0`` like ICU's status at the start of the text.
    """

    bounds: list[int]
    statuses: list[int]


# ----------------------------------------------------------------------------------------------
# Backends. Each offers ``word(text) -> WordBreaks`` and ``sentence(text) -> list[int]``.


class _CBackend:
    """ICU4C's C API (``ubrk_*``) through ctypes."""

    def __init__(self, lib: ctypes.CDLL, suffix: str, origin: str) -> None:
        self.origin = origin
        self.version = ""

        def fn(name: str, restype: type | None, argtypes: list[type]) -> Callable[..., int]:
            f = getattr(lib, name + suffix)
            f.restype = restype
            f.argtypes = argtypes
            return f

        vp, i32 = ctypes.c_void_p, ctypes.c_int32
        errp = ctypes.POINTER(ctypes.c_int)
        self._open = fn("ubrk_open", vp, [ctypes.c_int, ctypes.c_char_p, vp, i32, errp])
        self._set_text = fn("ubrk_setText", None, [vp, vp, i32, errp])
        self._next = fn("ubrk_next", i32, [vp])
        self._status = fn("ubrk_getRuleStatus", i32, [vp])
        try:
            get_version = fn("u_getVersion", None, [ctypes.c_char * 4])
            raw = (ctypes.c_char * 4)()
            get_version(raw)
            self.version = ".".join(str(b) for b in bytes(raw)[:3])
        except AttributeError:  # pragma: no cover - every ICU has it
            pass
        self._local = threading.local()

    def _iterator(self, kind: int) -> int:
        cache = self._local.__dict__
        handle = cache.get(kind)
        if handle is None:
            err = ctypes.c_int(0)
            handle = self._open(kind, b"", None, 0, ctypes.byref(err))
            if err.value > 0 or not handle:
                raise IcuUnavailableError(f"ubrk_open failed with ICU error {err.value}")
            cache[kind] = handle
        return handle

    def _run(self, kind: int, text: str, want_status: bool) -> tuple[list[int], list[int]]:
        data = text.encode("utf-16-le", "surrogatepass")
        length = len(data) // 2
        buf = ctypes.create_string_buffer(data, len(data) + 2)
        handle = self._iterator(kind)
        err = ctypes.c_int(0)
        self._set_text(handle, buf, length, ctypes.byref(err))
        if err.value > 0:
            raise IcuUnavailableError(f"ubrk_setText failed with ICU error {err.value}")
        bounds = [0]
        statuses = [0]
        nxt, status = self._next, self._status
        pos = nxt(handle)
        while pos != _UBRK_DONE:
            bounds.append(pos)
            if want_status:
                statuses.append(status(handle))
            pos = nxt(handle)
        # the iterator keeps a pointer into ``buf``: point it at an empty text before ``buf`` dies
        self._set_text(handle, None, 0, ctypes.byref(err))
        return bounds, statuses

    def word(self, text: str) -> WordBreaks:
        bounds, statuses = self._run(_UBRK_WORD, text, True)
        return WordBreaks(bounds, statuses)

    def sentence(self, text: str) -> list[int]:
        return self._run(_UBRK_SENTENCE, text, False)[0]


class _PyIcuBackend:
    """PyICU (``import icu``)."""

    origin = "PyICU"

    def __init__(self) -> None:
        import icu  # type: ignore[import-not-found]

        self._icu = icu
        self.version = icu.ICU_VERSION
        self._local = threading.local()

    def _iterator(self, kind: str):  # noqa: ANN202 - PyICU object
        it = self._local.__dict__.get(kind)
        if it is None:
            factory = getattr(self._icu.BreakIterator, kind)
            it = factory(self._icu.Locale.getRoot())
            self._local.__dict__[kind] = it
        return it

    def word(self, text: str) -> WordBreaks:
        it = self._iterator("createWordInstance")
        it.setText(text)
        bounds = [0]
        statuses = [0]
        nxt, status = it.nextBoundary, it.getRuleStatus
        pos = nxt()
        while pos != -1:
            bounds.append(pos)
            statuses.append(status())
            pos = nxt()
        return WordBreaks(bounds, statuses)

    def sentence(self, text: str) -> list[int]:
        it = self._iterator("createSentenceInstance")
        it.setText(text)
        bounds = [0]
        nxt = it.nextBoundary
        pos = nxt()
        while pos != -1:
            bounds.append(pos)
            pos = nxt()
        return bounds


_SO_VERSION = re.compile(r"(?:\.so\.|\.)(\d+)(?:\.\d+)*(?:\.dylib)?$")


def _load_c_library(path: str, origin: str) -> _CBackend:
    lib = ctypes.CDLL(path)
    names = [""]
    m = _SO_VERSION.search(os.path.basename(path))
    if m:
        names.insert(0, "_" + m.group(1))
    names += [f"_{v}" for v in range(80, 49, -1)]
    for suffix in names:
        if hasattr(lib, "ubrk_open" + suffix):
            return _CBackend(lib, suffix, origin)
    raise IcuUnavailableError(f"{path} does not export the ICU break iterator API")


def _bundled_icu4py() -> str | None:
    try:
        import icu4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    pkg_dir = os.path.dirname(icu4py.__file__)
    patterns = [
        os.path.join(pkg_dir + ".libs", "libicuuc*.so*"),  # manylinux (auditwheel)
        os.path.join(pkg_dir, ".dylibs", "libicuuc*.dylib"),  # macOS (delocate)
        os.path.join(pkg_dir, "*", "libicuuc*.so*"),
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def _system_icu() -> str | None:
    name = ctypes.util.find_library("icuuc")
    if name:
        return name
    found = sorted(glob.glob("/usr/lib/*/libicuuc.so.*") + glob.glob("/usr/lib/libicuuc.so.*"))
    return found[-1] if found else None


_backend: _CBackend | _PyIcuBackend | None = None
_backend_lock = threading.Lock()


def _load() -> _CBackend | _PyIcuBackend:
    errors: list[str] = []
    path = _bundled_icu4py()
    if path:
        try:
            return _load_c_library(path, "icu4py")
        except (OSError, IcuUnavailableError) as e:
            errors.append(f"icu4py: {e}")
    try:
        return _PyIcuBackend()
    except ImportError as e:
        errors.append(f"PyICU: {e}")
    path = _system_icu()
    if path:
        try:
            return _load_c_library(path, "system")
        except (OSError, IcuUnavailableError) as e:
            errors.append(f"system ICU: {e}")
    raise IcuUnavailableError(
        "chunking needs ICU: install the 'icu4py' wheel, PyICU, or the system ICU library ("
        + "; ".join(errors or ["nothing found"])
        + ")"
    )


def backend() -> _CBackend | _PyIcuBackend:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = _load()
    return _backend


def describe() -> str:
    """``"ICU 78.3 (icu4py)"`` — which ICU the chunkers use."""
    b = backend()
    return f"ICU {b.version} ({b.origin})"


def word_breaks(text: str) -> WordBreaks:
    """ICU root-locale word boundaries of ``text`` with their rule statuses (UTF-16 offsets)."""
    return backend().word(text)


def sentence_breaks(text: str) -> list[int]:
    """ICU root-locale sentence boundaries of ``text``, starting with 0 (UTF-16 offsets)."""
    return backend().sentence(text)
