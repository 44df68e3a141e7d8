"""Writing an index: one build applies its changes to a copy of the live generation, then swaps it in.

A build copies the live generation into `gen-000008.tmp/`, applies its changes there, renames it to
`gen-000008/` and only then swaps manifest.json (manifest.py describes the folder). A kill at any point
leaves the old manifest pointing at the old, complete generation. Every build numbers its generation above
every folder on disk and removes the folders no manifest names: half-written `.tmp`, renamed but never
swapped in, half-deleted `.old`. One writer at a time: the second is refused at once (IndexBusyError).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from . import faiss_index
from .config import check_ivf_codec
from .errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexNotFoundError
from .lexical import TOKENIZE, TRIGRAM_SCHEMA, TRIGRAM_TABLE, count_terms, fts_text, track_changes, update_terms
from .manifest import (
    FORMAT_VERSION,
    GENERATION,
    MANIFEST,
    SQLITE,
    VECTORS,
    check_files,
    check_manifest,
    fault_point,
    fsync_dir,
    live_generation,
    read_manifest,
    write_manifest,
)
from .store import check_sqlite, connect, guarded
from .text import has_cjk
from .types import Article, Chunk

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, article_ids TEXT);
CREATE TABLE IF NOT EXISTS articles(id TEXT PRIMARY KEY, title TEXT, text TEXT, source TEXT, published TEXT,
                                    language TEXT, url TEXT, sha256 TEXT);
CREATE TABLE IF NOT EXISTS chunks(rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, article_id TEXT, start INTEGER,
                                  "end" INTEGER, text TEXT, vector BLOB);
CREATE INDEX IF NOT EXISTS chunks_by_article ON chunks(article_id);
CREATE INDEX IF NOT EXISTS articles_by_date ON articles(published);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title, body, tokenize='{TOKENIZE}');
CREATE TABLE IF NOT EXISTS term_df(term TEXT PRIMARY KEY, df INTEGER) WITHOUT ROWID;
{TRIGRAM_SCHEMA}
"""


VACUUM_FREE_SHARE = 0.25  # free pages, as a share of the file, above which a build compacts it


class Builder:
    """Applies one indexing run's changes to a copy of the live generation, then swaps it in."""

    def __init__(self, index_dir: Path | str, *, embedder_name: str, embedder_dim: int,
                 chunking: dict[str, Any], ann_threshold: int, nprobe: int, ivf_codec: str, rebuild: bool = False,
                 keep_codec: bool = False) -> None:
        self.index_dir = Path(index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        # held by this object, not its thread (thread_local=False): a build may finish on another thread
        self._lock = FileLock(self.index_dir / ".lock", thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise IndexBusyError(f"another process is writing {self.index_dir}; wait for it to finish") from None
        try:
            self._start(embedder_name, embedder_dim, chunking, ann_threshold, nprobe, rebuild, ivf_codec, keep_codec)
        except BaseException:
            self.close()
            raise

    def _start(self, embedder_name: str, embedder_dim: int, chunking: dict[str, Any], ann_threshold: int,
               nprobe: int, rebuild: bool, ivf_codec: str, keep_codec: bool) -> None:
        check_ivf_codec(ivf_codec)  # before any work, not at the commit
        self.embedder: dict[str, Any] = {"name": embedder_name, "dim": embedder_dim}
        self.chunking = chunking
        self.ann_threshold, self.nprobe, self.ivf_codec = ann_threshold, nprobe, ivf_codec
        previous = None
        if (self.index_dir / MANIFEST).exists() and not rebuild:
            previous = read_manifest(self.index_dir)
            check_manifest(previous, self.index_dir, embedder_name=embedder_name, embedder_dim=embedder_dim)
            if previous.get("chunking") != chunking:
                raise IndexMismatchError(
                    f"{self.index_dir} was chunked with {previous.get('chunking')}; settings ask for {chunking}. "
                    "Rebuild with --rebuild, or restore the chunk settings."
                )
        self.previous = previous
        if keep_codec and previous and previous.get("faiss", {}).get("type") == "ivf":
            self.ivf_codec = faiss_index.ivf_codec(previous["faiss"])
        if previous and previous.get("embedder", {}).get("documents"):  # how the kept vectors were computed
            self.embedder["documents"] = previous["embedder"]["documents"]
        # the generation readers may be opening now; kept (even by --rebuild) until the build after this one
        self.live = previous["generation"] if previous else live_generation(self.index_dir)
        self.generation = f"gen-{next_generation_number(self.index_dir, self.live):06d}"
        self._remove_unnamed_generations()
        self.tmp_dir = self.index_dir / (self.generation + ".tmp")
        self.db_path = self.tmp_dir / SQLITE
        if previous:
            live_dir = self.index_dir / previous["generation"]
            check_files(self.index_dir, live_dir, previous)
            conn = connect(live_dir / SQLITE, readonly=True)
            try:
                check_sqlite(conn, self.index_dir, live_dir / SQLITE, previous)
            finally:
                conn.close()
            self.db_path = live_dir / SQLITE  # a damaged page met later names the file it was copied from
        self.tmp_dir.mkdir()
        if previous:
            shutil.copyfile(self.db_path, self.tmp_dir / SQLITE)
        fault_point("copied")
        self.db = connect(self.tmp_dir / SQLITE, readonly=False)
        self.db.execute("PRAGMA secure_delete=ON")  # a removed article's text leaves the file, VACUUM or not
        self.db.executescript(SCHEMA)
        # term_df follows the changed chunks alone when the previous generation has it (lexical.update_terms)
        self.incremental_terms = previous is not None and bool(self.db.execute("SELECT 1 FROM term_df LIMIT 1")
                                                               .fetchone())
        if self.incremental_terms:
            track_changes(self.db)
        self.removed_rowids: list[int] = []
        self.added: list[tuple[int, np.ndarray]] = []

    # --- queries the indexing run makes
    @guarded
    def known_file(self, path: str) -> tuple[int, int, list[str]] | None:
        row = self.db.execute("SELECT size, mtime_ns, article_ids FROM files WHERE path = ?", (path,)).fetchone()
        return (row[0], row[1], json.loads(row[2])) if row else None

    @guarded
    def known_paths(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT path FROM files")}

    @guarded
    def has_article(self, article_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM articles WHERE id = ?", (article_id,)).fetchone() is not None

    # --- changes
    @guarded
    def set_file(self, path: str, size: int, mtime_ns: int, article_ids: Sequence[str]) -> None:
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                        (path, size, mtime_ns, json.dumps(list(article_ids))))

    @guarded
    def forget_files(self, paths: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    @guarded
    def add_article(self, article: Article, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        self.db.execute("INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (article.id, article.title, article.text, article.source, article.published,
                         article.language, article.url, article.sha256))
        fts_title = fts_text(article.title)
        for chunk, vec in zip(chunks, vectors):
            cur = self.db.execute('INSERT INTO chunks(id, article_id, start, "end", text, vector) VALUES (?,?,?,?,?,?)',
                                  (chunk.id, chunk.article_id, chunk.start, chunk.end, chunk.text,
                                   np.asarray(vec, dtype=np.float32).tobytes()))
            rowid = int(cur.lastrowid or 0)
            fts_row = (fts_title, fts_text(chunk.text))
            self.db.execute("INSERT INTO chunks_fts(rowid, title, body) VALUES (?, ?, ?)", (rowid, *fts_row))
            if self.incremental_terms:
                self.db.execute("INSERT INTO temp.added_fts(title, body) VALUES (?, ?)", fts_row)
            if has_cjk(article.title) or has_cjk(chunk.text):  # Chinese/Japanese: BM25 by trigrams too (lexical.py)
                self.db.execute(f"INSERT INTO {TRIGRAM_TABLE}(rowid, title, body) VALUES (?, ?, ?)",
                                (rowid, article.title, chunk.text))
            self.added.append((rowid, vec))

    @guarded
    def update_source(self, article_id: str, source: str) -> None:
        self.db.execute("UPDATE articles SET source = ? WHERE id = ?", (source, article_id))

    @guarded
    def remove_unreferenced_articles(self) -> int:
        """Delete articles no indexed file refers to any more; returns how many."""
        referenced: set[str] = set()
        for (ids,) in self.db.execute("SELECT article_ids FROM files"):
            referenced.update(json.loads(ids))
        stale = [r[0] for r in self.db.execute("SELECT id FROM articles") if r[0] not in referenced]
        for article_id in stale:
            self._delete_article(article_id)
        return len(stale)

    @guarded
    def remove_article(self, article_id: str) -> tuple[int, list[str]]:
        """Delete one article and its chunks, and take it off the files that hold it. Their size and time are
        kept, so an unchanged file is not read again and the article stays out until its file changes.
        Returns the article's chunk count and the files that now hold no article."""
        chunks = self._delete_article(article_id)
        emptied = []
        for path, ids in self.db.execute("SELECT path, article_ids FROM files WHERE article_ids LIKE ?",
                                         (f'%"{article_id}"%',)).fetchall():  # a prefilter; the JSON decides
            kept = [i for i in json.loads(ids) if i != article_id]
            self.db.execute("UPDATE files SET article_ids = ? WHERE path = ?", (json.dumps(kept), path))
            if not kept:
                emptied.append(path)
        return chunks, emptied

    def _delete_article(self, article_id: str) -> int:
        rows = [r[0] for r in self.db.execute("SELECT rowid FROM chunks WHERE article_id = ?", (article_id,))]
        if self.incremental_terms:
            self.db.executemany("INSERT INTO temp.removed_fts(title, body) SELECT title, body FROM chunks_fts "
                                "WHERE rowid = ?", [(r,) for r in rows])
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(r,) for r in rows])
        self.db.executemany(f"DELETE FROM {TRIGRAM_TABLE} WHERE rowid = ?", [(r,) for r in rows])
        self.db.execute("DELETE FROM chunks WHERE article_id = ?", (article_id,))
        self.db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        self.removed_rowids.extend(rows)
        if self.added and rows:  # added earlier in this build: never reaches FAISS
            gone = set(rows)
            self.added = [(rowid, vec) for rowid, vec in self.added if rowid not in gone]
        return len(rows)

    @guarded
    def language_counts(self) -> dict[str, int]:
        """Articles per detected language ("und": too little text to tell)."""
        return {lang or "und": n for lang, n in
                self.db.execute("SELECT language, count(*) FROM articles GROUP BY language ORDER BY 2 DESC")}

    # --- finishing
    @guarded
    def commit(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write vectors and manifest, swap the new generation in; returns the manifest."""
        self._count_terms()
        self.db.commit()
        fault_point("db-committed")
        counts = {
            "articles": self.db.execute("SELECT count(*) FROM articles").fetchone()[0],
            "chunks": self.db.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "files": self.db.execute("SELECT count(*) FROM files").fetchone()[0],
        }
        self._compact_if_worth_it()
        self.db.close()
        faiss_info = self._write_vectors(counts["chunks"])
        fault_point("vectors-written")
        sizes = {name: (self.tmp_dir / name).stat().st_size for name in (SQLITE, VECTORS)}
        os.rename(self.tmp_dir, self.index_dir / self.generation)
        fsync_dir(self.index_dir)
        fault_point("renamed")
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": self.generation,
            "embedder": self.embedder,
            "chunking": self.chunking,
            "counts": counts,
            "faiss": faiss_info,
            "sizes": sizes,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"previous_generation": self.live} if self.live else {}),
            **(extra or {}),
        }
        write_manifest(self.index_dir, manifest)
        fault_point("manifest-swapped")
        self._remove_unnamed_generations()
        self.close()
        return manifest

    def _count_terms(self) -> None:
        """Bring term_df up to date: from the changed chunks alone when the previous generation's term_df is there
        (lexical.update_terms), else by walking the whole index (count_terms: ~3 s at 1M chunks)."""
        if self.incremental_terms:
            update_terms(self.db)
        else:
            count_terms(self.db)

    def _compact_if_worth_it(self) -> None:
        """Give deleted articles' pages back to the file system only once they are a quarter of the file. VACUUM
        rewrites the whole file (3.5 s at 100k chunks), so an update that replaced a few articles leaves their
        pages free for the next inserts instead."""
        free, pages = (self.db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_count"))
        if free > VACUUM_FREE_SHARE * pages:
            self.db.execute("VACUUM")

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.close()

    def close(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def _write_vectors(self, total: int) -> dict[str, Any]:
        dim = int(self.embedder["dim"])
        old_info = (self.previous or {}).get("faiss", {})
        if self.previous is not None and faiss_index.reusable(old_info, total, self.ann_threshold, self.ivf_codec):
            index = faiss_index.read_vectors(self.index_dir, self.index_dir / self.previous["generation"] / VECTORS,
                                             self.previous)
            faiss_index.update(index, self.removed_rowids, self.added)
            info = dict(old_info)
        else:
            ids, vecs = self._all_vectors(dim)
            index, info = faiss_index.build(ids, vecs, dim, total, self.ann_threshold, self.nprobe, self.ivf_codec)
        faiss_index.write(index, self.tmp_dir / VECTORS)
        return info

    def _all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        conn = connect(self.tmp_dir / SQLITE, readonly=True)
        try:
            rows = conn.execute("SELECT rowid, vector FROM chunks ORDER BY rowid").fetchall()
        finally:
            conn.close()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, dim) if rows else \
            np.zeros((0, dim), dtype=np.float32)
        return ids, vecs

    def _remove_unnamed_generations(self) -> None:
        """Remove every generation folder but the one the manifest names and the one before it (a reader may
        have read the manifest just before the swap); ours, while it is being written, is not there yet."""
        try:
            manifest = read_manifest(self.index_dir)
            named = {manifest.get("generation"), manifest.get("previous_generation")}
        except (IndexNotFoundError, IndexCorruptError):
            named = set()
        # half-written and half-deleted folders first: a `gen-N` is renamed to `gen-N.old` before deletion
        for path in sorted(self.index_dir.glob("gen-*"), key=lambda p: GENERATION.fullmatch(p.name) is not None):
            if path.name not in named:
                remove_generation(path)


def next_generation_number(index_dir: Path, live: str | None) -> int:
    """One above every generation on disk (live, kept, orphaned, half-written or half-deleted) and the live one,
    so the new folder never collides with a leftover and no name a reader saw is ever reused."""
    numbers = [int(m.group(1)) for name in [p.name for p in index_dir.glob("gen-*")] + [live or ""]
               if (m := GENERATION.match(name))]
    return max(numbers, default=0) + 1


def remove_generation(path: Path) -> None:
    """Delete a generation folder, renaming it `gen-N.old` first, so that a kill half-way leaves a folder no
    reader takes for a generation. A folder that cannot go now (held open on Windows) goes in a later build."""
    if GENERATION.fullmatch(path.name):
        old = path.with_name(path.name + ".old")
        try:
            os.rename(path, old)
        except OSError:
            return
        path = old
        fault_point("old-generation-renamed")
    shutil.rmtree(path, ignore_errors=True)
