"""manifest.json: which generation of an index is live, what built it, and the files it vouches for.

Layout of an index folder:

    manifest.json   which generation is live (and which came before), embedder, chunk settings; replaced
                    atomically. Its counts mirror the live database's after each update
    gen-000007/     the live generation: store.sqlite (articles, chunks, FTS5, files, and in `meta` which
                    vector files are live; WAL mode, updated in place) + vectors.faiss, the FAISS base, and
                    delta-000012.npz files of the vectors added and removed since (vector_files.py)
    gen-000006/     the generation a --rebuild replaced, kept until the next write, so that a reader who read the
                    old manifest can still open it
    .lock           held by the one process that is writing

builder.py writes; store.py reads the live generation.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError

FORMAT_VERSION = 3  # 3: updates in place, vector files named in the database (vector_files.py)
READABLE_FORMATS = (2, 3)  # 2: chunks_fts_cjk, the trigram table for Chinese and Japanese chunks (lexical.py);
# a format-2 index is read as it is and brought to format 3 by its next build (one copy)
MANIFEST = "manifest.json"
SQLITE = "store.sqlite"
VECTORS = "vectors.faiss"
GENERATION = re.compile(r"gen-(\d+)")  # a live generation's folder; with .tmp or .old it is on its way in or out


def fault_point(step: str) -> None:
    """The one test hook: with RAG_FAULT_AT=<step> the process ends here as a kill would, so that
    tests/test_store_reliability.py can stop a build at each step of its commit. Unset, it does nothing."""
    if os.environ.get("RAG_FAULT_AT") == step:
        os._exit(137)


def damaged(index_dir: Path, path: Path, what: str) -> IndexCorruptError:
    """The one-line error for a missing, truncated or garbled file of the index."""
    what = " ".join(what.split())  # FAISS's messages run over several lines
    return IndexCorruptError(f"{path} is damaged: {what[:200]}; rebuild the index: "
                             f"rag index PATH --index-dir {index_dir} --rebuild")


def check_index_dir(index_dir: Path) -> None:
    """An index folder that is a file is no index (IndexNotFoundError), rather than a damaged one."""
    if Path(index_dir).exists() and not Path(index_dir).is_dir():
        raise IndexNotFoundError(f"{index_dir} is a file, not an index folder; give --index-dir (RAG_INDEX_DIR) a "
                                 "folder: a new one, or an index's")


def read_manifest(index_dir: Path) -> dict[str, Any]:
    check_index_dir(index_dir)
    path = Path(index_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexNotFoundError(
            f"no index at {index_dir}; build one with: rag index PATH --index-dir {index_dir}"
        ) from None
    except (OSError, ValueError) as exc:
        raise damaged(Path(index_dir), path, f"unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise damaged(Path(index_dir), path, f"it holds a JSON {type(manifest).__name__}, not an object")
    return manifest


def live_generation(index_dir: Path) -> str | None:
    """The generation the manifest names now, or None when there is no readable manifest."""
    try:
        name = read_manifest(index_dir).get("generation")
    except (IndexNotFoundError, IndexCorruptError):
        return None
    return name if isinstance(name, str) else None


def check_manifest(manifest: dict[str, Any], index_dir: Path, *, embedder_name: str | None = None,
                   embedder_dim: int | None = None) -> None:
    """Raise IndexMismatchError when the index was built by another format or embedder."""
    version = manifest.get("format_version")
    if version not in READABLE_FORMATS:
        raise IndexMismatchError(
            f"{index_dir} has index format version {version}; this rag reads version {FORMAT_VERSION}. "
            f"Rebuild it: rag index PATH --index-dir {index_dir} --rebuild"
        )
    path = Path(index_dir) / MANIFEST
    for key in ("embedder", "chunking", "counts", "faiss", "sizes"):
        if not isinstance(manifest.get(key, {}), dict):
            raise damaged(Path(index_dir), path, f"its {key!r} is not an object")
    if not GENERATION.fullmatch(str(manifest.get("generation"))):
        raise damaged(Path(index_dir), path, f"it names no generation folder ({manifest.get('generation')!r})")
    built = manifest.get("embedder", {})
    if (embedder_name and built.get("name") != embedder_name) or (embedder_dim and built.get("dim") != embedder_dim):
        raise IndexMismatchError(
            f"{index_dir} was built with {built.get('name')!r} ({built.get('dim')} dims); settings ask for "
            f"{embedder_name!r}" + (f" ({embedder_dim} dims)" if embedder_dim else "")
            + ". Rebuild with --rebuild, or set RAG_EMBED_MODEL to the model it was built with."
        )


def check_files(index_dir: Path, gen_dir: Path, manifest: dict[str, Any]) -> None:
    """The generation's database is there (and, in a format-2 index, its vectors.faiss, at the sizes the manifest
    recorded): catches deleted, emptied and truncated files without reading them. The vector files of format 3
    are checked against the database's record of them (vector_files.check)."""
    sizes = manifest.get("sizes", {})
    for name in (SQLITE, VECTORS) if manifest.get("format_version") == 2 else (SQLITE,):
        try:
            size = (gen_dir / name).stat().st_size
        except FileNotFoundError:
            raise damaged(index_dir, gen_dir / name, "the file is missing") from None
        if name in sizes and size != sizes[name]:
            raise damaged(index_dir, gen_dir / name, f"it is {size} bytes; the manifest says {sizes[name]}")


def write_manifest(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Replace manifest.json atomically: readers see the old one or the new one, never a mix."""
    path = index_dir / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, indent=2, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    fault_point("manifest-written")
    os.replace(tmp, path)
    fsync_dir(index_dir)


def fsync_dir(path: Path) -> None:
    """Make a rename in path durable. Windows cannot open a folder (os.open raises) and needs no such step."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
