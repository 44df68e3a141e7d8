from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag import files, indexing
from rag.api import Pipeline, build_index
from rag.builder import Builder
from rag.config import SAMPLE_CORPUS_DIR, Settings
from rag.corpus import list_articles
from rag.errors import ConfigError, IndexBusyError, IndexMismatchError, IndexNotFoundError, IngestError
from rag.indexing import IndexReport
from rag.ingest import Skipped
from rag.manifest import FORMAT_VERSION, read_manifest
from rag.retrieve import Filters
from rag.store import Store

from .conftest import write_fillers
from .fakes import HashEmbedder


def _store(settings: Settings, embedder: HashEmbedder) -> Store:
    return Store(settings.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)


def test_build_writes_manifest_sqlite_and_vectors(articles_dir: Path, settings: Settings,
                                                  embedder: HashEmbedder) -> None:
    report = build_index(articles_dir, settings=settings, embedder=embedder)
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["embedder"] == {"name": "hash-256", "dim": 256, "documents": "fp32"}
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
    # updates change the first build's generation in place (test_updates.py has the files they write)
    assert {p.name for p in settings.index_dir.glob("gen-*")} == {removal.manifest["generation"]}
    assert "previous_generation" not in removal.manifest
    assert removal.manifest["update"] == update.manifest["update"] + 1 == again.manifest["update"] + 2


def test_manifest_says_how_document_vectors_were_computed(articles_dir: Path, settings: Settings,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    fast = HashEmbedder()
    fast.precision = "bf16"  # type: ignore[attr-defined]
    build_index(articles_dir, settings=settings, embedder=fast)
    assert _manifest(settings)["embedder"]["documents"] == "bf16"
    assert build_index(articles_dir, settings=settings, embedder=HashEmbedder()).chunks_embedded == 0
    assert _manifest(settings)["embedder"]["documents"] == "bf16"  # nothing embedded: the vectors are as they were

    changed = sorted(articles_dir.glob("*.txt"))[0]
    changed.write_text(changed.read_text() + "\n\nThe council confirmed the figure on Tuesday.\n")
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())  # an fp32 machine adds to it
    assert _manifest(settings)["embedder"] == {"name": "hash-256", "dim": 256, "documents": "bf16+fp32"}
    assert main(["info", "--index-dir", str(settings.index_dir)]) == 0
    assert "hash-256 (256 dims, documents: bf16+fp32)" in capsys.readouterr().out
    build_index(articles_dir, settings=settings, embedder=fast, rebuild=True)
    assert _manifest(settings)["embedder"]["documents"] == "bf16"


def _manifest(settings: Settings) -> dict[str, Any]:
    return dict(json.loads((settings.index_dir / "manifest.json").read_text()))


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
                     ann_threshold=10**6, nprobe=8, ivf_codec="sq8")
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


def _many_reports(articles_dir: Path, n: int = 60) -> None:
    for i in range(n):
        (articles_dir / f"gen{i:03d}.txt").write_text(
            f"Report {i}\n\nThe committee number {i} met about topic{i} and budget{i % 7} on day {i}.")


def test_approximate_index_above_threshold(articles_dir: Path, settings: Settings) -> None:
    _many_reports(articles_dir)
    small = settings.replace(ann_threshold=20, ivf_nprobe=256)
    report = build_index(articles_dir, settings=small, embedder=HashEmbedder())
    assert report.manifest["faiss"]["type"] == "ivf" and report.manifest["faiss"]["codec"] == "sq8"
    hits = Pipeline(small, embedder=HashEmbedder()).retrieve("committee topic17 budget3", top_k=3)
    assert hits[0].title == "Report 17"
    (articles_dir / "gen017.txt").unlink()
    (articles_dir / "gen_new.txt").write_text("Report new\n\nThe committee met about topic77 and budget9 at dawn.")
    build_index(articles_dir, settings=small, embedder=HashEmbedder())  # the coded index updated in place
    store = _store(small, HashEmbedder())
    assert store.chunk_count == store.db.execute("SELECT count(*) FROM chunks").fetchone()[0] == store.vectors.ntotal
    assert type(store.vectors.base).__name__ == "IndexIVFScalarQuantizer"
    assert Pipeline(small, embedder=HashEmbedder()).retrieve("committee topic77 budget9", top_k=3)[0].title == \
        "Report new"


def test_uploads_keep_the_live_codec_and_rag_index_recodes(articles_dir: Path, settings: Settings,
                                                            tmp_path: Path) -> None:
    _many_reports(articles_dir)
    flat = settings.replace(ann_threshold=20, ivf_nprobe=256, ivf_codec="flat")
    build_index(articles_dir, settings=flat, embedder=HashEmbedder())
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "memo.txt").write_text("Memo\n\nThe committee met about topic88 in the annex.")
    sq8 = flat.replace(ivf_codec="sq8")
    report, _ = indexing.add_files([upload / "memo.txt"], upload, sq8, HashEmbedder())
    assert report.manifest["faiss"]["codec"] == "flat"  # a chat upload does not re-code the whole index
    assert build_index(articles_dir, settings=sq8, embedder=HashEmbedder(), replace=True  # (the memo's folder)
                       ).manifest["faiss"]["codec"] == "sq8"


def test_ivf_codec_is_a_setting_and_a_change_of_codec_rebuilds(articles_dir: Path, settings: Settings) -> None:
    _many_reports(articles_dir)
    flat = settings.replace(ann_threshold=20, ivf_nprobe=256, ivf_codec="flat")
    assert build_index(articles_dir, settings=flat, embedder=HashEmbedder()).manifest["faiss"]["codec"] == "flat"
    assert type(_store(flat, HashEmbedder()).vectors.base).__name__ == "IndexIVFFlat"
    question = "committee topic41 budget6"
    query = HashEmbedder().embed_query(question)
    exact = dict(_store(flat, HashEmbedder()).search_dense(query, 5))
    # one more article, indexed with the other codec: the whole index is re-coded, not half and half
    (articles_dir / "gen_extra.txt").write_text("Report extra\n\nThe committee met about topic99 on day 99.")
    sq8 = flat.replace(ivf_codec="sq8")
    report = build_index(articles_dir, settings=sq8, embedder=HashEmbedder())
    assert report.manifest["faiss"]["codec"] == "sq8" and report.manifest["counts"]["articles"] == 66
    store = _store(sq8, HashEmbedder())
    assert type(store.vectors.base).__name__ == "IndexIVFScalarQuantizer" and store.vectors.ntotal == store.chunk_count
    coded = dict(store.search_dense(query, 5))
    assert list(coded)[:3] == list(exact)[:3]  # 8-bit codes: the scores move a little, not the order of the best
    assert all(coded[rowid] == pytest.approx(exact[rowid], abs=0.02) for rowid in set(coded) & set(exact))
    allowed = list(exact)[3:5]  # a filter (dates, titles) limits the coded search as it does the exact one
    assert {rowid for rowid, _ in store.search_dense(query, 5, allowed=allowed)} == set(allowed)
    assert Pipeline(sq8, embedder=HashEmbedder()).retrieve(question, top_k=3)[0].title == "Report 41"


def test_an_unknown_ivf_codec_is_one_line(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="ivf_codec='pq4' must be one of sq8, flat"):
        Settings.from_env({"RAG_IVF_CODEC": "pq4"})


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


def test_symlinks_followed_only_inside_the_folder(articles_dir: Path, settings: Settings, tmp_path: Path) -> None:
    target = sorted(articles_dir.glob("*.txt"))[0]
    (articles_dir / "alias.txt").symlink_to(target)  # the same article twice: its id dedupes it
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("Diary entry\n\nA private note kept outside the news folder about the zebra crossing.")
    (articles_dir / "away.txt").symlink_to(elsewhere)
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert [(Path(s.source).name, "outside the indexed folder" in s.reason) for s in report.skipped] == [
        ("away.txt", True)]
    assert report.files_added == 6 and report.manifest["counts"]["articles"] == 5
    store = _store(settings, HashEmbedder())
    assert "Diary entry" not in {a[1] for a in store.list_articles()}
    again = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert again.chunks_embedded == 0 and again.files_unchanged == 6
    (articles_dir / "alias.txt").unlink()
    removal = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert removal.files_removed == 1 and removal.articles_removed == 0
    assert removal.manifest["counts"]["articles"] == 5


def test_files_that_vanish_or_cannot_be_opened_are_named(articles_dir: Path, settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("gone-early.txt", "gone-late.txt", "locked.txt"):
        (articles_dir / name).write_text(f"{name} title\n\nAn article that will not be read, called {name}.")
    listed, read = indexing.iter_files, indexing.read_file

    def list_then_delete(root: Path) -> Iterator[Path]:
        for path in listed(root):
            if path.name == "gone-early.txt":
                path.unlink()  # listed, then deleted before it is looked at
            yield path

    def delete_then_read(path: Path, **kwargs: Any) -> Any:
        if path.name == "gone-late.txt":
            path.unlink()  # looked at, then deleted before it is read
        return read(path, **kwargs)

    def deny(name: Any, *args: Any, **kwargs: Any) -> Any:  # root reads anything, so chmod 000 cannot test this
        if Path(name).name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(name))
        return open(name, *args, **kwargs)

    monkeypatch.setattr(indexing, "iter_files", list_then_delete)
    monkeypatch.setattr(indexing, "read_file", delete_then_read)
    monkeypatch.setattr(files, "open", deny, raising=False)
    (articles_dir / "folder.txt").mkdir()
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert set(reasons) == {"gone-early.txt", "gone-late.txt", "locked.txt", "folder.txt"}
    assert reasons["gone-early.txt"] == reasons["gone-late.txt"] == "no longer exists (deleted or moved while indexing)"
    assert reasons["locked.txt"].startswith("permission denied")
    assert reasons["folder.txt"].startswith("is a folder")
    assert report.manifest["counts"]["articles"] == 5


def test_unusable_jsonl_lines_are_counted_and_named(articles_dir: Path, settings: Settings) -> None:
    bad = ["not json", "[1, 2]", '"a string"', '{"title": "No body"}', '{"text": 7}', '{"body": false}',
           '{"text": ""}', '{"text": "Advertisement"}']
    good = [json.dumps({"title": f"Market day {i}", "text": f"Stall holders sold {i} tonnes of apples on Sunday."})
            for i in (1, 2)]
    (articles_dir / "feed.jsonl").write_text("\n".join(bad[:4] + good[:1] + bad[4:] + good[1:]) + "\n")
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert report.manifest["counts"]["articles"] == 7 and not report.skipped
    assert [s.source.rsplit("/", 1)[1] for s in report.skipped_lines] == [
        f"feed.jsonl:{n}" for n in (1, 2, 3, 4, 6, 7, 8, 9)]
    summary = report.summary()
    assert "0 skipped; 8 lines of .jsonl files skipped" in summary.splitlines()[1]
    assert "feed.jsonl:3: a JSON string, not an object" in summary
    assert "feed.jsonl:7: \"body\" is a JSON boolean, not a string" in summary
    assert len(report.to_dict()["skipped_lines"]) == 8
    assert not build_index(articles_dir, settings=settings, embedder=HashEmbedder()).skipped_lines  # not re-read


def test_summary_names_at_most_fifty_skipped_lines(tmp_path: Path) -> None:
    report = IndexReport(index_dir=tmp_path, skipped_lines=[Skipped(f"f.jsonl:{n}", "invalid JSON") for n in range(60)])
    lines = report.summary().splitlines()
    assert "60 lines of .jsonl files skipped" in lines[1]
    assert sum(line.startswith("skipped f.jsonl:") for line in lines) == 50
    assert lines[-1] == "... and 10 more skipped .jsonl lines (rag index --json lists them all)"
    assert len(report.to_dict()["skipped_lines"]) == 60


def _term_df(db_path: Path, recount: bool = False) -> dict[str, int]:
    """term_df as the live generation holds it, or recounted from the whole FTS5 index of a copy of it."""
    import shutil
    import sqlite3

    from rag.lexical import count_terms

    if recount:
        copy = db_path.with_name("recount.sqlite")
        shutil.copyfile(db_path, copy)
        db_path = copy
    db = sqlite3.connect(db_path)
    try:
        if recount:
            count_terms(db)
        return dict(db.execute("SELECT term, df FROM term_df"))
    finally:
        db.close()


def _live_db(settings: Settings) -> Path:
    return settings.index_dir / json.loads((settings.index_dir / "manifest.json").read_text())["generation"] / \
        "store.sqlite"


def test_term_counts_follow_the_changed_articles_alone(articles_dir: Path, settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    before = _term_df(_live_db(settings))

    def whole_index(_db: Any) -> None:
        raise AssertionError("an update walked the whole FTS5 index")

    monkeypatch.setattr("rag.builder.count_terms", whole_index)
    first, second = sorted(articles_dir.glob("*.txt"))[:2]
    first.write_text(first.read_text() + "\n\nA quokka crossed the causeway twice, said the harbourmaster.")
    second.unlink()
    (articles_dir / "new.txt").write_text("Quokka census\n\nRangers counted every quokka on the island in May.\n\n"
                                          "护林员在五月统计了岛上的每一只短尾矮袋鼠，数量比去年多。")
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    after = _term_df(_live_db(settings))
    assert after == _term_df(_live_db(settings), recount=True)  # the same as walking the whole index
    assert after["quokka"] == 2 and "quokka" not in before and after["袋"] == 1
    assert set(before) - set(after)  # terms only the deleted article held are gone, not left at 0
    (articles_dir / "new.txt").unlink()
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert _term_df(_live_db(settings))["quokka"] == 1 == _term_df(_live_db(settings), recount=True)["quokka"]


def test_a_small_removal_keeps_free_pages_a_large_one_compacts(articles_dir: Path, settings: Settings) -> None:
    import sqlite3

    write_fillers(articles_dir, 40)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())

    def free_share() -> float:
        db = sqlite3.connect(_live_db(settings))
        free, pages = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("freelist_count", "page_count"))
        db.close()
        return free / pages

    (articles_dir / "filler00.txt").unlink()
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert 0 < free_share() < 0.25  # one article's pages are left free for the next inserts, not compacted
    for i in range(1, 30):
        (articles_dir / f"filler{i:02d}.txt").unlink()
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert free_share() == 0  # most of the file was free: rewritten
    store = _store(settings, HashEmbedder())
    assert store.chunk_count == report.manifest["counts"]["chunks"]


def test_indexing_another_path_never_drops_articles_whose_files_still_exist(
        articles_dir: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag index` with no path updates the index from the folder it was built from (`make run` on an index of
    one's own news must not swap it for the sample corpus), and a run over another path (a single new file) is
    refused, changing nothing, rather than dropping the articles of files that still exist; --replace allows it."""
    from rag.cli import main

    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    before = _manifest(settings)
    extra = sorted(articles_dir.glob("*.txt"))[0]
    extra.write_text(extra.read_text() + "\n\nThe council confirmed the figure on Tuesday.\n")
    again = build_index(settings=settings, embedder=HashEmbedder())  # no path: the index's own folder
    assert again.files_updated == 1 and again.files_removed == 0
    assert _manifest(settings)["counts"] == before["counts"] and _manifest(settings)["root"] == str(articles_dir)

    note = tmp_path / "elsewhere" / "ferry-note.txt"
    note.parent.mkdir()
    note.write_text("Ferry timetable changes\n\nThe island ferry will leave at seven from the new quay.\n")
    kept = _manifest(settings)
    with pytest.raises(IndexMismatchError, match=r"also holds 5 files from .*articles.*--replace"):
        build_index(note, settings=settings, embedder=HashEmbedder())
    assert _manifest(settings) == kept  # nothing changed, not even an update number
    assert Store(settings.index_dir).chunk_count == kept["counts"]["chunks"]

    monkeypatch.setattr("rag.api.load_embedder", lambda _settings: HashEmbedder())
    for name, value in (("EMBED_MODEL", "hash"), ("CHUNK_TOKENS", "60"), ("CHUNK_OVERLAP_TOKENS", "12"),
                        ("CACHE_DIR", str(settings.cache_dir))):  # the settings of the fixture, for the command
        monkeypatch.setenv(f"RAG_{name}", value)
    assert main(["index", str(note), "--index-dir", str(settings.index_dir)]) == 1
    assert "nothing was changed" in capsys.readouterr().err

    replaced = build_index(note, settings=settings, embedder=HashEmbedder(), replace=True)
    assert replaced.files_removed == 5 and replaced.manifest["counts"]["articles"] == 1

    extra.unlink()  # a file gone from the disk leaves the index whatever path is indexed: nothing is lost
    build_index(articles_dir, settings=settings, embedder=HashEmbedder(), replace=True)
    assert _manifest(settings)["counts"]["articles"] == 4

    articles_dir.rename(tmp_path / "unmounted")  # its folder gone: no path does not mean the sample corpus then
    with pytest.raises(IngestError, match="was built from .*articles, which is not there now"):
        build_index(settings=settings, embedder=HashEmbedder())
    assert _manifest(settings)["counts"]["articles"] == 4

    moved = json.loads((settings.index_dir / "manifest.json").read_text())  # a checkout moved since `make run`
    moved["root"] = str(tmp_path / "old-checkout" / "rag" / "sample_corpus")
    (settings.index_dir / "manifest.json").write_text(json.dumps(moved))
    assert build_index(settings=settings, embedder=HashEmbedder()).manifest["root"] == str(
        SAMPLE_CORPUS_DIR.resolve())


def test_an_index_folder_never_deletes_folders_it_did_not_write(articles_dir: Path, settings: Settings,
                                                                 tmp_path: Path) -> None:
    """Only generation folders a build wrote (gen-NNNNNN holding a generation's files) are ever cleaned up: an
    --index-dir that is the user's own folder keeps its gen-ai/ and gen-2024/ and whatever they hold."""
    own = tmp_path / "news"
    (own / "gen-ai").mkdir(parents=True)
    (own / "gen-ai" / "notes.doc").write_text("my notes")
    (own / "gen-2024").mkdir()
    (own / "gen-123456").mkdir()
    (own / "gen-123456" / "draft.txt").write_text("a draft")
    for article in articles_dir.glob("*.txt"):
        (own / article.name).write_text(article.read_text())
    at_home = settings.replace(index_dir=own)
    build_index(own, settings=at_home, embedder=HashEmbedder())
    build_index(own, settings=at_home, embedder=HashEmbedder(), rebuild=True)  # a swap, then its cleanup
    build_index(own, settings=at_home, embedder=HashEmbedder(), rebuild=True)
    assert (own / "gen-ai" / "notes.doc").read_text() == "my notes" and (own / "gen-2024").is_dir()
    assert (own / "gen-123456" / "draft.txt").read_text() == "a draft"
    assert _manifest(at_home)["generation"] == "gen-000003"  # numbered after its own generations only


def test_rebuild_with_no_path_rebuilds_the_folder_the_index_was_built_from(articles_dir: Path,
                                                                           settings: Settings) -> None:
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    rebuilt = build_index(settings=settings, embedder=HashEmbedder(), rebuild=True)
    assert rebuilt.manifest["root"] == str(articles_dir.resolve()) and rebuilt.manifest["counts"]["articles"] == 5


def test_wrong_index_folders_and_filter_dates_are_one_line_errors(tmp_path: Path, articles_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main
    from rag.corpus import add_articles
    from rag.errors import QueryError

    a_file = tmp_path / "afile"
    a_file.write_text("not an index")
    for command in (["index", str(articles_dir)], ["info"], ["search", "harbour"]):
        assert main([*command, "--index-dir", str(a_file)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file, not an index folder" in err, err
    with pytest.raises(IndexNotFoundError, match="is a file"):
        add_articles(text="A pasted note about the ferry.", settings=Settings(index_dir=a_file))
    assert a_file.read_text() == "not an index"
    for bad in ("2021/01/01", "banana"):
        with pytest.raises(QueryError, match="is not a date like"):
            Filters(date_from=bad)
        with pytest.raises(QueryError, match="date to"):
            Filters(date_to=bad)
    assert Filters(date_from=" 2021-01-01 ").date_from == "2021-01-01" and not Filters(date_to="")


def test_add_articles_takes_one_path_as_one_file(articles_dir: Path, settings: Settings) -> None:
    from rag.corpus import add_articles

    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    one = sorted(articles_dir.glob("*.txt"))[0]
    report = add_articles(str(one), settings=settings, embedder=HashEmbedder())
    assert not report.rejected and len(report.articles) == 1


def test_the_summary_notes_a_future_date_apart_from_what_was_skipped(tmp_path: Path, settings: Settings) -> None:
    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "tram.md").write_text("---\ntitle: Tram line opens\ndate: 2091-06-01\n---\nThe new tram line opened.\n")
    (corpus / "ferry.txt").write_text("Ferry resumes\n\nMay 2, 2023. The ferry resumed its crossings.\n")
    (corpus / "briefs.jsonl").write_text(json.dumps({"title": "Quay", "date": "2023-02-30", "text": "It opened."})
                                         + "\n")
    report = build_index(corpus, settings=settings, embedder=HashEmbedder())
    assert report.manifest["counts"]["articles"] == 3 and not report.skipped
    assert f"note {corpus.resolve() / 'tram.md'}: dated 2091-06-01, later than today" in report.summary()
    # a .jsonl line is named as a skipped line is: path:line
    assert f"note {corpus.resolve() / 'briefs.jsonl'}:1: its date '2023-02-30' is not a date" in report.summary()
    assert {n["source"] for n in report.to_dict()["notes"]} == {str(corpus.resolve() / "tram.md"),
                                                               f"{corpus.resolve() / 'briefs.jsonl'}:1"}
    again = build_index(corpus, settings=settings, embedder=HashEmbedder())
    assert not again.notes  # said once: an unchanged file is not read again


@pytest.mark.parametrize("files", [{}, {"blank.txt": ""}, {"notes.pdf": "%PDF-1.4"}])
def test_a_new_index_of_a_folder_without_articles_is_refused(tmp_path: Path, settings: Settings,
                                                             files: dict[str, str]) -> None:
    """It 'succeeded' with 0 articles, and fixed the embedder for good, chosen from no language at all."""
    corpus = tmp_path / "news"
    corpus.mkdir()
    for name, text in files.items():
        (corpus / name).write_text(text)
    with pytest.raises(IngestError, match=f"no article could be read from {corpus.resolve()}.*nothing was indexed"):
        build_index(corpus, settings=settings, embedder=None)
    assert not (settings.index_dir / "manifest.json").exists()
    assert not list(settings.index_dir.glob("gen-*"))


def test_an_update_may_still_empty_an_index(tmp_path: Path, settings: Settings) -> None:
    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "ferry.txt").write_text("Ferry resumes\n\nThe ferry resumed its crossings.\n")
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    (corpus / "ferry.txt").unlink()
    assert build_index(corpus, settings=settings, embedder=HashEmbedder()).manifest["counts"]["articles"] == 0


def test_an_article_whose_file_is_deleted_but_copied_elsewhere_cites_the_copy(tmp_path: Path,
                                                                              settings: Settings) -> None:
    """The article stayed (its copy holds it) but its citations named the deleted file."""
    corpus = tmp_path / "news"
    (corpus / "a").mkdir(parents=True)
    (corpus / "b").mkdir()
    text = "Ferry resumes\n\nMay 2, 2023. The harbour ferry resumed its crossings after the storm.\n"
    (corpus / "a" / "ferry.txt").write_text(text)
    (corpus / "b" / "ferry-copy.txt").write_text(text)
    tram = json.dumps({"title": "Tram opens", "text": "The tram line opened on Monday."})
    (corpus / "a" / "tram.jsonl").write_text(tram + "\n")
    (corpus / "b" / "briefs.jsonl").write_text(json.dumps({"title": "Bridge", "text": "A bridge closed."}) + "\n"
                                               + tram + "\n")
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    sources = {a.title: a.source for a in list_articles(settings)}
    copies = {"Ferry resumes": {str((corpus / d / f).resolve()) for d, f in (("a", "ferry.txt"),
                                                                            ("b", "ferry-copy.txt"))},
              "Tram opens": {str((corpus / "a" / "tram.jsonl").resolve()) + "#L1",
                             str((corpus / "b" / "briefs.jsonl").resolve()) + "#L2"}}
    for title, both in copies.items():
        assert sources[title] in both
        Path(sources[title].split("#L")[0]).unlink()  # the file it cites goes
    report = build_index(corpus, settings=settings, embedder=HashEmbedder())
    assert report.articles_removed == 0 and report.files_removed == 2
    moved = {a.title: a.source for a in list_articles(settings)}
    for title, both in copies.items():
        assert moved[title] == (both - {sources[title]}).pop()
    hit = Pipeline(settings, embedder=HashEmbedder()).retrieve("harbour ferry storm", top_k=1)[0]
    assert hit.source == moved["Ferry resumes"]


def test_moving_sources_reads_each_file_holding_copies_once(tmp_path: Path, settings: Settings,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """It read the surviving copy once per article: 500 lines took 19 s, 2,000 took 224 s."""
    corpus = tmp_path / "news"
    (corpus / "backup").mkdir(parents=True)
    lines = "".join(json.dumps({"title": f"Brief {i}", "text": f"Quay {i} market opens at dawn."}) + "\n"
                    for i in range(40))
    (corpus / "briefs.jsonl").write_text(lines)
    (corpus / "backup" / "briefs.jsonl").write_text(lines)
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    cited = {a.source.split("#L")[0] for a in list_articles(settings)}
    assert len(cited) == 1
    Path(cited.pop()).unlink()
    reads: list[str] = []
    real = indexing.read_file

    def counted(path: Path, **kw: Any) -> Any:
        reads.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(indexing, "read_file", counted)
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    assert len(reads) == 1
    assert {a.source.split("#L")[0] for a in list_articles(settings)} == set(reads)
    assert sorted(a.source for a in list_articles(settings))[:2] == [f"{reads[0]}#L1", f"{reads[0]}#L10"]


def test_an_edited_file_that_no_longer_holds_an_article_gives_its_source_to_the_copy(tmp_path: Path,
                                                                                     settings: Settings) -> None:
    corpus = tmp_path / "news"
    corpus.mkdir()
    text = "Ferry resumes\n\nThe harbour ferry resumed its crossings after the storm.\n"
    (corpus / "a.txt").write_text(text)
    (corpus / "b.txt").write_text(text)
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    cited = Path(list_articles(settings)[0].source)
    cited.write_text("Bridge closes\n\nThe old bridge closed for repairs.\n")
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    ferry = next(a for a in list_articles(settings) if a.title == "Ferry resumes")
    assert ferry.source == str(({corpus / "a.txt", corpus / "b.txt"} - {cited}).pop().resolve())


def test_a_corrected_date_is_taken_without_embedding_again(tmp_path: Path, settings: Settings) -> None:
    """The note said 'fix the date', but the article's id is its title and text, so the fix was never read."""
    corpus = tmp_path / "news"
    corpus.mkdir()
    md = corpus / "tram.md"
    md.write_text("---\ntitle: Tram line opens\ndate: 2091-06-01\n---\nThe new tram line opened.\n")
    assert build_index(corpus, settings=settings, embedder=HashEmbedder()).notes
    md.write_text("---\ntitle: Tram line opens\ndate: 2023-06-01\n---\nThe new tram line opened.\n")
    again = build_index(corpus, settings=settings, embedder=HashEmbedder())
    assert not again.notes and again.chunks_embedded == 0
    assert [a.published for a in list_articles(settings)] == ["2023-06-01"]


def test_an_embedder_chosen_by_the_user_is_never_called_automatic(tmp_path: Path, settings: Settings,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "ferry.txt").write_text("Ferry resumes\n\nThe harbour ferry resumed its crossings.\n")
    build_index(corpus, settings=settings, embedder=HashEmbedder())
    monkeypatch.setattr(indexing, "load_embedder", lambda settings, name=None: HashEmbedder())
    (corpus / "bridge.txt").write_text("Bridge closes\n\nThe old bridge closed for repairs.\n")
    report = build_index(corpus, settings=settings)  # settings leave the choice to the corpus
    assert report.embedder_note == "the one the index was built with"
    assert "automatically" not in json.dumps(read_manifest(settings.index_dir))
