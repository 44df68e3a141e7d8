"""The dense side of a generation on disk: a FAISS base file and the changes written since, as small delta files.

An update writes one delta file with the rowids it removed and the rowids and vectors it added: work in
proportion to what changed. Once the deltas' rows (removals and additions) pass COMPACT_SHARE of the index's
vectors, an update writes a new base with them applied instead (amortised: each changed vector is rewritten about
1 / COMPACT_SHARE times), and once there are more than MAX_DELTAS delta files, it merges them into one.

Which files are live is recorded in the SQLite database itself (table `meta`, key "vectors"), in the same
transaction as the change, so that a database and its vectors are always committed together. A reader reads
that state and the files it names in one snapshot; files no state names (a killed update's, or those a
compaction replaced) are removed by the next writer. Rowids are never reused, so a reader holding older
vectors meets at worst a rowid whose chunk is gone, which it skips (store.Store.records).

Exact float vectors are kept once. While the index is flat they live only in its FAISS files, which are exact,
and the database's `chunks.vector` is NULL. An IVF index's lists hold lossy 8-bit codes, so above the threshold
the database holds the floats too (for retrains, and the retriever's exact cosines). The state's
`sqlite_vectors` says which: absent in a state written before this rule, whose database holds them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import weakref
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import faiss_index
from .manifest import VECTORS, damaged

STATE_KEY = "vectors"
COMPACT_SHARE = 0.10  # delta rows, as a share of the index's vectors, above which an update writes a new base
MAX_DELTAS = 32  # delta files above which an update merges them into one
META_SCHEMA = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
FILE = re.compile(r"(vectors(-\d+)?\.faiss|delta-\d+\.npz)")  # the files this module writes in a generation


# np.load reads each array's header with ast.literal_eval, and CPython 3.11 keeps the AST builder's depth count
# for the whole interpreter: two threads parsing at once (a reader opening the index while the chat's indexing
# thread merges deltas) can fail with "SystemError: AST constructor recursion depth mismatch" (CPython
# gh-106905). Delta files are read one at a time.
_NPZ_LOCK = threading.Lock()
HEAD_BYTES = 4096  # the start of each file, hashed: a garbled header is caught without reading the file


def empty_state() -> dict[str, Any]:
    return {"update": 0, "base": VECTORS, "deltas": [], "delta_rows": 0, "faiss": {}, "sizes": {}, "ntotal": 0,
            "max_rowid": 0, "sqlite_vectors": False}


def legacy_state(manifest: dict[str, Any]) -> dict[str, Any]:
    """The state of a generation written before states were recorded (index format 2): one vectors.faiss,
    counted in the manifest."""
    sizes = manifest.get("sizes", {})
    return {"update": 0, "base": VECTORS, "deltas": [], "delta_rows": 0, "faiss": manifest.get("faiss", {}),
            "sizes": {VECTORS: sizes[VECTORS]} if VECTORS in sizes else {},
            "ntotal": manifest.get("counts", {}).get("chunks"), "max_rowid": 0, "sqlite_vectors": True}


def sqlite_vectors(state: dict[str, Any]) -> bool:
    """Does the database of this state hold each chunk's float vector (an IVF index's), or only its FAISS files
    (a flat index's)?"""
    return bool(state.get("sqlite_vectors", True))


def wants_sqlite_vectors(faiss_info: dict[str, Any]) -> bool:
    """Should a state with this FAISS index keep the float vectors in the database too? Only when the index's
    own copy is not exact."""
    return faiss_info.get("type") == "ivf"


def read_state(db: sqlite3.Connection, manifest: dict[str, Any]) -> dict[str, Any]:
    """The vector files the database names (the legacy state when it has no `meta` table)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (STATE_KEY,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return legacy_state(manifest)
        raise
    if row is None:
        return legacy_state(manifest)
    state = json.loads(row[0])
    if not isinstance(state, dict) or not isinstance(state.get("deltas"), list):
        raise ValueError(f"its vector state is not an object with deltas: {row[0][:80]!r}")
    return state


def write_state(db: sqlite3.Connection, state: dict[str, Any]) -> None:
    """Record the state in the writer's open transaction; it becomes live with the transaction's commit."""
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (STATE_KEY, json.dumps(state)))


def update_number(db: sqlite3.Connection) -> int:
    """The state's update counter (0 for a legacy generation); a cheap read, for staleness checks."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (STATE_KEY,)).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(json.loads(row[0]).get("update", 0)) if row else 0


def named(state: dict[str, Any]) -> set[str]:
    return {state["base"], *state["deltas"]}


def check(index_dir: Path, gen_dir: Path, state: dict[str, Any]) -> dict[str, str]:
    """Every file the state names is there, at its recorded size and with its recorded first bytes: catches
    deleted, emptied, truncated and garbled files without reading them. Returns each file's head()."""
    heads = {}
    for name in [state["base"], *state["deltas"]]:
        try:
            size = (gen_dir / name).stat().st_size
            first = head(gen_dir / name)
        except FileNotFoundError:
            raise damaged(index_dir, gen_dir / name, "the file is missing") from None
        except OSError as exc:
            raise damaged(index_dir, gen_dir / name, f"unreadable ({exc})") from None
        recorded = state.get("sizes", {}).get(name)
        if recorded is not None and size != recorded:
            raise damaged(index_dir, gen_dir / name, f"it is {size} bytes; the index recorded {recorded}")
        recorded = state.get("heads", {}).get(name)
        if recorded is not None and first != recorded:
            raise damaged(index_dir, gen_dir / name, "its first bytes are not those written")
        heads[name] = first
    return heads


def head(path: Path) -> str:
    """A short hash of the file's first HEAD_BYTES."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(HEAD_BYTES)).hexdigest()[:16]


def load(index_dir: Path, gen_dir: Path, state: dict[str, Any], dim: int | None) -> Any:
    """The FAISS index of the state: its base with the deltas applied (their net effect, in one removal and one
    addition), checked against the recorded vector count and the embedder's dims."""
    check(index_dir, gen_dir, state)
    index = faiss_index.read_vectors(index_dir, gen_dir / state["base"], {})
    if state["deltas"]:
        removed, ids, vecs = net_changes(index_dir, gen_dir, state["deltas"])
        faiss_index.update(index, removed.tolist(), list(zip(ids.tolist(), vecs)))
    _check_shape(index_dir, gen_dir, state, int(index.ntotal), int(index.d), dim)
    return index


def _check_shape(index_dir: Path, gen_dir: Path, state: dict[str, Any], ntotal: int, d: int, dim: int | None
                 ) -> None:
    """The vectors of the state with its deltas: as many as the index recorded, of the embedder's dims."""
    recorded = state.get("ntotal")
    if (recorded is not None and ntotal != recorded) or (dim is not None and d != dim):
        raise damaged(index_dir, gen_dir / state["base"], f"it holds {ntotal} vectors of {d} dims with its "
                                                          f"deltas; the index recorded {recorded} of {dim}")


class _Base:
    """A base file as read: a FAISS index that is never changed once read, so that every view of the same file
    shares it (bases are written once under a new name and only ever removed)."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self._ids: np.ndarray | None = None

    def ids(self) -> np.ndarray:
        """The rowids a flat base holds, sorted (read once; a base never changes)."""
        if self._ids is None:
            self._ids = _sorted_ids(self.index)
        return self._ids


def _sorted_ids(index: Any) -> np.ndarray:
    import faiss

    return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))


def _present(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which of ids are in sorted_ids."""
    at = np.searchsorted(sorted_ids, ids)
    return (at < len(sorted_ids)) & (sorted_ids[np.minimum(at, len(sorted_ids) - 1)] == ids) if len(sorted_ids) \
        else np.zeros(len(ids), dtype=bool)


_BASES: weakref.WeakValueDictionary[tuple[Any, ...], _Base] = weakref.WeakValueDictionary()  # held by their views
_BASES_LOCK = threading.Lock()


def _shared_base(index_dir: Path, path: Path, first: str) -> _Base:
    """The base at path, read once for as long as a view holds it: reopening a store after an update reads only
    the new delta files, not the whole base again (at 1M chunks 380 MiB of codes, or 1.5 GiB of floats, held
    twice meanwhile). A file is known by its device, inode, size, modification time and first bytes (`first`,
    its head() as check() read it)."""
    try:
        st = path.stat()
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, first)
    except OSError as exc:  # a compaction removed it since check() (the store then reads the state again)
        raise damaged(index_dir, path, f"unreadable ({exc})") from None
    with _BASES_LOCK:
        base = _BASES.get(key)
        if base is None:
            base = _BASES[key] = _Base(faiss_index.read_vectors(index_dir, path, {}))
        return base


class Vectors:
    """The dense side of one state, read-only: its base (shared with every other view of the same file) searched
    without the rowids the deltas removed, and the vectors the deltas added, searched exactly beside it. The
    results are the same as those of the base with the deltas applied (faiss_index.update); for an IVF base the
    added vectors are searched exactly instead of through its lists."""

    def __init__(self, base: _Base, info: dict[str, Any], hidden: np.ndarray, added: Any | None) -> None:
        self._base, self.info, self.added = base, info, added
        self.hidden = np.asarray(hidden, dtype=np.int64)
        self.ntotal = int(base.index.ntotal) - len(self.hidden) + (int(added.ntotal) if added is not None else 0)
        self._added_ids = _sorted_ids(added) if added is not None else np.zeros(0, dtype=np.int64)
        self.d = int(base.index.d)

    @property
    def base(self) -> Any:
        return self._base.index

    @property
    def exact(self) -> bool:
        """Does this view hold exact vectors (a flat base), which reconstruct() reads?"""
        return self.info.get("type") != "ivf"

    def reconstruct(self, rowids: Sequence[int]) -> np.ndarray:
        """The exact vectors of the given rowids from a flat base and the added vectors, in that order; zeros for a
        rowid this view does not hold (removed by its deltas, or added by an update since), which rank last."""
        assert self.exact, "an IVF base holds codes, not the exact vectors"
        ids = np.asarray(rowids, dtype=np.int64)
        out = np.zeros((len(ids), self.d), dtype=np.float32)
        in_base = _present(ids, self._base.ids())
        if len(self.hidden):
            in_base &= ~np.isin(ids, self.hidden)
        if in_base.any():
            out[in_base] = self.base.reconstruct_batch(ids[in_base])
        if self.added is not None:
            in_added = _present(ids, self._added_ids)
            if in_added.any():
                out[in_added] = self.added.reconstruct_batch(ids[in_added])
        return out

    def search(self, query: np.ndarray, top_n: int, allowed: Sequence[int] | None = None
               ) -> list[tuple[int, float]]:
        """(chunk rowid, cosine) of the nearest chunks, optionally only among `allowed` rowids."""
        if allowed is not None and not allowed:
            return []
        found = faiss_index.search(self.base, self.info, query, top_n, allowed, hidden=self.hidden)
        if self.added is not None:
            found += faiss_index.search(self.added, {"type": "flat"}, query, top_n, allowed)
            found = sorted(found, key=lambda hit: -hit[1])[:top_n]
        return found


def view(index_dir: Path, gen_dir: Path, state: dict[str, Any], dim: int | None) -> Vectors:
    """A read-only view of the state's vectors (Vectors), checked like load()'s, reading only the deltas when
    another view holds the same base."""
    import faiss

    heads = check(index_dir, gen_dir, state)
    base = _shared_base(index_dir, gen_dir / state["base"], heads[state["base"]])
    hidden, added = np.zeros(0, dtype=np.int64), None
    if state["deltas"]:
        hidden, ids, vecs = net_changes(index_dir, gen_dir, state["deltas"])
        if len(ids):
            added = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
            added.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    vectors = Vectors(base, state.get("faiss", {}), hidden, added)
    _check_shape(index_dir, gen_dir, state, vectors.ntotal, vectors.d, dim)
    return vectors


def write_delta(path: Path, removed: np.ndarray, ids: np.ndarray, vectors: np.ndarray) -> int:
    """Write one delta file durably; returns its size. It counts only once a committed state names it."""
    with open(path, "wb") as fh:
        np.savez(fh, removed=np.asarray(removed, dtype=np.int64), ids=np.asarray(ids, dtype=np.int64),
                 vectors=np.asarray(vectors, dtype=np.float32))
        fh.flush()
        os.fsync(fh.fileno())
    return path.stat().st_size


def read_delta(index_dir: Path, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        with _NPZ_LOCK, np.load(path, allow_pickle=False) as data:
            removed, ids, vectors = data["removed"], data["ids"], data["vectors"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise damaged(index_dir, path, f"unreadable ({exc})") from None
    if removed.ndim != 1 or ids.ndim != 1 or vectors.ndim != 2 or len(vectors) != len(ids):
        raise damaged(index_dir, path, f"it holds {ids.shape} ids for vectors of shape {vectors.shape}")
    return removed, ids, vectors


def net_changes(index_dir: Path, gen_dir: Path, deltas: list[str],
                then: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The deltas' changes to their base, in order (and then the changes `then`, not yet in a file), as one set:
    rowids to remove from the base, and rowids with vectors to add (an addition a later delta removed is
    neither)."""
    removed: set[int] = set()
    added: dict[int, np.ndarray] = {}
    changes = [read_delta(index_dir, gen_dir / name) for name in deltas] + ([then] if then is not None else [])
    for gone, ids, vecs in changes:
        for rowid in gone.tolist():
            if added.pop(rowid, None) is None:
                removed.add(rowid)
        added.update(zip(ids.tolist(), vecs))
    ids = np.asarray(sorted(added), dtype=np.int64)
    dim = next(iter(added.values())).shape[0] if added else 0
    vecs = np.stack([added[i] for i in ids.tolist()]) if added else np.zeros((0, dim), dtype=np.float32)
    return np.asarray(sorted(removed), dtype=np.int64), ids, vecs


def merge(index_dir: Path, gen_dir: Path, deltas: list[str], removed: np.ndarray, ids: np.ndarray,
          vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The deltas and one more change, as the contents of one delta file that replaces them."""
    return net_changes(index_dir, gen_dir, deltas, (removed, ids, vectors))


def unnamed_files(gen_dir: Path, state: dict[str, Any]) -> list[Path]:
    """Vector files in the generation that its state does not name: a killed update's, or replaced ones."""
    keep = named(state)
    return [p for p in gen_dir.iterdir() if FILE.fullmatch(p.name) and p.name not in keep]


def remove_unnamed(gen_dir: Path, state: dict[str, Any]) -> None:
    """Best effort: a file a reader holds open (Windows) goes at a later write."""
    for path in unnamed_files(gen_dir, state):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
