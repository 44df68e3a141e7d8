"""The dense side of an index: an exact (flat) FAISS index, or IVF above a size threshold; how it is read,
built, updated and searched within allowed rowids. FAISS ids are the chunks' SQLite rowids.

Above the threshold the IVF lists hold 8-bit scalar-quantised codes of the vectors (`sq8`, 384 bytes a MiniLM
vector instead of 1,536: 380 MiB at 1M vectors instead of 1,478), and the exact float vectors are kept in SQLite
too, which rebuilds read and the retriever's cosines come from. Below it the flat index is their only copy
(vector_files.py). `RAG_IVF_CODEC=flat` keeps floats in the lists (and so, not the default, keeps them twice).
Recall@10 against exact search at nprobe 16, real MiniLM vectors of rtqa_dev + rgb_en and their questions: 0.988
at their size, 0.978 when replicated to 1M with near-duplicates (flat lists: 0.994, 0.999);
bench/bench_retrieval.py --real-vectors, README "Speed".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import check_ivf_codec
from .manifest import damaged


def read_vectors(index_dir: Path, path: Path, manifest: dict[str, Any]) -> Any:
    """The FAISS index at path, checked against the manifest's chunk count and embedder dims."""
    import faiss

    try:
        index = faiss.read_index(str(path))
    except (RuntimeError, MemoryError) as exc:
        raise damaged(index_dir, path, str(exc)) from None
    chunks, dim = manifest.get("counts", {}).get("chunks"), manifest.get("embedder", {}).get("dim")
    if (chunks is not None and index.ntotal != chunks) or (dim is not None and index.d != dim):
        raise damaged(index_dir, path, f"it holds {index.ntotal} vectors of {index.d} dims; the manifest says "
                                       f"{chunks} of {dim}")
    return index


def search(index: Any, info: dict[str, Any], query: np.ndarray, top_n: int,
           allowed: Sequence[int] | None = None, hidden: np.ndarray | None = None) -> list[tuple[int, float]]:
    """(chunk rowid, cosine) of the nearest chunks, optionally only among `allowed` rowids and never `hidden` ones
    (those a later delta removed: the index itself is shared and never changed, vector_files.Vectors)."""
    import faiss

    if index.ntotal == 0 or (allowed is not None and not allowed):
        return []
    hidden = np.zeros(0, dtype=np.int64) if hidden is None else hidden
    selector: Any = None
    if allowed is not None:
        ids = np.asarray(allowed, dtype=np.int64)
        selector = faiss.IDSelectorBatch(ids[~np.isin(ids, hidden)] if len(hidden) else ids)
    elif len(hidden):
        hidden_ids = faiss.IDSelectorBatch(np.asarray(hidden, dtype=np.int64))
        selector = faiss.IDSelectorNot(hidden_ids)  # (it does not own hidden_ids, which stays alive till the end)
    ivf = info.get("type") == "ivf"
    params = None
    if selector is not None or ivf:
        # (faiss's SWIG wrappers take these keywords; its type stubs do not list them)
        params = (faiss.SearchParametersIVF(sel=selector, nprobe=int(info.get("nprobe", 16)))  # type: ignore[call-arg]
                  if ivf else faiss.SearchParameters(sel=selector))  # type: ignore[call-arg]
    scores, found = index.search(np.asarray(query, dtype=np.float32).reshape(1, -1),
                                 min(top_n, index.ntotal), params=params)
    return [(int(i), float(s)) for i, s in zip(found[0], scores[0]) if i >= 0]


def ivf_codec(info: dict[str, Any]) -> str:
    """How an IVF index's lists hold vectors (indexes written before codecs were recorded hold floats)."""
    return str(info.get("codec", "flat"))


def reusable(old_info: dict[str, Any], total: int, ann_threshold: int, codec: str) -> bool:
    """Can the previous index be updated in place? When its kind still fits (and an IVF was trained on at
    least a quarter of today's vectors, with the codec asked for); otherwise it is rebuilt from the exact vectors
    (SQLite's, or the previous flat index's: builder.Builder._all_vectors)."""
    want_ivf = total > ann_threshold
    trained_n = int(old_info.get("trained_n", 0))
    if (old_info.get("type") == "ivf") != want_ivf:
        return False
    return not want_ivf or (total <= 4 * trained_n and ivf_codec(old_info) == codec)


def update(index: Any, removed_rowids: Sequence[int], added: Sequence[tuple[int, np.ndarray]]) -> None:
    if removed_rowids:
        index.remove_ids(np.asarray(removed_rowids, dtype=np.int64))
    if added:
        index.add_with_ids(np.stack([v for _, v in added]).astype(np.float32),
                           np.asarray([r for r, _ in added], dtype=np.int64))


def build(ids: np.ndarray, vecs: np.ndarray, dim: int, total: int, ann_threshold: int,
          nprobe: int, codec: str, nlist: int | None = None) -> tuple[Any, dict[str, Any]]:
    """A new index of the vectors (flat, or IVF above ann_threshold, its lists coded by `codec`) and its
    manifest entry. nlist: IVF lists (default: the rule below; bench_retrieval.py tries others)."""
    import faiss

    check_ivf_codec(codec)
    index: Any
    if total > ann_threshold:
        # nlist ≈ 4·√N: at 1M chunks 4000 lists; nprobe 16: recall@10 0.978 (sq8) / 0.999 (flat) in 0.4 / 0.5 ms
        # (and at least 39 training points per list, which k-means needs)
        nlist = nlist or int(max(1, min(65536, 4 * np.sqrt(total), total // 39)))
        quantizer = faiss.IndexFlatIP(dim)
        if codec == "sq8":  # codes of each vector's residual to its list's centroid, 8 bits a dimension
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vecs[np.random.default_rng(0).choice(len(vecs), min(len(vecs), nlist * 40), replace=False)]
        index.train(sample)
        info: dict[str, Any] = {"type": "ivf", "codec": codec, "nlist": nlist, "nprobe": nprobe,
                                "trained_n": total}
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        info = {"type": "flat"}
    if len(ids):
        index.add_with_ids(vecs, ids)
    return index, info


def write(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))
    with open(path, "rb+") as fh:  # on disk before a commit names it (a power cut, not only a kill)
        os.fsync(fh.fileno())
