"""The indexed articles as a collection: list them, add files or pasted text to them, remove one.

Added articles are kept in the index's uploads folder (uploads.py) and indexed like the corpus folder, with
the same crash-safe builds as `rag index` (one writer at a time; readers keep the live generation until the
new one is swapped in). Every later `rag index PATH` reads the uploads folder too, so they stay.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .config import Settings
from .embed import Embedder
from .errors import IndexCorruptError, IndexNotFoundError, IngestError, QueryError, RagError
from .indexing import IndexReport, Log, add_files, remove_articles
from .ingest import Skipped
from .manifest import SQLITE, check_index_dir, live_generation, read_manifest
from .store import open_readonly
from .uploads import Saved, save_pasted, save_uploads, uploads_dir

PASTED = "pasted text"  # how a rejected paste is named among the rejected files


@dataclass(frozen=True)
class ArticleInfo:
    """One indexed article, as the list of articles shows it."""

    id: str
    title: str
    published: str | None  # "YYYY-MM-DD", or None when the article states no date
    source: str  # the file it was read from ("#L<n>" for a line of a .jsonl file)
    language: str | None
    chunks: int
    uploaded: bool  # added from the chat (kept in the index's uploads folder)


@dataclass
class UploadReport:
    """What adding files or pasted text did."""

    articles: list[ArticleInfo] = field(default_factory=list)  # the articles the upload holds, new or known
    rejected: list[Skipped] = field(default_factory=list)  # files and .jsonl lines left out, named as uploaded
    index: IndexReport | None = None  # the indexing run (None when nothing could be indexed)
    seconds: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # saved path: the name it was uploaded as

    def summary(self) -> str:
        counts = (self.index.manifest.get("counts") or {}) if self.index else {}
        lines = [f"added {len(self.articles)} article{'' if len(self.articles) == 1 else 's'}"
                 + (f" ({self.index.chunks_embedded} new chunks embedded)" if self.index else "")
                 + (f"; the index holds {counts.get('articles', 0)} articles" if counts else "")
                 + f"; {len(self.rejected)} rejected; {self.seconds:.1f} s"]
        lines += [f"rejected {r.source}: {r.reason}" for r in self.rejected]
        lines += [f"note {n.source}: {n.reason}" for n in self.notes]
        return "\n".join(lines)

    @property
    def notes(self) -> list[Skipped]:
        """What to know about articles added all the same (a date that is not one, or later than today)."""
        notes = []
        for note in self.index.notes if self.index else []:
            path, _, line = note.source.partition("#L")
            name = self.names.get(path, path)
            notes.append(Skipped(f"{name} line {line}" if line else name, note.reason, kept=True))
        return notes


def list_articles(settings: Settings | None = None, *, title: str = "", limit: int | None = None,
                  article_ids: Sequence[str] = ()) -> list[ArticleInfo]:
    """The indexed articles, newest first (undated last), optionally only those whose title contains `title`
    (any case) or with the given ids. Reads the live generation's SQLite only, not its vectors."""
    settings = settings or Settings.from_env()
    where, args = ["a.title LIKE ? ESCAPE '\\'"], ["%" + _like(title.strip()) + "%"]
    if article_ids:
        where.append(f"a.id IN ({','.join('?' * len(article_ids))})")
        args += list(article_ids)
    sql = ("SELECT a.id, a.title, a.published, a.source, a.language, "
           "(SELECT count(*) FROM chunks c WHERE c.article_id = a.id) FROM articles a WHERE " + " AND ".join(where)
           + " ORDER BY a.published IS NULL, a.published DESC, a.title" + (" LIMIT ?" if limit else ""))
    rows = _read(settings.index_dir, sql, args + ([limit] if limit else []))
    uploads = str(uploads_dir(settings.index_dir)) + os.sep
    return [ArticleInfo(r[0], r[1] or "", r[2], r[3] or "", r[4], int(r[5]), (r[3] or "").startswith(uploads))
            for r in rows]


def add_articles(files: Sequence[Path | str] = (), *, text: str = "", title: str = "", published: str = "",
                 settings: Settings | None = None, embedder: Embedder | None = None,
                 log: Log | None = None) -> UploadReport:
    """Adds uploaded files (.txt .md .html .jsonl, or a .zip of them) and/or one pasted article (text with an
    optional title and "YYYY-MM-DD" date) to the index; the next question answers from them. Give an embedder
    no other thread uses meanwhile (default: one loaded for indexing, once per process)."""
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    check_index_dir(settings.index_dir)  # before anything is saved under it
    say = log or (lambda _msg: None)
    if isinstance(files, (str, Path)):  # one file, not its characters
        files = [files]
    if files:
        say(f"saving {len(files)} file{'' if len(files) == 1 else 's'}")
    saved, rejected = save_uploads(files, settings.index_dir, max_upload_bytes=settings.max_upload_bytes,
                                   max_file_bytes=settings.max_file_bytes)
    if text.strip() or title.strip() or published.strip():
        try:
            saved.append(save_pasted(text, settings.index_dir, title=title, published=published,
                                     max_file_bytes=settings.max_file_bytes))
        except IngestError as exc:
            rejected.append(Skipped(PASTED, str(exc)))
    if not saved:
        return UploadReport(rejected=rejected, seconds=time.perf_counter() - started)
    try:
        embedder = embedder or _indexing_embedder(settings)
        report, ids = add_files([s.path for s in saved], uploads_dir(settings.index_dir), settings, embedder,
                                log=say)
    except BaseException:  # not indexed (another writer, a damaged index, Stop): not kept for a later run either
        written = [str(s.path) for s in saved if s.written]
        indexed = _indexed_files(settings.index_dir, written)  # (Stop after the commit, in its tidying: those stay)
        for path in written:
            if path not in indexed:
                _delete_upload(Path(path), uploads_dir(settings.index_dir))
        raise
    rejected += _unreadable(saved, report, uploads_dir(settings.index_dir))
    wanted = list(dict.fromkeys(i for s in saved for i in ids.get(str(s.path), ())))
    found = {a.id: a for a in list_articles(settings, article_ids=wanted)} if wanted else {}
    return UploadReport(articles=[found[i] for i in wanted if i in found], rejected=rejected, index=report,
                        seconds=time.perf_counter() - started, names={str(s.path): s.name for s in saved})


def remove_article(article_id: str, *, settings: Settings | None = None) -> ArticleInfo:
    """Takes one article out of the index and returns what it was. An uploaded file left with no article is
    deleted; an article of the corpus folder stays out until its file changes."""
    settings = settings or Settings.from_env()
    found = list_articles(settings, article_ids=[article_id])
    if not found:
        raise QueryError(f"article {article_id!r} is not in the index {settings.index_dir}; refresh the list of "
                         "articles")
    _report, emptied = remove_articles([article_id], settings)
    uploads = uploads_dir(settings.index_dir)
    for path in emptied:
        _delete_upload(Path(path), uploads)
    return found[0]


@lru_cache(maxsize=2)
def _indexing_embedder(settings: Settings) -> Embedder:
    """The embedder uploads are indexed with: loaded once, and never a Pipeline's, because a Hugging Face fast
    tokenizer used by two threads at once fails ("RuntimeError: Already borrowed", huggingface/tokenizers#537)
    and questions are answered while an upload is indexed."""
    from .embed_choice import load_embedder

    return load_embedder(settings, own=True)


def _unreadable(saved: Sequence[Saved], report: IndexReport, uploads: Path) -> list[Skipped]:
    """The saved files and .jsonl lines indexing left out, under their uploaded names; such files are deleted."""
    names = {str(s.path): s.name for s in saved}
    rejected = []
    for skip in report.skipped:
        if skip.source in names:
            rejected.append(Skipped(names[skip.source], skip.reason))
            _delete_upload(Path(skip.source), uploads)
    for skip in report.skipped_lines:
        path, _, line = skip.source.rpartition(":")
        if path in names:
            rejected.append(Skipped(f"{names[path]} line {line}", skip.reason))
    return rejected


def _delete_upload(path: Path, uploads: Path) -> None:
    """Delete a file of the uploads folder, and the folders it leaves empty (never anything outside it)."""
    path = path.resolve()
    if uploads not in path.parents:
        return
    path.unlink(missing_ok=True)
    for folder in path.parents:
        if folder == uploads:
            break
        try:
            folder.rmdir()
        except OSError:  # not empty
            break


def _read(index_dir: Path, sql: str, args: Sequence[object]) -> list[tuple]:
    """Rows from the live generation's SQLite; a build that swaps generations meanwhile is read again, once."""
    for attempt in (1, 2):
        generation = read_manifest(index_dir)["generation"]
        try:
            conn, _ = open_readonly(Path(index_dir) / generation / SQLITE)
            try:
                return conn.execute(sql, list(args)).fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            if attempt == 1 and live_generation(index_dir) != generation:
                continue
            if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
                raise IndexNotFoundError(f"{index_dir}/{generation} is missing; rebuild with: rag index PATH "
                                         f"--index-dir {index_dir} --rebuild") from None
            raise IndexCorruptError(f"{index_dir}/{generation}/{SQLITE} cannot be read ({exc}); rebuild with: "
                                    f"rag index PATH --index-dir {index_dir} --rebuild") from None
    raise AssertionError("unreachable")


def _indexed_files(index_dir: Path, paths: Sequence[str]) -> set[str]:
    """Which of these files the live index records (none when it cannot be read)."""
    if not paths:
        return set()
    try:
        rows = _read(index_dir, f"SELECT path FROM files WHERE path IN ({','.join('?' * len(paths))})", paths)
    except RagError:
        return set()
    return {r[0] for r in rows}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
