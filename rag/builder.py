"""Writing an index: an update changes the live generation in place, in one SQLite transaction; a first build
or a --rebuild writes a new generation and swaps it in.

An update (the usual `rag index` run, an upload or a removal in the chat) does work in proportion to what
changed: its rows go into the live database (WAL mode: readers keep reading the last committed state) and its
vectors into a small delta file beside the FAISS base (vector_files.py). The delta is written first, then the
transaction that names it commits: that commit is the moment the update is live. A kill before it leaves the
database as it was (SQLite rolls the transaction back) and a delta file nobody names, which the next writer
removes; a kill after it leaves the update live and, at worst, manifest.json's counts one update behind,
which the next writer rewrites.

A first build, a --rebuild, or an index of format 2 being brought to format 3 writes `gen-000008.tmp/`,
renames it to `gen-000008/` and only then swaps manifest.json (manifest.py describes the folder). A kill at
any point leaves the old manifest pointing at the old, complete generation. Such a build numbers its
generation above every folder on disk and removes the folders no manifest names: half-written `.tmp`,
renamed but never swapped in, half-deleted `.old`. One writer at a time: the second is refused at once
(IndexBusyError).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from . import faiss_index, vector_files
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
    check_index_dir,
    check_manifest,
    damaged,
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
{vector_files.META_SCHEMA}
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
    """Applies one indexing run's changes: in place to the live generation (an update), or to a new generation that
    is then swapped in (a first build, --rebuild, an index of an older format)."""

    def __init__(self, index_dir: Path | str, *, embedder_name: str, embedder_dim: int,
                 chunking: dict[str, Any], ann_threshold: int, nprobe: int, ivf_codec: str, rebuild: bool = False,
                 keep_codec: bool = False) -> None:
        self.index_dir = Path(index_dir)
        check_index_dir(self.index_dir)
        self.index_dir.mkdir(parents=True, exist_ok=True)
        # held by this object, not its thread (thread_local=False): a build may finish on another thread
        self._lock = FileLock(self.index_dir / ".lock", thread_local=False)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise IndexBusyError(f"another process is writing {self.index_dir}; wait for it to finish") from None
        self._asked = (ivf_codec, keep_codec)  # what a checkpoint() opens the next step with
        self._checkpointing = False
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
        if previous and previous.get("embedder", {}).get("documents"):  # how the kept vectors were computed
            self.embedder["documents"] = previous["embedder"]["documents"]
        # an index of this format is updated in place; a new one, a rebuild or an older format gets a new generation
        self.in_place = previous is not None and previous.get("format_version") == FORMAT_VERSION
        if self.in_place:
            assert previous is not None
            self._open_live(previous)
        else:
            self._open_new(previous)
        if keep_codec and self.state["faiss"].get("type") == "ivf":
            self.ivf_codec = faiss_index.ivf_codec(self.state["faiss"])
        self.db.execute("PRAGMA secure_delete=ON")  # a removed article's text leaves the file, VACUUM or not
        self.db.executescript(SCHEMA)
        # term_df follows the changed chunks alone when the previous generation has it (lexical.update_terms)
        self.incremental_terms = previous is not None and bool(self.db.execute("SELECT 1 FROM term_df LIMIT 1")
                                                               .fetchone())
        if self.incremental_terms:
            track_changes(self.db)
        self.removed_rowids: list[int] = []
        self.added: list[tuple[int, np.ndarray]] = []
        self.sqlite_vectors = vector_files.sqlite_vectors(self.state)  # where this build's floats go until commit
        self.floats_dropped = False
        # rowids are never reused, so that a reader holding older vectors never takes one chunk for another
        top = self.db.execute("SELECT max(rowid) FROM chunks").fetchone()[0] or 0
        self.next_rowid = max(int(self.state.get("max_rowid") or 0), int(top)) + 1

    def _open_live(self, previous: dict[str, Any]) -> None:
        """An update: the live generation's database, opened for writing, after the cheap checks a reader makes."""
        self.live = self.generation = previous["generation"]
        self.gen_dir = self.index_dir / self.generation
        self.db_path = self.gen_dir / SQLITE
        check_files(self.index_dir, self.gen_dir, previous)  # before connecting, which would create a missing file
        try:
            self.db = connect(self.db_path, readonly=False)
        except sqlite3.DatabaseError as exc:
            raise damaged(self.index_dir, self.db_path, str(exc)) from None
        try:
            self.state = self._read_state(previous)
            check_sqlite(self.db, self.index_dir, self.db_path, self.state.get("ntotal"))
            vector_files.check(self.index_dir, self.gen_dir, self.state)
            vector_files.remove_unnamed(self.gen_dir, self.state)  # a killed update's delta, a replaced base
        except BaseException:
            self.db.close()
            raise

    @guarded
    def _read_state(self, manifest: dict[str, Any]) -> dict[str, Any]:
        try:
            return vector_files.read_state(self.db, manifest)
        except ValueError as exc:
            raise damaged(self.index_dir, self.db_path, str(exc)) from None

    def _open_new(self, previous: dict[str, Any] | None) -> None:
        """A first build, a rebuild, or an index of an older format brought to this one: a new generation."""
        # the generation readers may be opening now; kept (even by --rebuild) until the build after this one
        self.live = previous["generation"] if previous else live_generation(self.index_dir)
        self.generation = f"gen-{next_generation_number(self.index_dir, self.live):06d}"
        self._remove_unnamed_generations()
        self.gen_dir = self.index_dir / (self.generation + ".tmp")
        self.db_path = self.gen_dir / SQLITE
        if previous:
            live_dir = self.index_dir / previous["generation"]
            check_files(self.index_dir, live_dir, previous)
            conn = connect(live_dir / SQLITE, readonly=True)
            try:
                check_sqlite(conn, self.index_dir, live_dir / SQLITE, previous.get("counts", {}).get("chunks"))
            finally:
                conn.close()
            self.db_path = live_dir / SQLITE  # a damaged page met later names the file it was copied from
        self.gen_dir.mkdir()
        if previous:
            shutil.copyfile(self.db_path, self.gen_dir / SQLITE)
        fault_point("copied")
        self.db = connect(self.gen_dir / SQLITE, readonly=False)
        self.state = vector_files.legacy_state(previous) if previous else vector_files.empty_state()

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
            rowid = self.next_rowid
            self.next_rowid += 1
            blob = np.asarray(vec, dtype=np.float32).tobytes() if self.sqlite_vectors else None
            self.db.execute('INSERT INTO chunks(rowid, id, article_id, start, "end", text, vector) '
                            "VALUES (?,?,?,?,?,?,?)", (rowid, chunk.id, chunk.article_id, chunk.start, chunk.end,
                                                       chunk.text, blob))
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
    def update_article(self, article: Article) -> None:
        """An indexed article read again with the same title and text: its file, date and address as they are
        now (a moved file, a corrected date), its chunks and vectors kept."""
        self.db.execute("UPDATE articles SET source = ?, published = ?, url = ? WHERE id = ?",
                        (article.source, article.published, article.url, article.id))

    @guarded
    def orphaned_sources(self, paths: set[str]) -> dict[str, list[str]]:
        """The articles whose source is one of these files (a line of one, for .jsonl) that no longer holds them,
        though another file does: {file holding them: [article ids]}. Read in one pass over the files."""
        cited = {article_id: source.split("#L")[0] for article_id, source in
                 self.db.execute("SELECT id, source FROM articles") if source and source.split("#L")[0] in paths}
        if not cited:
            return {}
        holders: dict[str, list[str]] = {}
        for path, ids in self.db.execute("SELECT path, article_ids FROM files"):
            for article_id in json.loads(ids):
                if article_id in cited:
                    holders.setdefault(article_id, []).append(path)
        moved: dict[str, list[str]] = {}
        for article_id, held_by in holders.items():
            if cited[article_id] not in held_by:
                moved.setdefault(sorted(held_by)[0], []).append(article_id)
        return moved

    @guarded
    def remove_unreferenced_articles(self, also: Iterable[str] = ()) -> int:
        """Delete articles no indexed file refers to any more (nor `also`: the articles of files whose entry
        waits for the rest of their articles); returns how many."""
        referenced: set[str] = set(also)
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
    @property
    def can_checkpoint(self) -> bool:
        """Whether part of this build may go live before the rest: an update, or a first build. A --rebuild over a
        live index (or a format upgrade) is all or nothing: the old index serves until the new one is whole."""
        return self.in_place or self.live is None

    def checkpoint(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Commit what this build has done so far and go on as an update of it, keeping the writer's lock: a long
        run interrupted later (Ctrl-C, a kill, a reboot) keeps this part, and the next run starts from it. Returns
        the manifest committed."""
        assert self.can_checkpoint, "a rebuild over a live index goes live whole"
        self._checkpointing = True
        try:
            manifest = self.commit(extra, release=False)
        finally:
            self._checkpointing = False
        try:
            self._start(str(self.embedder["name"]), int(self.embedder["dim"]), self.chunking, self.ann_threshold,
                        self.nprobe, False, *self._asked)
        except BaseException:
            self.close()
            raise
        return manifest

    @guarded
    def commit(self, extra: dict[str, Any] | None = None, *, release: bool = True) -> dict[str, Any]:
        """Write the vectors, commit, and make the result live; returns the manifest. release=False keeps the
        writer's lock (checkpoint)."""
        self._count_terms()
        counts = {
            "articles": self.db.execute("SELECT count(*) FROM articles").fetchone()[0],
            "chunks": self.db.execute("SELECT count(*) FROM chunks").fetchone()[0],
            "files": self.db.execute("SELECT count(*) FROM files").fetchone()[0],
        }
        state = {**self._write_vectors(counts["chunks"]), "counts": counts}
        fault_point("vectors-written")
        vector_files.write_state(self.db, state)
        self.db.commit()  # an update is live from here
        fault_point("db-committed")
        self._after_commit(self._compact_if_worth_it)
        manifest = {
            "format_version": FORMAT_VERSION,
            "generation": self.generation,
            "embedder": self.embedder,
            "chunking": self.chunking,
            "counts": counts,
            "faiss": state["faiss"],
            "update": state["update"],
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"previous_generation": self.live} if self.live and not self.in_place else {}),
            **(extra or {}),
        }
        if self.in_place:  # live already: what follows is tidying, and its failure fails no run
            self._after_commit(lambda: write_manifest(self.index_dir, manifest))  # a mirror of the database
            fault_point("manifest-swapped")
            vector_files.remove_unnamed(self.gen_dir, state)
            fault_point("old-vectors-removed")
            self._after_commit(self._close_db)
            self._after_commit(self._remove_unnamed_generations)  # the generation a rebuild replaced
            if release:
                self.close()
            return manifest
        else:
            self._close_db()
            os.rename(self.gen_dir, self.index_dir / self.generation)
            fsync_dir(self.index_dir)
            fault_point("renamed")
            write_manifest(self.index_dir, manifest)
            fault_point("manifest-swapped")
        self._remove_unnamed_generations()
        if release:
            self.close()
        return manifest

    def _after_commit(self, step: Callable[[], object]) -> None:
        """A step after an update's commit (compaction, the manifest's mirror, removing what is no longer named):
        a failure of it (a full disk, a file held open) is left to the next write, and the update stays live."""
        try:
            step()
        except (OSError, sqlite3.OperationalError) as exc:
            print(f"warning: the update is in; tidying after it failed and is left to the next run: {exc}",
                  file=sys.stderr)

    def _close_db(self) -> None:
        """Fold the write-ahead log into the database file (a reader still on an older state keeps its part), then
        close."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()

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
        pages free for the next inserts instead. Once this update took the float vectors out of the database
        (_keep_floats_once), the file is compacted too: a cleared column frees no page, and rows appended later
        never fill the ones it left half empty."""
        free, pages = (self.db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("freelist_count", "page_count"))
        if self.floats_dropped or free > VACUUM_FREE_SHARE * pages:
            self.db.execute("VACUUM")

    def abort(self) -> None:
        """Give up: the transaction rolls back with the connection; a new generation's folder is removed, and a
        delta file an update wrote is removed by the next writer (it cannot tell here whether the commit landed)."""
        try:
            self.db.close()
        finally:
            if not self.in_place:
                shutil.rmtree(self.gen_dir, ignore_errors=True)
            self.close()

    def close(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def _write_vectors(self, total: int) -> dict[str, Any]:
        """Write what the new state's FAISS part needs, in the generation's folder, and return that state: a delta
        file of this build's changes; or a new base, when the deltas have grown to COMPACT_SHARE of it, when the
        index changes kind (flat to IVF, a retrain, another codec), and in a new generation. Nothing is written
        when the vectors did not change."""
        state = dict(self.state)
        reusable = faiss_index.reusable(state["faiss"], total, self._threshold(), self.ivf_codec)
        changed = bool(self.removed_rowids or self.added)
        if self.in_place and reusable and not changed:
            return {**state, "ntotal": total}
        update = int(state["update"]) + 1
        rows = len(self.removed_rowids) + len(self.added)
        if self.in_place and reusable and state["delta_rows"] + rows <= vector_files.COMPACT_SHARE * total:
            removed = np.asarray(self.removed_rowids, dtype=np.int64)
            ids = np.asarray([r for r, _ in self.added], dtype=np.int64)
            vectors = self._added_vectors()
            deltas = list(state["deltas"])
            if len(deltas) >= vector_files.MAX_DELTAS:  # fold them into this one
                removed, ids, vectors = vector_files.merge(self.index_dir, self.gen_dir, deltas, removed, ids,
                                                           vectors)
                deltas = []
            name = f"delta-{update:06d}.npz"
            vector_files.write_delta(self.gen_dir / name, removed, ids, vectors)
            state.update(deltas=[*deltas, name], delta_rows=int(state["delta_rows"]) + rows)
        else:
            name = VECTORS if not self.in_place else f"vectors-{update:06d}.faiss"
            index, info, every = self._new_base(total, reusable)
            faiss_index.write(index, self.gen_dir / name)
            self._keep_floats_once(vector_files.wants_sqlite_vectors(info), every)
            state.update(base=name, deltas=[], delta_rows=0, faiss=info, sqlite_vectors=self.sqlite_vectors)
        fsync_dir(self.gen_dir)
        files = vector_files.named(state)
        return {**state, "update": update, "ntotal": total, "max_rowid": self.next_rowid - 1,
                "sizes": {n: (self.gen_dir / n).stat().st_size for n in files},
                "heads": {n: vector_files.head(self.gen_dir / n) for n in files}}

    def _added_vectors(self) -> np.ndarray:
        dim = int(self.embedder["dim"])
        return (np.stack([v for _, v in self.added]).astype(np.float32) if self.added
                else np.zeros((0, dim), dtype=np.float32))

    def _new_base(self, total: int, reusable: bool
                  ) -> tuple[Any, dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
        """The whole FAISS index of this build: the previous one with the changes applied when its kind still
        fits, else built again from every chunk's vector (returned too, as (rowids, vectors))."""
        if self.previous is not None and reusable:
            index = self._previous_index()
            faiss_index.update(index, self.removed_rowids, self.added)
            return index, dict(self.state["faiss"]), None
        ids, vecs = self._all_vectors(int(self.embedder["dim"]))
        return (*faiss_index.build(ids, vecs, int(self.embedder["dim"]), total, self._threshold(), self.nprobe,
                                   self.ivf_codec), (ids, vecs))

    def _threshold(self) -> int:
        """The size above which this commit's FAISS part is IVF. A flat index stays flat at a checkpoint, so that a
        long first build trains its IVF once, on all its vectors, at its end, as a build in one go does."""
        if self._checkpointing and self.state["faiss"].get("type") != "ivf":
            return sys.maxsize
        return self.ann_threshold

    def _previous_index(self) -> Any:
        """The previous state's FAISS index, its deltas applied."""
        assert self.previous is not None
        old_dir = self.gen_dir if self.in_place else self.index_dir / self.previous["generation"]
        return vector_files.load(self.index_dir, old_dir, self.state, int(self.embedder["dim"]))

    def _all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Every chunk's vector, as this build's open transaction sees them: this build's additions, the
        database's floats where it holds them (an IVF index's), and the rest from the previous flat index."""
        rows = self.db.execute("SELECT rowid, vector FROM chunks ORDER BY rowid").fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        vecs = np.zeros((len(rows), dim), dtype=np.float32)
        added = dict(self.added)
        kept = []  # positions of chunks whose vectors only the previous flat index holds
        for i, (rowid, blob) in enumerate(rows):
            if rowid in added:
                vecs[i] = added[rowid]
            elif blob is not None:
                vecs[i] = np.frombuffer(blob, dtype=np.float32)
            else:
                kept.append(i)
        if kept:
            if self.previous is None or self.state["faiss"].get("type") == "ivf":
                raise damaged(self.index_dir, self.db_path, f"{len(kept)} chunks have no vector, in it or in the "
                                                            "vector files")
            try:
                vecs[kept] = self._previous_index().reconstruct_batch(ids[kept])
            except RuntimeError:  # a rowid the flat index does not hold
                raise damaged(self.index_dir, self.gen_dir / self.state["base"],
                              "it lacks vectors of chunks the database holds") from None
        return ids, vecs

    def _keep_floats_once(self, in_sqlite: bool, every: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Move the float vectors to where the new base wants them, in this build's transaction: into the database
        for an IVF base (`every` chunk's, computed when the base was built anew, which a change of kind always
        is), out of it for a flat one, whose files hold them exactly (vector_files)."""
        if in_sqlite and not self.sqlite_vectors:
            assert every is not None, "an index became IVF without being built anew"
            ids, vecs = every
            self.db.executemany("UPDATE chunks SET vector = ? WHERE rowid = ?",
                                ((v.tobytes(), r) for r, v in zip(ids.tolist(), vecs)))
        elif not in_sqlite and self.sqlite_vectors:
            self.db.execute("UPDATE chunks SET vector = NULL WHERE vector IS NOT NULL")
            self.floats_dropped = True  # their pages stay allocated, underfull, until a VACUUM
        self.sqlite_vectors = in_sqlite

    def _remove_unnamed_generations(self) -> None:
        """Remove every generation folder but the one the manifest names and, after a new generation's swap, the
        one before it (a reader may have read the manifest just before the swap; the next update removes it);
        ours, while it is being written, is not there yet."""
        try:
            manifest = read_manifest(self.index_dir)
            named = {manifest.get("generation"), manifest.get("previous_generation")}
        except (IndexNotFoundError, IndexCorruptError):
            named = set()
        # half-written and half-deleted folders first: a `gen-N` is renamed to `gen-N.old` before deletion
        for path in sorted(generation_folders(self.index_dir), key=lambda p: GENERATION.fullmatch(p.name) is not None):
            if path.name not in named:
                remove_generation(path)


_OURS = re.compile(r"gen-\d{6,}(\.tmp|\.old)?")
_OUR_FILES = re.compile(rf"{re.escape(SQLITE)}(-wal|-shm|-journal)?|{vector_files.FILE.pattern}")


def generation_folders(index_dir: Path) -> list[Path]:
    """The generation folders builds wrote in index_dir (live, kept, half-written or half-deleted): named
    gen-NNNNNN, and holding nothing but a generation's files. A folder of the user's that happens to be called
    gen-something (an --index-dir that is their corpus folder) is never taken for one, and so never deleted."""
    found = []
    for path in index_dir.glob("gen-*"):
        try:
            if _OURS.fullmatch(path.name) and path.is_dir() and all(
                    _OUR_FILES.fullmatch(f.name) and f.is_file() for f in path.iterdir()):
                found.append(path)
        except OSError:
            continue
    return found


def next_generation_number(index_dir: Path, live: str | None) -> int:
    """One above every generation on disk (live, kept, orphaned, half-written or half-deleted) and the live one,
    so the new folder never collides with a leftover and no name a reader saw is ever reused."""
    numbers = [int(m.group(1)) for name in [p.name for p in generation_folders(index_dir)] + [live or ""]
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
