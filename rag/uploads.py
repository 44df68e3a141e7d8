"""Uploaded files and pasted text → files in the index's own uploads folder, safely.

Everything lands in `<index_dir>/uploads/<first 12 hex digits of the upload's sha256>/`, so an upload never
writes outside the index folder, two files of the same name do not collide, and the same file uploaded twice
is the same file. A .zip is unpacked there member by member: no absolute paths, no "..", no symlinks, no
nested archives, and at most the upload limit in bytes, counted as the members are read (a member's declared
size can lie). Every file is written under a hidden name and renamed into place, so a crash never leaves a
half-written article that indexing would read (hidden names are never indexed).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .dates import given_day
from .errors import IngestError
from .files import SUPPORTED_SUFFIXES, read_bytes
from .ingest import Skipped

UPLOADS_DIR = "uploads"  # inside the index folder; indexed with the corpus by every `rag index` run
MAX_ZIP_MEMBERS = 10_000  # entries of one .zip; more is refused before anything is unpacked
_UNSAFE = re.compile(r"[^\w.\- ]+")
_LIMIT_HINT = "(setting max_upload_bytes, RAG_MAX_UPLOAD_BYTES)"


@dataclass(frozen=True)
class Saved:
    """One article file taken in: the name the user knows it by, and where it was written."""

    name: str  # "notes.txt", or "batch.zip/2024/notes.txt" for a member of a .zip
    path: Path
    written: bool = True  # False: the same file was uploaded before and is already there


def uploads_dir(index_dir: Path | str) -> Path:
    """The folder uploads are kept in: inside the index folder, resolved (indexing keys files by real path)."""
    return Path(index_dir).expanduser().resolve() / UPLOADS_DIR


def safe_name(name: str, default: str = "article.txt") -> str:
    """A file name that is one harmless path part: letters, digits, ".-_ " only, no leading dot, ≤ 120 chars."""
    name = _UNSAFE.sub("_", name.replace("\\", "/").split("/")[-1]).strip(" ._")
    if not name:
        return default
    if len(name) > 120:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[:100] + dot + suffix[:15]) if dot and len(suffix) <= 15 else name[:120]
    return name


def save_uploads(files: Sequence[Path | str], index_dir: Path | str, *, max_upload_bytes: int,
                 max_file_bytes: int) -> tuple[list[Saved], list[Skipped]]:
    """Copies the uploaded files (and the members of uploaded .zip files) into the uploads folder; returns what
    was taken and what was refused, with the reason, under the names the user gave them."""
    target = uploads_dir(index_dir)
    saved: list[Saved] = []
    rejected: list[Skipped] = []
    budget = max_upload_bytes  # bytes this upload may still write, unpacked
    for source in files:
        source = Path(source)
        name = source.name
        suffix = source.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES + (".zip",):
            rejected.append(Skipped(name, f"unsupported file type {suffix or '(no extension)'}; upload .txt, "
                                          ".md, .html, .jsonl files or a .zip of them"))
            continue
        limit = min(budget, max_file_bytes) if suffix != ".zip" else budget
        try:
            size = os.stat(source).st_size
            if size > budget:
                raise IngestError(f"{size:,} bytes is over what is left of the {max_upload_bytes:,}-byte upload "
                                  f"limit {_LIMIT_HINT}; upload fewer or smaller files at a time")
            data = read_bytes(source, max_bytes=limit)
        except (IngestError, OSError) as exc:
            rejected.append(Skipped(name, str(exc)))
            continue
        folder = target / hashlib.sha256(data).hexdigest()[:12]
        if suffix == ".zip":
            got, refused, used = _unzip(data, name, folder, budget=budget, max_file_bytes=max_file_bytes,
                                        max_upload_bytes=max_upload_bytes)
            saved += got
            rejected += refused
            budget -= used
        else:
            saved.append(Saved(name, *_write(folder, [safe_name(name)], data)))
            budget -= len(data)
    return saved, rejected


def save_pasted(text: str, index_dir: Path | str, *, title: str = "", published: str = "",
                max_file_bytes: int) -> Saved:
    """Pasted article text as a Markdown file whose front matter holds the title and date given (if any)."""
    if not text.strip():
        raise IngestError("the pasted text is empty; paste the article's text")
    day = given_day(published, "date", IngestError) or ""
    title = " ".join(title.split())
    front = "".join(f"{key}: {value}\n" for key, value in (("title", title), ("date", day)) if value)
    body = (f"---\n{front}---\n" if front else "") + text.strip() + "\n"
    data = body.encode("utf-8")
    if len(data) > max_file_bytes:
        raise IngestError(f"the pasted text is {len(data):,} bytes, over the {max_file_bytes:,}-byte limit "
                          "(setting max_file_bytes); paste a shorter article")
    slug = "-".join(re.findall(r"\w+", (title or text[:60]).lower())[:8]) or "article"
    name = safe_name(f"pasted-{slug}.md")
    folder = uploads_dir(index_dir) / hashlib.sha256(data).hexdigest()[:12]
    return Saved(name, *_write(folder, [name], data))


def _unzip(data: bytes, zip_name: str, folder: Path, *, budget: int, max_file_bytes: int,
           max_upload_bytes: int) -> tuple[list[Saved], list[Skipped], int]:
    """The article members of a .zip written under folder; returns them, the refused ones, and bytes used."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        return [], [Skipped(zip_name, f"not a readable .zip file ({exc}); upload the articles themselves")], 0
    if len(members) > MAX_ZIP_MEMBERS:
        return [], [Skipped(zip_name, f"holds {len(members):,} entries, over the {MAX_ZIP_MEMBERS:,} one upload "
                                      "takes; split it into smaller archives")], 0
    saved: list[Saved] = []
    rejected: list[Skipped] = []
    taken: set[str] = set()  # lower case: two names differing only in case are one file on some disks
    used = 0
    for info in members:
        label = f"{zip_name}/{info.filename}"
        parts = _member_parts(info.filename)
        if info.is_dir() or (parts and _metadata(parts)):
            continue  # folders; macOS resource forks and other hidden files are not articles
        reason = _refusal(info, parts, max_file_bytes)
        safe = [safe_name(p) for p in parts or ()]
        if reason is None and "/".join(safe).lower() in taken:
            reason = "has the name of another file in the archive once made safe; rename one of them"
        if reason is None and used + info.file_size > budget:
            reason = f"unpacked, the upload would pass its {max_upload_bytes:,}-byte limit {_LIMIT_HINT}"
        if reason is None:
            assert parts is not None
            try:
                with archive.open(info) as handle:
                    content = handle.read(min(max_file_bytes, budget - used) + 1)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
                reason = f"cannot be unpacked ({exc})"
            else:
                if len(content) > min(max_file_bytes, budget - used) or len(content) != info.file_size:
                    reason = "unpacks to more bytes than the archive declares; not extracted"
        if reason is not None:
            rejected.append(Skipped(label, reason))
            continue
        saved.append(Saved(label, *_write(folder, safe, content)))
        taken.add("/".join(safe).lower())
        used += len(content)
    return saved, rejected, used


def _member_parts(filename: str) -> list[str] | None:
    """The member's path as parts, or None when it is absolute or climbs out of the archive ("..")."""
    path = PurePosixPath(filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", filename):
        return None
    return [p for p in path.parts if p not in ("", ".")]


def _metadata(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _refusal(info: zipfile.ZipInfo, parts: list[str] | None, max_file_bytes: int) -> str | None:
    """Why a member of a .zip is not extracted, or None when it may be."""
    if parts is None or not parts:
        return "its path leaves the archive (absolute, or with \"..\"); not extracted"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link; only regular files are extracted"
    if info.flag_bits & 0x1:
        return "encrypted; unzip it yourself and upload the files"
    suffix = PurePosixPath(parts[-1]).suffix.lower()
    if suffix == ".zip":
        return "a .zip inside a .zip is not opened; upload it on its own"
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type {suffix or '(no extension)'}; only .txt, .md, .html, .jsonl are indexed"
    if info.file_size > max_file_bytes:
        return f"{info.file_size:,} bytes is over the {max_file_bytes:,}-byte limit (setting max_file_bytes)"
    return None


def _write(folder: Path, parts: Sequence[str], data: bytes) -> tuple[Path, bool]:
    """data at folder/parts, written under a hidden name then renamed; a file already there is the same upload
    (the folder is named by its content) and is left as it is, so indexing sees it unchanged. Returns the path and
    whether this call wrote it."""
    path = folder.joinpath(*parts)
    if folder.resolve() not in path.resolve().parents:  # safe_name makes this impossible; kept as a guard
        raise IngestError(f"{'/'.join(parts)} would be written outside {folder}; not extracted")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with open(part, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
    return path, True
