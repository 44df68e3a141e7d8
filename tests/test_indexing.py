from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rag.api import Pipeline, build_index
from rag.builder import Builder
from rag.config import Settings
from rag.errors import IndexBusyError, IndexMismatchError, IndexNotFoundError, IngestError
from rag.manifest import FORMAT_VERSION
from rag.retrieve import Filters
from rag.store import Store

from .fakes import HashEmbedder


def _store(settings: Settings, embedder: HashEmbedder) -> Store:
    return Store(settings.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)


def test_build_writes_manifest_sqlite_and_vectors(articles_dir: Path, settings: Settings,
                                                  embedder: HashEmbedder) -> None:
    report = build_index(articles_dir, settings=settings, embedder=embedder)
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["embedder"] == {"name": "hash-256", "dim": 256}
    assert manifest["chunking"]["chunk_tokens"] == 60
    assert manifest["counts"]["articles"] == 5 and manifest["counts"]["files"] == 5
    assert manifest["counts"]["chunks"] == report.chunks_embedded == embedder.embedded
    gen = settings.index_dir / manifest["generation"]
    assert (gen / "store.sqlite").is_file() and (gen / "vectors.faiss").is_file()
    assert report.files_added == 5 and not report.skipped
    store = _store(settings, embedder)
    assert store.chunk_count == manifest["counts"]["chunks"]
    # every stored chunk's offsets reproduce its text inside the stored article
    for record in store.records(range(1, store.chunk_count + 1)).values():
        article = store.article(record.chunk.article_id)
        assert article is not None
        assert article.text[record.chunk.start:record.chunk.end] == record.chunk.text
        assert "source site-7" not in record.chunk.text


def test_incremental_runs_touch_only_what_changed(articles_dir: Path, settings: Settings,
                                                  embedder: HashEmbedder) -> None:
    build_index(articles_dir, settings=settings, embedder=embedder)
    first = embedder.embedded

    again = build_index(articles_dir, settings=settings, embedder=embedder)
    assert embedder.embedded == first and again.chunks_embedded == 0
    assert again.files_unchanged == 5 and again.files_added == again.files_updated == again.files_removed == 0

    changed = sorted(articles_dir.glob("*.txt"))[1]
    changed.write_text(changed.read_text() + "\n\nA late correction: the figure was revised upward on Friday.\n")
    update = build_index(articles_dir, settings=settings, embedder=embedder)
    store = _store(settings, embedder)
    new_article = next(a for a in store.list_articles() if a[3] == str(changed.resolve()))
    own_chunks = store.db.execute("SELECT count(*) FROM chunks WHERE article_id = ?", (new_article[0],)).fetchone()[0]
    assert update.files_updated == 1 and update.articles_added == 1 and update.articles_removed == 1
    assert update.chunks_embedded == own_chunks == embedder.embedded - first

    touched = sorted(articles_dir.glob("*.txt"))[2]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    assert build_index(articles_dir, settings=settings, embedder=embedder).chunks_embedded == 0

    deleted = sorted(articles_dir.glob("*.txt"))[0]
    deleted.unlink()
    removal = build_index(articles_dir, settings=settings, embedder=embedder)
    store = _store(settings, embedder)
    assert removal.files_removed == 1 and removal.articles_removed == 1 and removal.chunks_embedded == 0
    assert str(deleted.resolve()) not in {a[3] for a in store.list_articles()}
    assert store.chunk_count == store.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert store.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == store.chunk_count
    # older generations are cleaned up; the one before the live one stays for readers that read the old manifest
    kept = {removal.manifest["generation"], removal.manifest["previous_generation"]}
    assert {p.name for p in settings.index_dir.glob("gen-*")} == kept and len(kept) == 2


def test_failed_run_leaves_previous_index_usable(articles_dir: Path, settings: Settings) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    before = (settings.index_dir / "manifest.json").read_text()
    (articles_dir / "new.txt").write_text("Brand new article\n\nA comet was seen over the northern sky tonight.")

    class Exploding(HashEmbedder):
        def embed_documents(self, texts, progress=None):  # type: ignore[override]
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        build_index(articles_dir, settings=settings, embedder=Exploding())
    assert (settings.index_dir / "manifest.json").read_text() == before
    assert not list(settings.index_dir.glob("*.tmp"))
    hits = Pipeline(settings, embedder=HashEmbedder()).retrieve("volcano eruption Iceland")
    assert hits and "comet" not in " ".join(h.chunk.text for h in hits)


def test_second_writer_is_refused(articles_dir: Path, settings: Settings) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    holder = Builder(settings.index_dir, embedder_name="hash-256", embedder_dim=256,
                     chunking=json.loads((settings.index_dir / "manifest.json").read_text())["chunking"],
                     ann_threshold=10**6, nprobe=8)
    try:
        with pytest.raises(IndexBusyError, match="another process"):
            build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    finally:
        holder.abort()


def test_mismatches_fail_with_a_one_line_fix(articles_dir: Path, settings: Settings) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())

    class Other(HashEmbedder):
        name = "other-model"

    with pytest.raises(IndexMismatchError, match="--rebuild") as err:
        build_index(articles_dir, settings=settings, embedder=Other())
    assert "\n" not in str(err.value) and "hash-256" in str(err.value)
    with pytest.raises(IndexMismatchError, match="other-model"):
        Pipeline(settings, embedder=Other()).retrieve("anything")
    with pytest.raises(IndexMismatchError, match="chunk"):
        build_index(articles_dir, settings=settings.replace(chunk_tokens=80), embedder=HashEmbedder())
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (settings.index_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="format version"):
        Pipeline(settings, embedder=HashEmbedder()).retrieve("anything")
    rebuilt = build_index(articles_dir, settings=settings, embedder=Other(), rebuild=True)
    assert rebuilt.manifest["embedder"]["name"] == "other-model"
    assert Pipeline(settings, embedder=Other()).retrieve("chess")


def test_missing_index_and_path(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(IndexNotFoundError, match="rag index"):
        Pipeline(settings, embedder=HashEmbedder()).retrieve("anything")
    with pytest.raises(IngestError, match="does not exist"):
        build_index(tmp_path / "nope", settings=settings, embedder=HashEmbedder())


def test_skipped_files_are_reported_and_do_not_stop_the_run(articles_dir: Path, settings: Settings) -> None:
    (articles_dir / "broken.txt").write_bytes(bytes(range(256)) * 10)
    (articles_dir / "empty.md").write_text("")
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert report.manifest["counts"]["articles"] == 5
    assert {Path(s.source).name for s in report.skipped} == {"broken.txt", "empty.md"}
    assert "skipped" in report.summary() and "broken.txt" in report.summary()


def test_approximate_index_above_threshold(articles_dir: Path, settings: Settings) -> None:
    for i in range(60):
        (articles_dir / f"gen{i:03d}.txt").write_text(
            f"Report {i}\n\nThe committee number {i} met about topic{i} and budget{i % 7} on day {i}.")
    small = settings.replace(ann_threshold=20, ivf_nprobe=256)
    report = build_index(articles_dir, settings=small, embedder=HashEmbedder())
    assert report.manifest["faiss"]["type"] == "ivf"
    hits = Pipeline(small, embedder=HashEmbedder()).retrieve("committee topic17 budget3", top_k=3)
    assert hits[0].title == "Report 17"
    (articles_dir / "gen017.txt").unlink()
    build_index(articles_dir, settings=small, embedder=HashEmbedder())
    store = _store(small, HashEmbedder())
    assert store.chunk_count == store.db.execute("SELECT count(*) FROM chunks").fetchone()[0]


def test_filters_by_title_and_date(articles_dir: Path, settings: Settings) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    pipeline = Pipeline(settings, embedder=HashEmbedder())
    everything = pipeline.store.list_articles()
    dated = [a for a in everything if a[2]]
    assert len(dated) == 5
    target = dated[0]
    hits = pipeline.retrieve("the", filters=Filters(article_ids=(target[0],)), top_k=10)
    assert hits and {h.chunk.article_id for h in hits} == {target[0]}
    word = target[1].split()[0]
    hits = pipeline.retrieve(target[1], filters=Filters(titles=(word,)), top_k=10)
    assert hits and all(word.lower() in h.title.lower() for h in hits)
    hits = pipeline.retrieve(target[1], filters=Filters(date_from=target[2], date_to=target[2]), top_k=10)
    assert hits and all(h.published == target[2] for h in hits)
    assert pipeline.retrieve(target[1], filters=Filters(date_from="2999-01-01")) == ()
