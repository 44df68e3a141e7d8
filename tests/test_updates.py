"""Updates that cost what changed: an update writes its rows into the live database and its vectors into a small
delta file, never a copy of the index, and the index it leaves searches exactly as one built from scratch."""

from __future__ import annotations

import gc
import json
import sqlite3
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

from rag import vector_files
from rag.api import Pipeline, build_index
from rag.config import Settings
from rag.retrieve import retrieve
from rag.store import Store

from .fakes import HashEmbedder

QUESTIONS = ["volcano eruption near the town", "harbour board ferries and cranes", "museum paintings stolen",
             "rice harvest rain", "bridge opening traffic"]


def _write_harbour(corpus: Path, i: int, extra: str = "") -> Path:
    path = corpus / f"harbour{i:02d}.txt"
    path.write_text(f"Harbour report {i}\n\nThe harbour board number {i} met about ferries{i} and cranes on day "
                    f"{i}. {extra}")
    return path


def _found(store: Store) -> list[list[tuple[float, str]]]:
    """What dense and lexical search find for each question, as (score, chunk id), ties in id order (rowids, which
    break ties inside FAISS and FTS5, differ between indexes)."""
    embedder = HashEmbedder()
    found = []
    for q in QUESTIONS:
        for hits in (store.search_dense(embedder.embed_query(q), 8), store.search_lexical(q, 8)):
            records = store.records([r for r, _ in hits])
            ranked = sorted((-round(score, 4), records[r].chunk.id) for r, score in hits)
            found.append([h for h in ranked if len(ranked) < 8 or h[0] < ranked[-1][0]])  # not ties at the cut
    return found


def _same_as_a_fresh_build(corpus: Path, settings: Settings, tmp_path: Path) -> None:
    fresh = settings.replace(index_dir=tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}")
    build_index(corpus, settings=fresh, embedder=HashEmbedder())
    updated, clean = Store(settings.index_dir), Store(fresh.index_dir)
    assert updated.chunk_count == clean.chunk_count
    assert _found(updated) == _found(clean)


def _gen(settings: Settings) -> Path:
    return settings.index_dir / json.loads((settings.index_dir / "manifest.json").read_text())["generation"]


def _vector_files(settings: Settings) -> set[str]:
    return {p.name for p in _gen(settings).iterdir() if not p.name.startswith("store.sqlite")}


def test_an_update_writes_a_delta_of_what_changed_and_never_copies_the_database(
        articles_dir: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)  # deltas only, however big the change
    first = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    db_inode = (_gen(settings) / "store.sqlite").stat().st_ino
    changed = sorted(articles_dir.glob("*.txt"))[1]
    old_chunks = Store(settings.index_dir).db.execute(
        "SELECT count(*) FROM chunks c JOIN articles a ON a.id = c.article_id WHERE a.source = ?",
        (str(changed.resolve()),)).fetchone()[0]
    changed.write_text(changed.read_text() + "\n\nA late correction: the figure was revised upward on Friday.\n")

    update = build_index(articles_dir, settings=settings, embedder=HashEmbedder())

    assert update.manifest["generation"] == first.manifest["generation"]
    assert (_gen(settings) / "store.sqlite").stat().st_ino == db_inode  # changed in place, not copied
    name = f"delta-{update.manifest['update']:06d}.npz"
    assert _vector_files(settings) == {"vectors.faiss", name}
    with np.load(_gen(settings) / name) as delta:  # the changed article's chunks, out and in again: nothing else
        assert len(delta["removed"]) == old_chunks and len(delta["ids"]) == update.chunks_embedded > 0
        assert delta["vectors"].shape == (update.chunks_embedded, HashEmbedder.dim)
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)

    for i in range(3):  # more updates add more deltas; removing a file is a delta of removals alone
        _write_harbour(articles_dir, i)
        build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    sorted(articles_dir.glob("*.txt"))[0].unlink()
    removal = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    with np.load(_gen(settings) / f"delta-{removal.manifest['update']:06d}.npz") as delta:
        assert len(delta["removed"]) > 0 and len(delta["ids"]) == 0
    assert len(_vector_files(settings)) == 6
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)

    nothing = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert nothing.manifest["update"] == removal.manifest["update"] and len(_vector_files(settings)) == 6


def test_deltas_fold_into_a_new_base_or_into_one_delta(articles_dir: Path, settings: Settings, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)
    monkeypatch.setattr("rag.vector_files.MAX_DELTAS", 2)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    counts = []
    for i in range(5):
        _write_harbour(articles_dir, i)
        if i == 3:
            (articles_dir / "harbour01.txt").unlink()  # an addition of an earlier delta, removed by a later one
        build_index(articles_dir, settings=settings, embedder=HashEmbedder())
        counts.append(sum(name.startswith("delta-") for name in _vector_files(settings)))
    assert counts == [1, 2, 1, 2, 1]  # the third delta folds the two before it in
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)

    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 0.1)  # the deltas now outweigh a tenth of the base
    _write_harbour(articles_dir, 9)
    compacted = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert _vector_files(settings) == {f"vectors-{compacted.manifest['update']:06d}.faiss"}
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)


def test_reopening_after_an_update_reads_only_its_delta(articles_dir: Path, settings: Settings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat reopens its store after every update: the FAISS base, which an update never changes, is shared
    with the store still open instead of read again (at 1M chunks hundreds of MiB, held twice meanwhile); only a
    compaction's new base is read. A base no store holds any more is let go."""
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    first = Store(settings.index_dir)
    reads: list[Path] = []
    real_read = vector_files.faiss_index.read_vectors

    def counted(index_dir: Path, path: Path, manifest: dict[str, object]) -> object:
        reads.append(path)
        return real_read(index_dir, path, manifest)

    monkeypatch.setattr(vector_files.faiss_index, "read_vectors", counted)
    _write_harbour(articles_dir, 1)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert first.is_stale()

    second = Store(settings.index_dir)
    assert reads == [] and second.vectors.base is first.vectors.base
    assert second.chunk_count == first.chunk_count + 1  # the added harbour chunk is searched beside the base
    found = second.records([r for r, _ in second.search_dense(HashEmbedder().embed_query("harbour board ferries1"), 1)])
    assert [rec.chunk.article_id for rec in found.values()] == [
        second.db.execute("SELECT id FROM articles WHERE title = 'Harbour report 1'").fetchone()[0]]
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)

    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 0.0)  # the next update writes a new base
    _write_harbour(articles_dir, 2)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    reads.clear()
    third = Store(settings.index_dir)
    assert reads == [_gen(settings) / third.state["base"]] and third.vectors.base is not first.vectors.base
    assert not third.state["deltas"]
    old_base = weakref.ref(first.vectors.base)
    for store in (first, second):
        store.close()
    del first, second, store
    gc.collect()
    assert old_base() is None  # no store holds the old base: its memory is free
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)


def _floats_in_database(settings: Settings) -> int:
    db = sqlite3.connect(_gen(settings) / "store.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM chunks WHERE vector IS NOT NULL").fetchone()[0])
    finally:
        db.close()


def _vectors_by_chunk(settings: Settings) -> dict[str, np.ndarray]:
    """Every chunk's exact vector as a store reads it, by chunk id (rowids differ between indexes)."""
    store = Store(settings.index_dir)
    rows = store.db.execute("SELECT rowid, id FROM chunks ORDER BY rowid").fetchall()
    vectors = store.chunk_vectors([r for r, _ in rows])
    store.close()
    return {chunk_id: vec for (_, chunk_id), vec in zip(rows, vectors)}


def _same_vectors(now: dict[str, np.ndarray], then: dict[str, np.ndarray]) -> None:
    assert now and set(now) <= set(then)
    for chunk_id, vec in now.items():
        np.testing.assert_array_equal(vec, then[chunk_id])


def test_float_vectors_are_stored_once(articles_dir: Path, settings: Settings, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the IVF threshold the flat FAISS files are the only copy of the exact vectors; above it the database
    holds them too (the IVF codes are lossy). Crossing the threshold either way moves them, bit for bit."""
    for i in range(24):
        _write_harbour(articles_dir, i)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    flat = _vectors_by_chunk(settings)
    assert _floats_in_database(settings) == 0 and Store(settings.index_dir).state["faiss"]["type"] == "flat"
    assert all(vec.any() for vec in flat.values())

    ivf = settings.replace(ann_threshold=20, ivf_nprobe=256, ivf_codec="flat")  # the next update crosses into IVF
    _write_harbour(articles_dir, 99)
    build_index(articles_dir, settings=ivf, embedder=HashEmbedder())
    store = Store(settings.index_dir)
    assert store.state["faiss"]["type"] == "ivf" and _floats_in_database(settings) == store.chunk_count
    crossed = _vectors_by_chunk(settings)  # read from the database now
    _same_vectors({k: v for k, v in crossed.items() if k in flat}, flat)
    _same_as_a_fresh_build(articles_dir, ivf, tmp_path)  # (float lists, all probed: exact)

    for i in range(12):  # and back below it: the database lets its copy go
        (articles_dir / f"harbour{i:02d}.txt").unlink()
    build_index(articles_dir, settings=settings.replace(ann_threshold=10**6), embedder=HashEmbedder())
    assert Store(settings.index_dir).state["faiss"]["type"] == "flat" and _floats_in_database(settings) == 0
    _same_vectors(_vectors_by_chunk(settings), crossed)
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)


def test_an_index_holding_floats_twice_lets_the_database_copy_go_at_its_next_new_base(
        articles_dir: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Indexes written before floats were kept once hold them in the database and in the flat files, and say
    nothing about it in their state. They are read as they are; an update that writes a delta keeps that form
    (its cost stays that of what changed), and the next new base drops the database's copy."""
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    flat = _vectors_by_chunk(settings)
    db = sqlite3.connect(_gen(settings) / "store.sqlite")  # as the previous code wrote it
    ids = dict(db.execute("SELECT id, rowid FROM chunks"))
    db.executemany("UPDATE chunks SET vector = ? WHERE rowid = ?", [(v.tobytes(), ids[k]) for k, v in flat.items()])
    state = vector_files.read_state(db, {})
    del state["sqlite_vectors"]
    vector_files.write_state(db, state)
    db.commit()
    db.close()
    assert vector_files.sqlite_vectors(Store(settings.index_dir).state)
    _same_vectors(_vectors_by_chunk(settings), flat)

    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)  # a delta
    _write_harbour(articles_dir, 1)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    store = Store(settings.index_dir)
    assert store.state["deltas"] and _floats_in_database(settings) == store.chunk_count
    with_delta = _vectors_by_chunk(settings)
    _same_vectors({k: v for k, v in with_delta.items() if k in flat}, flat)

    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 0.0)  # a new base
    _write_harbour(articles_dir, 2)
    reader = Store(settings.index_dir)  # the chat's store, open across the update
    rowids = dict(reader.db.execute("SELECT id, rowid FROM chunks"))
    size = (_gen(settings) / "store.sqlite").stat().st_size
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert not vector_files.sqlite_vectors(Store(settings.index_dir).state) and _floats_in_database(settings) == 0
    assert (_gen(settings) / "store.sqlite").stat().st_size < size  # the copy's pages went back, not only its bytes
    _same_vectors({k: v for k, v in _vectors_by_chunk(settings).items() if k in with_delta}, with_delta)
    # the store opened before it still reads exact vectors: its flat files, not the column now empty
    kept = [k for k in with_delta if k in rowids]
    _same_vectors(dict(zip(kept, reader.chunk_vectors([rowids[k] for k in kept]))), with_delta)
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)


def test_a_store_opened_before_an_update_skips_what_it_removed(articles_dir: Path, settings: Settings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat's store holds the vectors it opened with while the database moves on: a rowid an update removed
    is skipped, not a KeyError, until the store is reopened (Pipeline.store does that before each question)."""
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    old = Store(settings.index_dir)
    question = "lava fountains volcano eruption"
    before = retrieve(question, old, HashEmbedder(), settings, top_k=3)
    rowid = old.db.execute("SELECT rowid FROM chunks WHERE id = ?", (before[0].chunk.id,)).fetchone()[0]
    opened_with = old.chunk_vectors([rowid])
    gone = next(p for p in articles_dir.glob("*.txt") if p.resolve() == Path(before[0].source))
    gone.unlink()
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())

    assert old.is_stale()
    assert not old.records([rowid])  # gone mid-question: skipped, no KeyError
    # its vectors are the flat files it opened with (the database holds none below the IVF threshold), exact; a
    # rowid they never held gets zeros, which rank last
    np.testing.assert_array_equal(old.chunk_vectors([rowid]), opened_with)
    assert opened_with.any() and not old.chunk_vectors([rowid + 10**6]).any()
    stale = retrieve(question, old, HashEmbedder(), settings, top_k=3)
    assert stale and before[0].chunk.article_id not in {h.chunk.article_id for h in stale}
    assert before[0].chunk.article_id not in {h.chunk.article_id for h in Pipeline(settings, embedder=HashEmbedder())
                                              .retrieve(question, top_k=3)}


def test_rowids_are_never_reused(articles_dir: Path, settings: Settings) -> None:
    """A reader still holding older vectors must never read one chunk's vector as another's."""
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    store = Store(settings.index_dir)
    top, source = store.db.execute("SELECT c.rowid, a.source FROM chunks c JOIN articles a ON a.id = c.article_id "
                                   "ORDER BY c.rowid DESC LIMIT 1").fetchone()
    Path(source).unlink()
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    _write_harbour(articles_dir, 1)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    rowids = [r for (r,) in Store(settings.index_dir).db.execute(
        "SELECT c.rowid FROM chunks c JOIN articles a ON a.id = c.article_id WHERE a.title LIKE 'Harbour%'")]
    assert rowids and min(rowids) > top


def test_an_index_of_the_previous_format_is_read_and_then_brought_up_to_date(
        articles_dir: Path, settings: Settings, tmp_path: Path) -> None:
    """Format 2 kept no vector state in the database and copied the whole generation at each build: such an
    index still opens, and its next build writes it as format 3 once (a new generation) and updates in place after."""
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    manifest_path = settings.index_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    gen = _gen(settings)
    db = sqlite3.connect(gen / "store.sqlite")
    db.execute("DROP TABLE meta")
    db.execute("PRAGMA journal_mode=DELETE")
    db.commit()
    db.close()
    manifest.update(format_version=2, sizes={name: (gen / name).stat().st_size
                                             for name in ("store.sqlite", "vectors.faiss")})
    manifest_path.write_text(json.dumps(manifest))
    legacy = Store(settings.index_dir)
    assert legacy.state["update"] == 0 and _found(legacy)[0]

    _write_harbour(articles_dir, 1)
    upgraded = build_index(articles_dir, settings=settings, embedder=HashEmbedder()).manifest
    assert upgraded["format_version"] == 3 and upgraded["generation"] != manifest["generation"]
    assert upgraded["previous_generation"] == manifest["generation"]
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)
    _write_harbour(articles_dir, 2)
    assert build_index(articles_dir, settings=settings, embedder=HashEmbedder()).manifest["generation"] == \
        upgraded["generation"]
    _same_as_a_fresh_build(articles_dir, settings, tmp_path)


def test_delta_files_read_from_several_threads_at_once(tmp_path: Path) -> None:
    """The chat opens stores in several threads while its indexing thread merges deltas. np.load parses array
    headers with ast, whose depth count CPython 3.11 shares across threads (gh-106905): read at once, with a
    garbage collection in the middle of a parse (forced here: tiny thresholds and a callback that runs Python),
    they failed with "SystemError: AST constructor recursion depth mismatch" in ~10% of reads."""
    import gc
    import threading

    from rag import vector_files

    path = tmp_path / "delta-000001.npz"
    vector_files.write_delta(path, np.arange(3), np.arange(5), np.ones((5, 8), dtype=np.float32))
    errors: list[str] = []

    def read() -> None:
        for _ in range(300):
            try:
                removed, ids, vectors = vector_files.read_delta(tmp_path, path)
                if len(ids) != 5 or vectors.shape != (5, 8):
                    errors.append(f"read {ids} {vectors.shape}")
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    def busy(phase: str, info: dict) -> None:
        sum(range(200))

    old_interval, old_thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(5)
    gc.callbacks.append(busy)
    try:
        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        gc.callbacks.remove(busy)
        gc.set_threshold(*old_thresholds)
        sys.setswitchinterval(old_interval)
    assert not errors, errors[:3]
