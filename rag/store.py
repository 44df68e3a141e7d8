"""Reading an index: the read-only Store over the live generation (manifest.py describes the folder).

Opening checks the generation cheaply (the files are there at their recorded sizes, the SQLite schema and
chunk count, the FAISS vectors and their count), and a damaged page met later in a query, so that damage is one
IndexCorruptError line, never a traceback. The database is read live (WAL: each query sees the last committed
update); the FAISS vectors are those of the update the store opened at, until is_stale() says to reopen. A
reader that loses its files to a rebuild's swap or an update's compaction between reading which files are live
and opening them reads again.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from . import vector_files
from .errors import IndexCorruptError, IndexNotFoundError, IndexReadOnlyError, RagError
from .lexical import affordable_terms, bm25_search, bm25_search_cjk, fts_terms, merge_bm25, term_frequencies
from .manifest import SQLITE, check_files, check_manifest, damaged, live_generation, read_manifest
from .text import has_cjk, without_cjk
from .types import Article, Chunk


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    rowid: int
    chunk: Chunk
    title: str
    source: str
    published: str | None


def writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _readonly_uri(path: Path) -> str:
    return f"{Path(path).absolute().as_uri()}?mode=ro"  # as_uri escapes a '?' or '#' in the path


def open_readonly(path: Path) -> tuple[sqlite3.Connection, bool]:
    """(connection, frozen): the database opened for reading, live (WAL: each query sees the last commit). In a
    folder this user may not write (a read-only mount, an index served to another user) with no writer at work,
    WAL's shared-memory file cannot be made and that open fails: the file is then read as it stands (SQLite's
    immutable mode, frozen=True), which is every committed update once no update is left in the -wal file. One
    that is left there cannot be read without write access, and opening says so. (A frozen reader takes no locks:
    a writer that starts later, as another user, may change pages under a query; Store.is_stale() sees it.)"""
    uri = _readonly_uri(path)
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError:
        conn.close()
        folder, wal = Path(path).parent, Path(f"{path}-wal")
        if writable(folder) or not Path(path).is_file():
            raise
        if wal.is_file() and wal.stat().st_size > 0:
            raise IndexReadOnlyError(
                f"{path} holds an update not yet folded into it ({wal.name}), and this user may not write {folder}, "
                "which SQLite needs to read it; copy the index folder somewhere this user may write and open the "
                "copy") from None
    return sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False), True


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """The database, for writing, or for reading where the folder may be written (a build reading the live
    generation); readers use open_readonly()."""
    if readonly:
        return sqlite3.connect(_readonly_uri(path), uri=True, check_same_thread=False)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")  # readers keep the last committed state while a writer works
    conn.execute("PRAGMA synchronous=FULL")  # an update's commit is on disk before old vector files go
    return conn


def check_sqlite(db: sqlite3.Connection, index_dir: Path, path: Path, expected: int | None) -> bool:
    """Cheap checks that the store opens: its schema and its chunk count, against the count of vectors the index
    recorded (~16 ms at 1M chunks; PRAGMA quick_check reads every page, seconds). Returns whether it has the
    term_df table."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        missing = {"articles", "chunks", "chunks_fts", "files"} - tables
        if missing:
            raise damaged(index_dir, path, f"it has no {', '.join(sorted(missing))} table")
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise damaged(index_dir, path, str(exc)) from None
    if expected is not None and chunks != expected:
        raise damaged(index_dir, path, f"it holds {chunks} chunks; the index recorded {expected}")
    return "term_df" in tables  # indexes written before term_df existed: BM25 over every word


_P = ParamSpec("_P")
_R = TypeVar("_R")


def guarded(method: Callable[Concatenate[Any, _P], _R]) -> Callable[Concatenate[Any, _P], _R]:
    """A damaged page met mid-query ("database disk image is malformed") as IndexCorruptError. Only the
    plain DatabaseError (SQLITE_CORRUPT, SQLITE_NOTADB): a full disk or a closed connection is no damage."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise
            raise damaged(self.index_dir, self.db_path, str(exc)) from None
    return wrapper


class Store:
    """A read-only view of the live generation of an index."""

    def __init__(self, index_dir: Path | str, *, embedder_name: str | None = None,
                 embedder_dim: int | None = None) -> None:
        self.index_dir = Path(index_dir)
        for attempt in (1, 2, 3):
            manifest = read_manifest(self.index_dir)
            check_manifest(manifest, self.index_dir, embedder_name=embedder_name, embedder_dim=embedder_dim)
            self._update = -1
            try:
                self._open(self.index_dir / manifest["generation"], manifest)
                break
            except (IndexCorruptError, IndexNotFoundError):
                # A rebuild may have swapped in a newer generation, or an update written a new base and removed
                # the files this store read of, since it read which were live: read again.
                if attempt == 3 or not self._moved(manifest):
                    raise

    def _open(self, gen_dir: Path, manifest: dict[str, Any]) -> None:
        """Open the generation's files, with the cheap checks that turn damage into one line."""
        if not gen_dir.is_dir():
            raise IndexNotFoundError(f"{gen_dir} is missing; rebuild with: rag index PATH --index-dir "
                                     f"{self.index_dir} --rebuild")
        check_files(self.index_dir, gen_dir, manifest)
        self.db_path = gen_dir / SQLITE
        try:
            self.db, self._frozen = open_readonly(self.db_path)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.index_dir, self.db_path, str(exc)) from None
        try:
            self.db.execute("BEGIN")  # the vector state and the chunk count of one committed update
            try:
                self.state = vector_files.read_state(self.db, manifest)
            except (sqlite3.DatabaseError, ValueError) as exc:
                raise damaged(self.index_dir, self.db_path, str(exc)) from None
            self._update = int(self.state.get("update", 0))
            self._has_term_df = check_sqlite(self.db, self.index_dir, self.db_path, self.state.get("ntotal"))
            self.db.execute("COMMIT")
            self.vectors = vector_files.view(self.index_dir, gen_dir, self.state, manifest.get("embedder", {})
                                             .get("dim"))
        except BaseException:
            self.db.close()
            raise
        # what the manifest said, with the database's word on the vectors
        self.manifest = {**manifest, "faiss": self.state["faiss"], "update": self._update,
                         "counts": self.state.get("counts") or manifest.get("counts", {})}

    def _moved(self, manifest: dict[str, Any]) -> bool:
        """Has a build changed which files are live since this store read them?"""
        if live_generation(self.index_dir) != manifest["generation"]:
            return True
        try:
            conn, _ = open_readonly(self.index_dir / manifest["generation"] / SQLITE)
            try:
                return self._update >= 0 and vector_files.update_number(conn) != self._update
            finally:
                conn.close()
        except (sqlite3.DatabaseError, RagError):
            return False

    def close(self) -> None:
        self.db.close()

    def is_stale(self) -> bool:
        """True when a build has changed the vectors since this store was opened: a newer generation swapped in
        (or the manifest gone or damaged, so that reopening reports it), or an update of this one (~30 µs). The
        database itself is read live."""
        if live_generation(self.index_dir) != self.manifest["generation"]:
            return True
        if self._frozen:  # read as it stood when opened: a fresh look at the file sees any update since
            return self._moved(self.manifest)
        try:
            return vector_files.update_number(self.db) != self._update
        except (sqlite3.DatabaseError, ValueError):
            return True

    @property
    def chunk_count(self) -> int:
        return int(self.vectors.ntotal)

    def search_dense(self, query: np.ndarray, top_n: int, allowed: Sequence[int] | None = None
                     ) -> list[tuple[int, float]]:
        """(chunk rowid, cosine) of the nearest chunks, optionally only among `allowed` rowids."""
        return self.vectors.search(query, top_n, allowed)

    @guarded
    def search_lexical(self, question: str, top_n: int, allowed: Sequence[int] | None = None,
                       postings_budget: int = 0, *, alone: bool = False) -> list[tuple[int, float]]:
        """(chunk rowid, BM25 score, higher is better) from the FTS5 table.

        FTS5 scores every chunk that holds any query term, so a common word ("2021", "government") in a big
        index costs tens of milliseconds per 100k chunks holding it. With postings_budget > 0, terms are taken
        rarest first while the chunks holding them add up to at most the budget; the common words left out
        weigh little in BM25 anyway, and the dense side still sees the whole question. When even the rarest
        word is in more chunks than the budget, BM25 is skipped: such a word barely ranks (its IDF is low), and
        scoring it was the slow tail at 1M chunks (bench_retrieval.py --scale). With alone (lexical-only search:
        no dense side to answer instead), the rarest word is scored whatever it costs."""
        if allowed is not None and not allowed:
            return []
        cjk = bm25_search_cjk(self.db, question, top_n, allowed) if has_cjk(question) else None
        terms = fts_terms(without_cjk(question) if cjk is not None else question)
        if not terms:
            return cjk or []
        if postings_budget > 0 and self._has_term_df:
            freq = self.term_frequencies(terms)
            terms = affordable_terms(terms, freq, postings_budget) or (
                sorted(terms, key=lambda t: freq[t])[:1] if alone else [])
        found = bm25_search(self.db, terms, top_n, allowed) if terms else []
        # Chinese or Japanese: its CJK by trigrams in chunks_fts_cjk, its names and numbers in chunks_fts
        return found if cjk is None else merge_bm25(cjk, found, top_n)

    @guarded
    def term_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many chunks hold each term (as FTS5's porter tokenizer stems it); cheap b-tree lookups."""
        return term_frequencies(self.db, terms)

    @guarded
    def records(self, rowids: Iterable[int]) -> dict[int, ChunkRecord]:
        rowids = list(rowids)
        if not rowids:
            return {}
        rows = self.db.execute(
            'SELECT c.rowid, c.id, c.article_id, c.text, c.start, c."end", a.title, a.source, a.published '
            f"FROM chunks c JOIN articles a ON a.id = c.article_id WHERE c.rowid IN ({','.join('?' * len(rowids))})",
            rowids)
        return {r[0]: ChunkRecord(r[0], Chunk(r[1], r[2], r[3], r[4], r[5]), r[6], r[7], r[8]) for r in rows}

    @guarded
    def languages(self, rowids: Iterable[int]) -> dict[int, str | None]:
        """The language of each chunk's article (None where it was too short to tell)."""
        rowids = list(rowids)
        if not rowids:
            return {}
        return dict(self.db.execute(
            f"SELECT c.rowid, a.language FROM chunks c JOIN articles a ON a.id = c.article_id "
            f"WHERE c.rowid IN ({','.join('?' * len(rowids))})", rowids).fetchall())

    @guarded
    def chunk_vectors(self, rowids: Sequence[int]) -> np.ndarray:
        """Exact vectors of the given chunks, in that order: from the flat FAISS files this store opened (whatever
        the database says since: an update may have taken the floats out of it), or from the database, read live,
        when the index is IVF (vector_files: floats are kept once). A chunk these do not hold (removed, or added by
        an update since this store opened its flat files) gets zeros, which rank last."""
        if not rowids:
            return np.zeros((0, 0))
        if self.vectors.exact:
            return self.vectors.reconstruct(rowids)
        found: dict[int, bytes | None] = {}
        for at in range(0, len(rowids), 10_000):  # (SQLite's limit on a statement's parameters)
            part = list(rowids[at:at + 10_000])
            marks = ",".join("?" * len(part))
            found.update(self.db.execute(f"SELECT rowid, vector FROM chunks WHERE rowid IN ({marks})", part))
        gone = np.zeros(int(self.vectors.d), dtype=np.float32)
        return np.stack([np.frombuffer(blob, dtype=np.float32) if (blob := found.get(r)) is not None else gone
                         for r in rowids])

    @guarded
    def article(self, article_id: str) -> Article | None:
        row = self.db.execute("SELECT id, title, text, source, published, language, url, sha256 FROM articles "
                              "WHERE id = ?", (article_id,)).fetchone()
        return Article(*row) if row else None

    @guarded
    def list_articles(self) -> list[tuple[str, str, str | None, str]]:
        """(id, title, published, source) of every article, by date then title."""
        return list(self.db.execute(
            "SELECT id, title, published, source FROM articles ORDER BY published IS NULL, published, title"))

    @guarded
    def future_rowids(self, as_of: str) -> frozenset[int]:
        """Chunk rowids of articles published after as_of ("YYYY-MM-DD"); undated articles are never in it.
        Dates are ISO text, so "after that day" is a range on the articles_by_date index: as_of + "~" sorts after
        every time of that day ("2024-03-05T23:59") and before the next day. (substr() in the condition defeated
        the index: a scan of every article, 57 ms a question at 100k chunks, ~0.6 s at 1M.)"""
        return frozenset(r[0] for r in self.db.execute(
            "SELECT c.rowid FROM articles a JOIN chunks c ON c.article_id = a.id WHERE a.published > ?",
            (as_of[:10] + "~",)))

    @guarded
    def all_rowids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT rowid FROM chunks")]

    @guarded
    def allowed_rowids(self, *, article_ids: Sequence[str] = (), titles: Sequence[str] = (),
                       date_from: str | None = None, date_to: str | None = None) -> list[int] | None:
        """Chunk rowids that pass the filters, or None when there is no filter."""
        where: list[str] = []
        args: list[str] = []
        if article_ids or titles:
            parts = []
            if article_ids:
                parts.append(f"a.id IN ({','.join('?' * len(article_ids))})")
                args.extend(article_ids)
            for t in titles:
                parts.append("a.title LIKE ? ESCAPE '\\'")
                args.append("%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where.append("(" + " OR ".join(parts) + ")")
        if date_from:
            where.append("a.published >= ?")
            args.append(date_from)
        if date_to:
            where.append("a.published <= ?")
            args.append(date_to)
        if not where:
            return None
        sql = "SELECT c.rowid FROM chunks c JOIN articles a ON a.id = c.article_id WHERE " + " AND ".join(where)
        return [r[0] for r in self.db.execute(sql, args)]
