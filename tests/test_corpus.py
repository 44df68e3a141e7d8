"""Adding articles from files or pasted text, listing them, removing one: safely, incrementally, and without
losing the corpus folder's articles or the uploaded ones to a later `rag index`."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from rag import (
    IndexBusyError,
    QueryError,
    Settings,
    add_articles,
    build_index,
    list_articles,
    remove_article,
)
from rag.builder import Builder
from rag.indexing import chunking_settings
from rag.retrieve import Filters
from rag.uploads import uploads_dir

from .conftest import ROOT, scripted_pipeline
from .fakes import HashEmbedder

FERRY = ("Ferry line to the lighthouse island reopens\nPublished: 2024-03-14\n\n"
         "The ferry line to Skarvholm lighthouse island reopened on Thursday after a winter of repairs to its pier. "
         "The harbour office said the crossing takes 35 minutes and runs four times a day until October.")
BINARY = bytes(range(256)) * 64


def _tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_an_upload_adds_the_good_file_and_names_the_binary_one(indexed: Settings, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    good = _write(incoming / "ferry.txt", FERRY)
    bad = _write(incoming / "photo.txt", BINARY)
    outside = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(str(indexed.index_dir))}
    messages: list[str] = []
    report = add_articles([good, bad], settings=indexed, embedder=HashEmbedder(), log=messages.append)
    assert [a.title for a in report.articles] == ["Ferry line to the lighthouse island reopens"]
    assert report.articles[0].published == "2024-03-14" and report.articles[0].uploaded
    assert report.articles[0].chunks >= 1 and report.index is not None and report.index.chunks_embedded >= 1
    assert [(r.source, "binary" in r.reason) for r in report.rejected] == [("photo.txt", True)]
    assert any("embedd" in m for m in messages) and any("writing" in m for m in messages)
    # nothing outside the index folder was written; the binary file is not kept
    after = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(str(indexed.index_dir))}
    assert after == outside
    kept = [p.name for p in (indexed.index_dir / "uploads").rglob("*") if p.is_file()]
    assert kept == ["ferry.txt"]
    assert len(list_articles(indexed)) == 6
    # the next question answers from it, with no restart
    pipeline, _ = scripted_pipeline(indexed, "The crossing to Skarvholm takes 35 minutes [1].")
    answer = pipeline.ask("How long does the ferry crossing to Skarvholm lighthouse island take?")
    assert not answer.refused and answer.citations[0].title.startswith("Ferry line")


def test_the_same_pipeline_sees_an_upload_without_a_restart(indexed: Settings, tmp_path: Path) -> None:
    pipeline, _ = scripted_pipeline(indexed, "The crossing takes 35 minutes [1].")
    assert all("Skarvholm" not in h.chunk.text for h in pipeline.retrieve("Skarvholm ferry crossing"))
    add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=indexed, embedder=HashEmbedder())
    answer = pipeline.ask("How long is the Skarvholm ferry crossing?")
    assert "Skarvholm" in answer.hits[0].chunk.text and not answer.refused


def test_pasted_text_with_title_and_date(indexed: Settings) -> None:
    report = add_articles(text="Council approves new cycle bridge.\n\nThe town council voted 9 to 2 for a "
                          "cycle bridge over the Lemmer canal.", title="Cycle bridge vote", published="2024-06-02",
                          settings=indexed, embedder=HashEmbedder())
    assert [(a.title, a.published) for a in report.articles] == [("Cycle bridge vote", "2024-06-02")]
    bad = add_articles(text="Some text.", published="June 2nd", settings=indexed, embedder=HashEmbedder())
    assert bad.index is None and bad.rejected[0].source == "pasted text" and "YYYY-MM-DD" in bad.rejected[0].reason
    empty = add_articles(text="  ", title="Only a title", settings=indexed, embedder=HashEmbedder())
    assert "empty" in empty.rejected[0].reason


def _zip(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def test_a_zip_is_unpacked_safely(indexed: Settings, tmp_path: Path) -> None:
    settings = indexed.replace(max_upload_bytes=1_000_000)
    archive = _zip({"news/ferry.txt": FERRY.encode(), "../escape.txt": b"Climbed out of the archive.",
                    "/etc/absolute.txt": b"An absolute path.", "inner.zip": _zip({"a.txt": b"nested"}),
                    "tool.exe": b"MZ", "__MACOSX/._ferry.txt": b"resource fork", ".hidden.txt": b"hidden",
                    "bomb.txt": b"0" * 2_000_000},
                   symlinks={"link.txt": "/etc/passwd"})
    upload = _write(tmp_path / "incoming" / "batch.zip", archive)
    outside = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(str(indexed.index_dir))}
    report = add_articles([upload], settings=settings, embedder=HashEmbedder())
    assert [a.title for a in report.articles] == ["Ferry line to the lighthouse island reopens"]
    reasons = {r.source: r.reason for r in report.rejected}
    assert set(reasons) == {"batch.zip/../escape.txt", "batch.zip//etc/absolute.txt", "batch.zip/inner.zip",
                            "batch.zip/tool.exe", "batch.zip/bomb.txt", "batch.zip/link.txt"}
    assert "leaves the archive" in reasons["batch.zip/../escape.txt"]
    assert "symbolic link" in reasons["batch.zip/link.txt"] and "inside a .zip" in reasons["batch.zip/inner.zip"]
    assert "1,000,000-byte limit" in reasons["batch.zip/bomb.txt"]
    assert {k: v for k, v in _tree(tmp_path).items() if not k.startswith(str(indexed.index_dir))} == outside
    written = sorted(str(p.relative_to(indexed.index_dir / "uploads")) for p in
                     (indexed.index_dir / "uploads").rglob("*") if p.is_file())
    assert len(written) == 1 and written[0].endswith("news/ferry.txt")


def test_the_upload_limit_and_unsupported_types(indexed: Settings, tmp_path: Path) -> None:
    settings = indexed.replace(max_upload_bytes=300)
    big = _write(tmp_path / "long.txt", FERRY + " More." * 100)
    pdf = _write(tmp_path / "paper.pdf", b"%PDF-1.7")
    report = add_articles([big, pdf], settings=settings, embedder=HashEmbedder())
    reasons = {r.source: r.reason for r in report.rejected}
    assert "300-byte upload limit" in reasons["long.txt"] and "RAG_MAX_UPLOAD_BYTES" in reasons["long.txt"]
    assert "unsupported file type .pdf" in reasons["paper.pdf"]
    assert report.index is None and not (indexed.index_dir / "uploads").exists()
    assert len(list_articles(indexed)) == 5


def test_uploads_survive_rag_index_of_the_corpus_folder(articles_dir: Path, indexed: Settings,
                                                        tmp_path: Path) -> None:
    embedder = HashEmbedder()
    add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=indexed, embedder=embedder)
    assert len(list_articles(indexed)) == 6  # the corpus folder's five stay
    embedded = embedder.embedded
    again = build_index(articles_dir, settings=indexed, embedder=embedder)
    assert len(list_articles(indexed)) == 6 and again.files_removed == 0 and embedder.embedded == embedded
    assert again.manifest["root"] == str(articles_dir.resolve())
    rebuilt = build_index(articles_dir, settings=indexed, embedder=embedder, rebuild=True)
    assert rebuilt.manifest["counts"]["articles"] == 6
    # deleting the uploaded file by hand takes it out at the next run, as for any file of the corpus
    for path in (indexed.index_dir / "uploads").rglob("ferry.txt"):
        path.unlink()
    build_index(articles_dir, settings=indexed, embedder=embedder)
    assert len(list_articles(indexed)) == 5


def test_an_index_built_with_other_chunk_sizes_takes_uploads(indexed: Settings, tmp_path: Path) -> None:
    defaults = indexed.replace(chunk_tokens=200, chunk_overlap_tokens=40)  # as `rag chat` starts without RAG_*
    report = add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=defaults, embedder=HashEmbedder())
    assert report.index is not None and report.index.manifest["chunking"] == chunking_settings(indexed)


def test_articles_are_listed_newest_first_and_searchable(indexed: Settings) -> None:
    articles = list_articles(indexed)
    dates = [a.published or "" for a in articles]
    assert dates == sorted(dates, reverse=True) and all(a.chunks >= 1 and a.language == "en" for a in articles)
    assert [a.title for a in list_articles(indexed, title="MUSEUM")] == [
        "Thieves steal gold coins from a regional history museum"]
    assert len(list_articles(indexed, limit=2)) == 2 and list_articles(indexed, title="100%_") == []


def test_a_removed_article_is_no_longer_cited_and_stays_out(articles_dir: Path, indexed: Settings) -> None:
    museum = list_articles(indexed, title="museum")[0]
    pipeline, _ = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].", "x [1].")
    assert pipeline.ask("What did thieves steal from the history museum?").citations[0].article_id == museum.id
    removed = remove_article(museum.id, settings=indexed)
    assert removed.title == museum.title and len(list_articles(indexed)) == 4
    assert museum.id not in {h.chunk.article_id for h in pipeline.retrieve("thieves history museum gold coins")}
    with pytest.raises(QueryError, match="not in the index"):
        remove_article(museum.id, settings=indexed)
    build_index(articles_dir, settings=indexed, embedder=HashEmbedder())  # the file is unchanged: stays out
    assert museum.id not in {a.id for a in list_articles(indexed)}
    source = articles_dir / "005_museum_robbery.txt"
    source.write_text(source.read_text() + "\nPolice later found the van.\n")  # a changed file comes back
    build_index(articles_dir, settings=indexed, embedder=HashEmbedder())
    assert any(a.title == museum.title for a in list_articles(indexed))


def test_removing_an_uploaded_article_deletes_its_file(indexed: Settings, tmp_path: Path) -> None:
    report = add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=indexed, embedder=HashEmbedder())
    remove_article(report.articles[0].id, settings=indexed)
    assert not [p for p in (indexed.index_dir / "uploads").rglob("*") if p.is_file()]
    assert len(list_articles(indexed)) == 5


def test_questions_are_answered_from_the_live_index_while_an_upload_indexes(indexed: Settings,
                                                                           tmp_path: Path) -> None:
    pipeline, _ = scripted_pipeline(indexed)
    slow = HashEmbedder(delay=1.5)  # the upload's embedding step takes 1.5 s
    upload = threading.Thread(target=add_articles, args=([_write(tmp_path / "ferry.txt", FERRY)],),
                              kwargs={"settings": indexed, "embedder": slow})
    upload.start()
    while not slow.calls:
        time.sleep(0.01)
    started = time.perf_counter()
    hits = pipeline.retrieve("Skarvholm ferry thieves museum")  # not held up by the indexing
    assert time.perf_counter() - started < 1.0 and upload.is_alive()
    assert hits and all("Skarvholm" not in h.chunk.text for h in hits)
    upload.join()
    assert "Skarvholm" in pipeline.retrieve("Skarvholm ferry")[0].chunk.text


def test_an_upload_while_another_build_runs_is_refused_and_not_kept(indexed: Settings, articles_dir: Path,
                                                                    tmp_path: Path) -> None:
    """The refused file stayed in the uploads folder, so a later `rag index` added what the user was told had not
    been added. One uploaded before, and indexed, stays."""
    embedder = HashEmbedder()
    earlier = _write(tmp_path / "earlier.txt", "Tram line opens\n\nThe new tram line opened on Monday.\n")
    add_articles([earlier], settings=indexed, embedder=embedder)
    uploaded = {p.name for p in uploads_dir(indexed.index_dir).rglob("*.txt")}
    assert uploaded == {"earlier.txt"}
    builder = Builder(indexed.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim,
                      chunking=chunking_settings(indexed), ann_threshold=indexed.ann_threshold,
                      nprobe=indexed.ivf_nprobe, ivf_codec=indexed.ivf_codec)
    try:
        with pytest.raises(IndexBusyError, match="wait for it to finish"):
            add_articles([_write(tmp_path / "ferry.txt", FERRY), earlier], settings=indexed, embedder=embedder)
    finally:
        builder.abort()
    assert {p.name for p in uploads_dir(indexed.index_dir).rglob("*.txt")} == uploaded
    before = {a.title for a in list_articles(indexed)}
    build_index(articles_dir, settings=indexed, embedder=embedder)
    assert {a.title for a in list_articles(indexed)} == before


KILLED_UPLOAD = """
import json, sys
from pathlib import Path
from rag import Settings, add_articles
from tests.fakes import HashEmbedder

args = json.loads(sys.argv[1])
settings = Settings(index_dir=Path(args["index_dir"]), chunk_tokens=60, chunk_overlap_tokens=12)
add_articles([args["file"]], settings=settings, embedder=HashEmbedder())
"""


def test_a_killed_upload_leaves_the_index_as_it_was_and_the_next_run_takes_the_file(
        articles_dir: Path, indexed: Settings, tmp_path: Path) -> None:
    args = json.dumps({"index_dir": str(indexed.index_dir), "file": str(_write(tmp_path / "ferry.txt", FERRY))})
    run = subprocess.run([sys.executable, "-c", KILLED_UPLOAD, args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "RAG_FAULT_AT": "vectors-written"}, timeout=60)
    assert run.returncode == 137, run.stderr[-500:]
    assert len(list_articles(indexed)) == 5
    pipeline, _ = scripted_pipeline(indexed)
    assert pipeline.retrieve("volcano eruption Iceland")
    build_index(articles_dir, settings=indexed, embedder=HashEmbedder())  # the saved upload is indexed now
    assert "Skarvholm" in pipeline.retrieve("Skarvholm ferry", filters=Filters(titles=("Ferry",)))[0].chunk.text


def test_an_upload_dated_later_than_today_is_added_with_a_note_under_its_name(indexed: Settings,
                                                                              tmp_path: Path) -> None:
    from ui.articles import render_upload

    upload = _write(tmp_path / "tram.md", "---\ntitle: Tram line opens\ndate: 2091-06-01\n---\nThe tram opened.\n")
    report = add_articles([upload], settings=indexed, embedder=HashEmbedder())
    assert [a.published for a in report.articles] == ["2091-06-01"] and not report.rejected
    assert [(n.source, n.kept) for n in report.notes] == [("tram.md", True)]
    assert "note tram.md: dated 2091-06-01, later than today" in report.summary()
    html = render_upload(report)
    assert "Added, but check:" in html and "<b>tram.md</b>: dated 2091-06-01" in html


def test_an_upload_whose_embedder_fails_to_load_is_not_kept(indexed: Settings, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import ModelNotFoundError, corpus

    def missing(settings: Settings) -> None:
        raise ModelNotFoundError("the embedding model is not installed")

    monkeypatch.setattr(corpus, "_indexing_embedder", missing)
    with pytest.raises(ModelNotFoundError):
        add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=indexed)
    assert not list(uploads_dir(indexed.index_dir).rglob("*.txt"))


def test_upload_notes_name_the_jsonl_line(indexed: Settings, tmp_path: Path) -> None:
    briefs = _write(tmp_path / "briefs.jsonl", "\n".join(json.dumps(row) for row in [
        {"title": "Quay market", "date": "2024-03-02", "text": "The quay market opened."},
        {"title": "Tram line", "date": "2091-06-01", "text": "The tram line opened."}]) + "\n")
    report = add_articles([briefs], settings=indexed, embedder=HashEmbedder())
    assert [n.source for n in report.notes] == ["briefs.jsonl line 2"]


def test_stop_after_an_upload_is_committed_keeps_its_files(indexed: Settings, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop landing in the tidying after the commit (a VACUUM) left the articles live and deleted their files,
    so the next rag index dropped them."""
    def stopped(self: Builder) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Builder, "_compact_if_worth_it", stopped)
    with pytest.raises(KeyboardInterrupt):
        add_articles([_write(tmp_path / "ferry.txt", FERRY)], settings=indexed, embedder=HashEmbedder())
    kept = [p.name for p in uploads_dir(indexed.index_dir).rglob("*.txt")]
    assert kept == ["ferry.txt"]
    assert any(a.uploaded and a.source.endswith("ferry.txt") for a in list_articles(indexed))
