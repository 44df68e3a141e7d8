"""Files → text: which files a folder holds, reading each one safely, and detecting its encoding."""

from __future__ import annotations

import codecs
import errno
import os
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import IngestError

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl")

# A FIFO opened without O_NONBLOCK waits for a writer forever; O_NOFOLLOW refuses a symlink swapped in
# between the checks and the open. (Both are 0 where the platform has no such flag.)
_OPEN_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)


def iter_files(root: Path) -> Iterator[Path]:
    """Entries under root (or root itself) with a supported suffix, sorted, skipping hidden folders and files.

    Every such entry is yielded whatever it is (symlink, folder, FIFO), so that read_bytes can say why it is
    skipped; folders reached through a symlink are not entered.
    """
    if not root.is_dir():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in SUPPORTED_SUFFIXES:
            yield path


def read_bytes(path: Path, *, max_bytes: int, root: Path | None = None) -> bytes:
    """The bytes of one regular file of at most max_bytes; IngestError says why it cannot be read.

    Devices, FIFOs and sockets are never read. A symlink is followed only to a regular file inside root (the
    indexed folder), so a link to /dev/zero or to a file elsewhere is skipped, not read.
    """
    try:
        real = Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        raise IngestError(unreadable_reason(path, exc)) from None
    if root is not None:
        base = Path(os.path.realpath(root))
        if real != base and base not in real.parents:
            raise IngestError(f"links to {real}, outside the indexed folder {base}; only symlinks to files "
                              "inside it are followed (copy the file in to index it)")
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):  # checked before opening: opening some devices has side effects
            raise IngestError(_not_regular(info.st_mode))
        with open(real, "rb", opener=lambda name, flags: os.open(name, flags | _OPEN_FLAGS)) as handle:
            info = os.fstat(handle.fileno())  # the file actually opened, whatever happened since the check
            if not stat.S_ISREG(info.st_mode):
                raise IngestError(_not_regular(info.st_mode))
            if info.st_size > max_bytes:
                raise IngestError(f"{info.st_size:,} bytes is over the {max_bytes:,}-byte limit "
                                  "(setting max_file_bytes)")
            data = handle.read(max_bytes + 1)  # bounded: the size stat gives can be wrong or change
    except OSError as exc:
        raise IngestError(unreadable_reason(path, exc)) from None
    if len(data) > max_bytes:
        raise IngestError(f"more than {max_bytes:,} bytes when read (more than its size on disk said), over "
                          "the limit (setting max_file_bytes)")
    return data


def unreadable_reason(path: Path, exc: OSError) -> str:
    """One line on why stat or open failed for path."""
    if isinstance(exc, PermissionError):
        return "permission denied; make the file readable to index it"
    if isinstance(exc, FileNotFoundError):
        try:
            return f"broken symlink: {os.readlink(path)} does not exist"
        except OSError:  # not a symlink (or gone too)
            pass
        return "no longer exists (deleted or moved while indexing)"
    if isinstance(exc, IsADirectoryError):
        return _not_regular(stat.S_IFDIR)
    if exc.errno == errno.ELOOP:
        return "symlink loop: following the link leads back to it"
    return f"cannot be read: {exc.strerror or exc}"


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a folder, not a file (the files inside it are indexed on their own)"
    kind = ("named pipe (FIFO)" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")
    return f"not a regular file but a {kind}; only regular files are read"


# ---------------------------------------------------------------- encodings

def decode_bytes(data: bytes) -> str:
    """Bytes → text: BOMs, strict UTF-8 or else charset-normalizer's best guess, then UTF-16 without a BOM."""
    if not data.strip():
        raise IngestError("empty file")
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise IngestError(f"starts with a {codec} byte-order mark but does not decode as {codec}") from None
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        import charset_normalizer  # a maintained detector (the one requests uses)

        matches = list(charset_normalizer.from_bytes(data))
        text = str(_prefer_common(matches)) if matches else None
    if text is not None and not _looks_binary(text):
        return text
    # Tried only once the rest has failed, so no file read before is read differently now.
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16
    if text is None:
        raise IngestError("not text in any encoding charset-normalizer knows (binary file?)")
    raise IngestError("looks binary (control characters), not text")


def _utf16_without_bom(data: bytes) -> str | None:
    """The text, when data is UTF-16 LE or BE without a byte-order mark; else None.

    ASCII characters (spaces, newlines, digits, Latin letters) have a NUL high byte in UTF-16, so NULs sit at
    odd offsets (LE) or even ones (BE); text in other encodings has none. Both byte orders are tried; the one
    whose text has fewer unassigned, private-use and control characters wins.
    """
    if len(data) % 2 or b"\0" not in data:
        return None
    scored: list[tuple[int, int, str]] = []
    for codec in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(codec)  # strict: a lone surrogate, common in binary data, fails here
        except UnicodeDecodeError:
            continue
        sample = text[:20000]
        odd = sum(1 for ch in sample if unicodedata.category(ch) in ("Cn", "Co", "Cc") and ch not in "\n\r\t\f")
        ascii_ = sum(1 for ch in sample if ch in _ASCII_TEXT)
        # real text: at least 5% ASCII (spaces, digits; mostly-CJK text is charset-normalizer's to find), at
        # most 0.5% odd characters
        if ascii_ * 20 >= len(sample) and odd * 200 <= len(sample) and not _ascii_read_as_utf16(sample):
            scored.append((odd, -ascii_, text))
    return min(scored)[2] if scored else None


_ASCII_TEXT = frozenset(map(chr, range(32, 127))) | frozenset("\n\r\t")


def _ascii_read_as_utf16(sample: str) -> bool:
    """Whether sample is 8-bit text (with stray NULs) read two bytes at a time: "Sept" as "敓瑰".

    Then nearly every character from U+2E80 (CJK) up is two ASCII bytes; in real CJK text about 37% are (95 of
    the 256 values of the low byte). Below U+2E80 many real characters are two ASCII bytes too ("•" is U+2022).
    """
    wide = [ord(ch) for ch in sample if 0x2E80 <= ord(ch) <= 0xFFFF]
    pairs = sum(1 for code in wide if chr(code >> 8) in _ASCII_TEXT and chr(code & 0xFF) in _ASCII_TEXT)
    return len(wide) >= 8 and pairs * 5 > len(wide) * 4


# When several encodings decode a file equally well (Latin-1 French also reads as cp1250 with "č" for "è"),
# take the one most used for news on the web.
_COMMON_ENCODINGS = ("utf_8", "ascii", "cp1252", "latin_1", "iso8859_15", "gb18030", "gbk", "gb2312", "big5",
                     "shift_jis", "euc_jp", "euc_kr", "cp1251", "koi8_r", "utf_16", "iso8859_2", "cp1250")


def _prefer_common(matches: list[Any]) -> object:
    best = matches[0]
    ties = [m for m in matches if m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01]
    ranked = sorted(ties, key=lambda m: _COMMON_ENCODINGS.index(m.encoding)
                    if m.encoding in _COMMON_ENCODINGS else len(_COMMON_ENCODINGS))
    return ranked[0]


def _looks_binary(text: str) -> bool:
    sample = text[:20000]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f")
    return controls > max(2, len(sample) // 100)
