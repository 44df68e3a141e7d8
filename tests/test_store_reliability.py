"""The index survives kills at every step of a build, reports damaged files in one line, serves readers
through generation swaps, and filters any number of chunks."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rag.api import Pipeline, build_index, index_info
from rag.builder import Builder
from rag.cli import main
from rag.config import Settings
from rag.corpus import list_articles
from rag.errors import IndexCorruptError, IndexNotFoundError, IndexReadOnlyError
from rag.retrieve import Filters
from rag.store import Store
from rag.types import Article, Chunk

from .conftest import ROOT, scripted_pipeline, write_fillers
from .fakes import HashEmbedder

# A build in a child process, on the fakes, that dies (os._exit, as a kill) at the embedding call the test
# names, or at the commit step named by RAG_FAULT_AT (rag/manifest.py's fault_point).
CHILD = """
import json, os, sys
from pathlib import Path
import rag.indexing, rag.vector_files
from rag.api import build_index
from rag.config import Settings
from tests.fakes import HashEmbedder

args = json.loads(sys.argv[1])
rag.indexing.EMBED_FLUSH = 4  # several small embedding steps, so that a kill can land between them
rag.indexing.CHECKPOINT_SECONDS = args["checkpoint_seconds"]  # 0: a checkpoint after every step
rag.vector_files.COMPACT_SHARE = args["compact_share"]

class Dying(HashEmbedder):
    def embed_documents(self, texts, progress=None):
        if len(self.calls) + 1 == args["die_at_embed_call"]:
            os._exit(137)
        return super().embed_documents(texts, progress)

settings = Settings(index_dir=Path(args["index_dir"]), chunk_tokens=60, chunk_overlap_tokens=12,
                    cache_dir=Path(args["index_dir"]).parent / "cache")
build_index(args["corpus"], settings=settings, embedder=Dying(), rebuild=args["rebuild"])
"""

# an update, in place: its delta (or new base) is written, then the transaction naming it commits
UPDATE_STEPS = ["vectors-written", "db-committed", "manifest-written", "manifest-swapped", "old-vectors-removed",
                "old-generation-renamed"]
UPDATE_LIVE = set(UPDATE_STEPS[1:])  # kills after the commit leave the update live
# a --rebuild: a new generation, renamed into place, then named by the manifest
REBUILD_STEPS = ["copied", "vectors-written", "db-committed", "renamed", "manifest-written", "manifest-swapped",
                 "old-generation-renamed"]
REBUILD_LIVE = {"manifest-swapped", "old-generation-renamed"}


def _killed_build(corpus: Path, settings: Settings, step: str | None, embed_call: int = 0, *,
                  rebuild: bool = False, compact_share: float = 0.1, checkpoint_seconds: float = 3600.0) -> None:
    env = {**os.environ, "RAG_FAULT_AT": step or ""}
    args = json.dumps({"corpus": str(corpus), "index_dir": str(settings.index_dir), "die_at_embed_call": embed_call,
                       "rebuild": rebuild, "compact_share": compact_share, "checkpoint_seconds": checkpoint_seconds})
    run = subprocess.run([sys.executable, "-c", CHILD, args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 137, f"the build was not killed at {step or embed_call}: {run.stderr[-500:]}"


def _add_harbour_articles(corpus: Path) -> None:
    for i in range(12):
        (corpus / f"harbour{i:02d}.txt").write_text(
            f"Harbour report {i}\n\nThe harbour board number {i} met about ferries{i} and cranes on day {i}.")


def _searchable(settings: Settings) -> dict:
    """The live manifest, after checking that a Store opens and both searches find something."""
    embedder = HashEmbedder()
    store = Store(settings.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)
    try:
        assert store.search_dense(embedder.embed_query("volcano eruption"), 5)
        assert store.search_lexical("volcano eruption", 5)
        return store.manifest
    finally:
        store.close()


def _leftovers(index_dir: Path, manifest: dict) -> set[str]:
    return {p.name for p in index_dir.glob("gen-*")} - {manifest["generation"], manifest.get("previous_generation")}


KILLS = ([("update", None, 1, 0.1), ("update", None, 3, 0.1)]
         + [("update", s, 0, share) for s in UPDATE_STEPS for share in (0.1, 100.0)]  # a new base; a delta file
         + [("rebuild", s, 0, 0.1) for s in REBUILD_STEPS])


@pytest.mark.parametrize("kind,step,embed_call,compact_share", KILLS,
                         ids=[f"{k}-{s or f'embed{e}'}-{'delta' if c > 1 else 'base'}" for k, s, e, c in KILLS])
def test_a_kill_at_any_step_leaves_a_searchable_index_and_the_next_run_succeeds(
        articles_dir: Path, settings: Settings, tmp_path: Path, kind: str, step: str | None, embed_call: int,
        compact_share: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", compact_share)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    old = build_index(articles_dir, settings=settings, embedder=HashEmbedder(), rebuild=True).manifest  # + previous
    _add_harbour_articles(articles_dir)
    (articles_dir / "003_chess_championship.txt").unlink()
    clean = build_index(articles_dir, settings=settings.replace(index_dir=tmp_path / "clean"),
                        embedder=HashEmbedder()).manifest

    _killed_build(articles_dir, settings, step, embed_call, rebuild=kind == "rebuild", compact_share=compact_share)
    live = _searchable(settings)
    assert live["counts"] == (clean if step in (UPDATE_LIVE if kind == "update" else REBUILD_LIVE) else old)["counts"]

    again = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert again.manifest["counts"] == clean["counts"]
    assert _searchable(settings)["generation"] == again.manifest["generation"]
    assert not _leftovers(settings.index_dir, again.manifest)
    gen = settings.index_dir / again.manifest["generation"]
    store = Store(settings.index_dir)
    assert {p.name for p in gen.iterdir()} <= {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm",
                                               store.state["base"], *store.state["deltas"]}
    assert store.list_articles() == Store(tmp_path / "clean").list_articles()
    assert _dense_chunk_ids(store) == _dense_chunk_ids(Store(tmp_path / "clean"))


def _consistent(settings: Settings) -> dict:
    """The live manifest, after checking that every file the index records as indexed has all its articles in it
    (a file recorded before its articles would never be read again), and that its counts are the database's."""
    manifest = _searchable(settings)
    conn = sqlite3.connect(settings.index_dir / manifest["generation"] / "store.sqlite")
    try:
        articles = {r[0] for r in conn.execute("SELECT id FROM articles")}
        for path, ids in conn.execute("SELECT path, article_ids FROM files"):
            assert set(json.loads(ids)) <= articles, f"{path} is recorded before its articles are in"
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    finally:
        conn.close()
    assert manifest["counts"]["articles"] == len(articles) and manifest["counts"]["chunks"] == chunks
    return manifest


@pytest.mark.parametrize("kind", ["first build", "update"])
@pytest.mark.parametrize("embed_call", [3, 7])
def test_a_long_run_killed_half_way_keeps_what_it_committed_and_the_next_run_goes_on_from_there(
        articles_dir: Path, settings: Settings, tmp_path: Path, kind: str, embed_call: int) -> None:
    """Ctrl-C or a kill late in a long run used to throw all its embedding away (hours on a real corpus). The run
    commits what it has embedded every CHECKPOINT_SECONDS (here: after every step of 4 chunks); killed, it leaves
    those parts searchable, and the next run embeds only what is left and ends where a clean build ends."""
    edited = articles_dir / "001_iceland_eruption.txt"
    if kind == "update":
        build_index(articles_dir, settings=settings, embedder=HashEmbedder())
        edited.write_text(edited.read_text() + "\nThe lava reached the sea at Vatnsleysa on Sunday.\n")
    before = json.loads((settings.index_dir / "manifest.json").read_text())["counts"] if kind == "update" else None
    write_fillers(articles_dir, 6)
    _add_harbour_articles(articles_dir)
    (articles_dir / "briefs.jsonl").write_text("".join(  # one file whose articles span several steps
        json.dumps({"title": f"Brief {i}", "text": f"Town brief {i}: the quay{i} market opens at dawn."}) + "\n"
        for i in range(9)))
    clean_embedder = HashEmbedder()
    clean = build_index(articles_dir, settings=settings.replace(index_dir=tmp_path / "clean"),
                        embedder=clean_embedder).manifest

    _killed_build(articles_dir, settings, None, embed_call, checkpoint_seconds=0.0)
    live = _consistent(settings)
    assert live["counts"]["chunks"] < clean["counts"]["chunks"]
    assert live["counts"]["articles"] > (before["articles"] if before else 0), "nothing of the run was kept"
    assert live["root"] == str(articles_dir.resolve())  # so that a bare `rag index` goes on with the same folder
    versions = [a for a in Store(settings.index_dir).list_articles() if a[3] == str(edited.resolve())]
    assert len(versions) == 1, "an edited article was live in its old and new version at once"

    resumed = HashEmbedder()
    again = build_index(articles_dir, settings=settings, embedder=resumed)
    assert again.manifest["counts"] == clean["counts"]
    kept = live["counts"]["chunks"] - (before["chunks"] if before else 0)
    first_run = clean["counts"]["chunks"] - (before["chunks"] if before else 0)
    assert sum(resumed.calls) == again.chunks_embedded == first_run - kept  # nothing embedded twice
    _consistent(settings)
    store, reference = Store(settings.index_dir), Store(tmp_path / "clean")
    assert store.list_articles() == reference.list_articles()
    assert _dense_chunk_ids(store) == _dense_chunk_ids(reference)
    assert store.search_lexical("harbour board ferries3", 3)
    assert not _leftovers(settings.index_dir, again.manifest)


def test_a_first_build_that_checkpoints_trains_its_ivf_once_on_everything(articles_dir: Path, settings: Settings,
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints crossing the IVF threshold trained it on the first part of the corpus (nlist 1 of 64 vectors
    where a build in one go has 3 of 120): a flat index stays flat at a checkpoint, and the run's end trains."""
    write_fillers(articles_dir, 12)
    small = settings.replace(ann_threshold=20)
    clean = build_index(articles_dir, settings=small.replace(index_dir=tmp_path / "clean"),
                        embedder=HashEmbedder()).manifest
    assert clean["faiss"]["type"] == "ivf"
    monkeypatch.setattr("rag.indexing.EMBED_FLUSH", 4)
    monkeypatch.setattr("rag.indexing.CHECKPOINT_SECONDS", 0.0)
    report = build_index(articles_dir, settings=small, embedder=HashEmbedder())
    assert report.checkpoints >= 3
    assert report.manifest["faiss"] == clean["faiss"]
    assert _dense_chunk_ids(Store(small.index_dir)) == _dense_chunk_ids(Store(tmp_path / "clean"))


def test_a_rebuild_goes_live_whole_even_when_it_could_checkpoint(articles_dir: Path, settings: Settings) -> None:
    old = build_index(articles_dir, settings=settings, embedder=HashEmbedder()).manifest
    write_fillers(articles_dir, 6)
    _killed_build(articles_dir, settings, None, 5, rebuild=True, checkpoint_seconds=0.0)
    assert _consistent(settings)["counts"] == old["counts"]  # the old index serves until the new one is whole


class _Interrupting(HashEmbedder):
    def __init__(self, at_call: int) -> None:
        super().__init__()
        self.at_call = at_call

    def embed_documents(self, texts, progress=None):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == self.at_call:
            raise KeyboardInterrupt
        return super().embed_documents(texts, progress)


def test_ctrl_c_says_what_the_index_kept(articles_dir: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rag.indexing import IndexInterrupted

    monkeypatch.setattr("rag.indexing.EMBED_FLUSH", 4)
    write_fillers(articles_dir, 6)
    with pytest.raises(IndexInterrupted, match="no index was written; run rag index again"):
        build_index(articles_dir, settings=settings, embedder=_Interrupting(3))
    assert not (settings.index_dir / "manifest.json").exists()

    monkeypatch.setattr("rag.indexing.CHECKPOINT_SECONDS", 0.0)
    with pytest.raises(IndexInterrupted, match=r"keeps what this run committed before it stopped") as caught:
        build_index(articles_dir, settings=settings, embedder=_Interrupting(3))
    kept = _consistent(settings)["counts"]
    assert f"stopped: {kept['articles']} articles, {kept['chunks']} chunks; run the same rag index again" in str(
        caught.value)

    monkeypatch.setattr("rag.indexing.CHECKPOINT_SECONDS", 3600.0)
    _add_harbour_articles(articles_dir)
    with pytest.raises(IndexInterrupted, match="the index is as it was before this run"):
        build_index(articles_dir, settings=settings, embedder=_Interrupting(1))
    assert _consistent(settings)["counts"] == kept

    def interrupted(_args: object) -> int:
        raise IndexInterrupted("the index is as it was before this run")

    monkeypatch.setattr("rag.cli.cmd_index", interrupted)
    assert main(["index", str(articles_dir), "--index-dir", str(settings.index_dir)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted; the index is as it was before this run"


def _dense_chunk_ids(store: Store) -> list[str]:
    """The chunks a dense search finds, by id (rowids differ between indexes of the same articles)."""
    found = store.search_dense(HashEmbedder().embed_query("harbour board ferries"), 8)
    records = store.records([r for r, _ in found])
    return [records[r].chunk.id for r, _ in found]


# The same build, killed inside SQLite's own work instead: at the n-th progress callback (every 100 virtual
# machine steps) of the build's connection, which lands inside inserts, the commit, the term counts and VACUUM.
# With kill_at 0 nothing is killed and the child prints how many callbacks the run made, and when its VACUUM ran.
SQLITE_CHILD = """
import json, os, sys
from pathlib import Path
import rag.builder
from rag.api import build_index
from rag.config import Settings
from tests.fakes import HashEmbedder

args = json.loads(sys.argv[1])
ticks = [0]
vacuum = []

def tick():
    ticks[0] += 1
    if ticks[0] == args["kill_at"]:
        os._exit(137)
    return 0

connect = rag.builder.connect
def watched(path, *, readonly):
    conn = connect(path, readonly=readonly)
    if not readonly:
        conn.set_progress_handler(tick, 100)
    return conn
rag.builder.connect = watched

compact = rag.builder.Builder._compact_if_worth_it
def timed_compact(self):
    vacuum.append(ticks[0])
    compact(self)
    vacuum.append(ticks[0])
rag.builder.Builder._compact_if_worth_it = timed_compact

settings = Settings(index_dir=Path(args["index_dir"]), chunk_tokens=60, chunk_overlap_tokens=12,
                    cache_dir=Path(args["index_dir"]).parent / "cache")
build_index(args["corpus"], settings=settings, embedder=HashEmbedder(), replace=True)  # (drops the old folder)
print(json.dumps({"ticks": ticks[0], "vacuum": vacuum}))
"""


def _sqlite_killed_build(corpus: Path, settings: Settings, kill_at: int) -> dict:
    args = json.dumps({"corpus": str(corpus), "index_dir": str(settings.index_dir), "kill_at": kill_at})
    run = subprocess.run([sys.executable, "-c", SQLITE_CHILD, args], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    if kill_at:
        assert run.returncode == 137, f"the build was not killed at callback {kill_at}: {run.stderr[-500:]}"
        return {}
    assert run.returncode == 0, run.stderr[-500:]
    return json.loads(run.stdout.splitlines()[-1])


def test_a_kill_inside_sqlite_work_even_vacuum_leaves_a_searchable_index(articles_dir: Path, settings: Settings,
                                                                          tmp_path: Path) -> None:
    """An update that removes most of the index (so that it ends in VACUUM) is killed at points spread over all
    its SQLite work and at three points inside its VACUUM. Each time the live index is the old one or the new
    one, never a mix, and the next run brings it to exactly what a clean build of the new articles holds."""
    write_fillers(articles_dir, 40)
    old_corpus = tmp_path / "old"
    shutil.copytree(articles_dir, old_corpus)
    for i in range(30):
        (articles_dir / f"filler{i:02d}.txt").unlink()
    _add_harbour_articles(articles_dir)
    clean_settings = settings.replace(index_dir=tmp_path / "clean")
    clean = build_index(articles_dir, settings=clean_settings, embedder=HashEmbedder()).manifest

    def fresh_old_index() -> dict:
        shutil.rmtree(settings.index_dir, ignore_errors=True)
        return build_index(old_corpus, settings=settings, embedder=HashEmbedder()).manifest

    old = fresh_old_index()
    measured = _sqlite_killed_build(articles_dir, settings, 0)
    ticks, (v_start, v_end) = measured["ticks"], measured["vacuum"]
    assert v_end - v_start >= 3, f"the update did not end in a VACUUM long enough to kill inside: {measured}"
    points = sorted({*range(1, ticks, max(1, ticks // 8)), v_start + 1, (v_start + v_end) // 2, v_end - 1})
    for kill_at in points:
        fresh_old_index()
        _sqlite_killed_build(articles_dir, settings, kill_at)
        live = _searchable(settings)
        assert live["counts"] in (old["counts"], clean["counts"]), f"killed at callback {kill_at} of {ticks}"
        again = build_index(articles_dir, settings=settings, embedder=HashEmbedder(), replace=True)
        assert again.manifest["counts"] == clean["counts"], f"killed at callback {kill_at} of {ticks}"
        assert not _leftovers(settings.index_dir, again.manifest)
        store, reference = Store(settings.index_dir), Store(clean_settings.index_dir)
        assert store.list_articles() == reference.list_articles(), f"killed at callback {kill_at} of {ticks}"
        assert _dense_chunk_ids(store) == _dense_chunk_ids(reference)
        assert store.search_lexical("harbour board ferries3", 3)
        store.close()
        reference.close()


@pytest.mark.parametrize("step", ["renamed", "manifest-written"])
def test_a_killed_first_build_does_not_stop_the_next(articles_dir: Path, settings: Settings, step: str) -> None:
    _killed_build(articles_dir, settings, step)
    with pytest.raises(IndexNotFoundError):
        Store(settings.index_dir)
    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert _searchable(settings)["counts"] == report.manifest["counts"]
    assert not _leftovers(settings.index_dir, report.manifest)


def test_orphaned_generation_folders_do_not_break_the_next_build(indexed: Settings) -> None:
    """Killed after renaming gen-N.tmp to gen-N and before the manifest swap, a build left a gen-N no manifest
    names; the next build took the same number and failed on every later run ("Directory not empty")."""
    index_dir = indexed.index_dir
    live = json.loads((index_dir / "manifest.json").read_text())["generation"]
    number = int(live.split("-")[1])
    shutil.copytree(index_dir / live, index_dir / f"gen-{number + 1:06d}")  # renamed, never swapped in
    (index_dir / f"gen-{number + 2:06d}.tmp").mkdir()  # half-written
    (index_dir / f"gen-{number + 3:06d}.old").mkdir()  # half-deleted
    first = build_index(ROOT / "tests" / "data" / "articles", settings=indexed, embedder=HashEmbedder(),
                        rebuild=True).manifest
    assert int(first["generation"].split("-")[1]) > number + 3 and first["previous_generation"] == live
    assert {p.name for p in index_dir.glob("gen-*")} == {live, first["generation"]}
    second = build_index(ROOT / "tests" / "data" / "articles", settings=indexed, embedder=HashEmbedder(),
                         rebuild=True).manifest
    assert {p.name for p in index_dir.glob("gen-*")} == {first["generation"], second["generation"]}
    assert _searchable(indexed)["generation"] == second["generation"]
    update = build_index(ROOT / "tests" / "data" / "articles", settings=indexed, embedder=HashEmbedder()).manifest
    assert {p.name for p in index_dir.glob("gen-*")} == {second["generation"]} == {update["generation"]}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(range(256)) * 2 + data[512:])  # same size, header overwritten


def _edit(manifest: Path, **changes: object) -> None:
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **changes}))


DAMAGE = {
    "vectors truncated": ("vectors.faiss", _truncate),
    "vectors garbled": ("vectors.faiss", _garble),
    "vectors empty": ("vectors.faiss", lambda p: p.write_bytes(b"")),
    "vectors deleted": ("vectors.faiss", Path.unlink),
    "sqlite truncated": ("store.sqlite", _truncate),
    "sqlite garbled": ("store.sqlite", _garble),
    "sqlite empty": ("store.sqlite", lambda p: p.write_bytes(b"")),
    "sqlite deleted": ("store.sqlite", Path.unlink),
    "manifest a list": ("manifest.json", lambda p: p.write_text("[1, 2]")),
    "manifest garbled": ("manifest.json", lambda p: p.write_text('{"format_version": 1, "gen')),
    "manifest bad generation": ("manifest.json", lambda p: _edit(p, generation="../x")),
    "manifest counts a list": ("manifest.json", lambda p: _edit(p, counts=[1])),
    "delta truncated": ("delta-", _truncate),
    "delta garbled": ("delta-", _garble),
    "delta deleted": ("delta-", Path.unlink),
}


def _assert_one_line(err: str, file: str) -> None:
    assert "\n" not in err.strip() and file in err and "--rebuild" in err, err


@pytest.mark.parametrize("layout", ["built", "updated"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_index_gives_one_line_everywhere(articles_dir: Path, settings: Settings, case: str, layout: str,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    file, damage = DAMAGE[case]
    if file == "delta-" and layout == "built":
        layout = "updated"  # a delta file is what an update writes
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    if layout == "updated":  # the base and a delta file beside it
        monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", 100.0)
        _add_harbour_articles(articles_dir)
        build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    gen = settings.index_dir / manifest["generation"]
    if file == "delta-":
        (path,) = gen.glob("delta-*.npz")
        file = path.name
    damage(settings.index_dir / file if file == "manifest.json" else gen / file)

    with pytest.raises(IndexCorruptError) as err:
        Pipeline(settings, embedder=HashEmbedder()).retrieve("volcano eruption")
    _assert_one_line(str(err.value), file)
    pipeline, generator = scripted_pipeline(settings, "unused")
    with pytest.raises(IndexCorruptError) as err:
        pipeline.ask("What erupted near the town?")
    _assert_one_line(str(err.value), file)
    assert not generator.calls
    with pytest.raises(IndexCorruptError) as err:
        build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    _assert_one_line(str(err.value), file)
    assert not list(settings.index_dir.glob("*.tmp"))

    assert main(["info", "--index-dir", str(settings.index_dir)]) == 1
    _assert_one_line(capsys.readouterr().err, file)
    assert main(["info", "--index-dir", str(settings.index_dir), "--json"]) == 1
    _assert_one_line(capsys.readouterr().err, file)

    report = build_index(articles_dir, settings=settings, embedder=HashEmbedder(), rebuild=True)  # the way out
    assert _searchable(settings)["counts"] == report.manifest["counts"]
    assert index_info(settings, check=True)["health"] == "ok"


def test_info_reports_a_healthy_index(indexed: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--index-dir", str(indexed.index_dir)]) == 0
    assert "health:     ok" in capsys.readouterr().out


@pytest.mark.parametrize("compact_share", [0.1, 100.0], ids=["new-base", "delta-files"])
def test_readers_opening_during_swaps_never_fail(articles_dir: Path, settings: Settings, compact_share: float,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Five readers open and search while ten updates land, each as a new FAISS base or as a delta file beside
    it; every chunk a reader's dense search finds has its record in the database, unless an update removed it
    since the reader opened (the reader then knows it is stale)."""
    monkeypatch.setattr("rag.vector_files.COMPACT_SHARE", compact_share)
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    embedder, errors, opened = HashEmbedder(), [], [0] * 5
    stop = threading.Event()

    def read(n: int) -> None:
        query = embedder.embed_query("volcano eruption")
        while not stop.is_set():
            try:
                store = Store(settings.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)
                try:
                    # (no assert in a thread: pytest's report of a failed one parses source, which CPython 3.11
                    # cannot do from several threads at once, and the finding is lost in a SystemError)
                    found = store.search_dense(query, 5)
                    if not found or not store.search_lexical("volcano eruption", 5):
                        errors.append(f"nothing found: dense {found}")
                    records = store.records([r for r, _ in found])
                    # an update that committed since this store opened may have removed a hit's chunk (the
                    # store skips it, and the chat reopens a stale store before each question); else none is missing
                    missing = [r for r, _ in found if r not in records]
                    if missing and not store.is_stale():
                        errors.append(f"dense hits {missing} without their record in a store that is not stale")
                finally:
                    store.close()
                opened[n] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=read, args=(n,)) for n in range(5)]
    for t in readers:
        t.start()
    try:
        changed = sorted(articles_dir.glob("*.txt"))[1]
        for i in range(10):
            changed.write_text(changed.read_text() + f"\n\nUpdate {i}: the ash cloud drifted east again.\n")
            build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[:3]
    assert all(opened)
    store = Store(settings.index_dir)
    try:
        assert len(store.state["deltas"]) == (0 if compact_share < 1 else 10)
    finally:
        store.close()


def _freeze(folders: list[Path], frozen: bool) -> None:
    """Make folders unwritable, for root too (root ignores file modes, not the immutable attribute), or writable."""
    for folder in folders:
        if not frozen and os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False, capture_output=True)
        folder.chmod(0o555 if frozen else 0o755)
        if frozen and os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(folder)], check=False, capture_output=True)


def test_an_index_in_a_folder_nobody_may_write_opens_and_searches(indexed: Settings) -> None:
    """A read-only mount or a shared copy: WAL's shared-memory file cannot be made there, and the index still
    opens, read as it stands."""
    folders = [indexed.index_dir, *(p for p in indexed.index_dir.rglob("*") if p.is_dir())]
    _freeze(folders, True)
    try:
        try:
            (indexed.index_dir / "probe").touch()
        except OSError:
            pass
        else:
            pytest.skip("this machine cannot make a folder unwritable for the test's user")
        embedder = HashEmbedder()
        store = Store(indexed.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)
        try:
            assert store.search_dense(embedder.embed_query("volcano eruption"), 5)
            assert store.search_lexical("volcano eruption", 5)
            assert not store.is_stale()
            assert list_articles(indexed)
            # its owner updates it meanwhile: the reader, which reads the file as it stood, knows to reopen
            _freeze(folders, False)
            corpus = indexed.index_dir.parent / "articles"
            _add_harbour_articles(corpus)
            build_index(corpus, settings=indexed, embedder=HashEmbedder())
            _freeze(folders, True)
            assert store.is_stale()
            fresh = Store(indexed.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim)
            assert fresh.search_lexical("ferries3 cranes", 5) and not fresh.is_stale()
            fresh.close()
        finally:
            store.close()
    finally:
        _freeze(folders, False)


def test_an_update_left_in_the_wal_of_an_unwritable_folder_is_one_clear_line(indexed: Settings,
                                                                              tmp_path: Path) -> None:
    """Copied while a writer held it: the update sits in the -wal file, which SQLite cannot read without writing
    the folder. Reading the file as it stands would silently drop it."""
    db = next(indexed.index_dir.glob("gen-*/store.sqlite"))
    writer = sqlite3.connect(db)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE scratch(x)")
    writer.commit()
    copy = tmp_path / "copy"
    shutil.copytree(indexed.index_dir, copy)
    writer.close()
    for shm in copy.rglob("*-shm"):
        shm.unlink()
    assert next(copy.glob("gen-*/store.sqlite-wal")).stat().st_size > 0
    folders = [copy, *(p for p in copy.rglob("*") if p.is_dir())]
    _freeze(folders, True)
    try:
        try:
            (copy / "probe").touch()
        except OSError:
            pass
        else:
            pytest.skip("this machine cannot make a folder unwritable for the test's user")
        with pytest.raises(IndexReadOnlyError, match="not yet folded into it .*copy the index folder"):
            Store(copy)
    finally:
        _freeze(folders, False)


def test_a_store_knows_when_a_newer_generation_is_live(indexed: Settings) -> None:
    store = Store(indexed.index_dir)
    assert not store.is_stale()
    corpus = indexed.index_dir.parent / "articles"
    build_index(corpus, settings=indexed, embedder=HashEmbedder())
    assert not store.is_stale()  # nothing changed: its vectors are still those of the index
    _add_harbour_articles(corpus)
    build_index(corpus, settings=indexed, embedder=HashEmbedder())
    assert store.is_stale() and not Store(indexed.index_dir).is_stale()
    fresh = Store(indexed.index_dir)
    build_index(corpus, settings=indexed, embedder=HashEmbedder(), rebuild=True)
    assert fresh.is_stale() and not Store(indexed.index_dir).is_stale()


class SmallHashEmbedder(HashEmbedder):
    name, dim = "hash-8", 8


def test_filters_allow_more_chunks_than_sqlite_has_variables(tmp_path: Path) -> None:
    """A date filter over 40,000+ chunks: binding each rowid went past SQLite's 32766 variables."""
    embedder, settings = SmallHashEmbedder(), Settings(index_dir=tmp_path / "big", cache_dir=tmp_path / "cache")
    builder = Builder(settings.index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim,
                      chunking={"test": 1}, ann_threshold=10**6, nprobe=8, ivf_codec="sq8")
    for a in range(411):
        published = "2021-06-01" if a == 0 else "2024-03-01"  # the zebra article is the one outside the filter
        text = "\n".join(f"{'zebra ' * 5 if a == 0 else ''}market note {a} {c}" for c in range(100))
        article = Article(id=f"{a:016x}", title=f"Notes {a}", text=text, source=f"notes{a}.txt", published=published)
        chunks, start = [], 0
        for c, line in enumerate(text.split("\n")):
            chunks.append(Chunk(f"{article.id}-{c:03d}", article.id, line, start, start + len(line)))
            start += len(line) + 1
        builder.add_article(article, chunks, embedder.embed_documents([ch.text for ch in chunks]))
        builder.set_file(article.source, 1, 0, [article.id])
    builder.commit()

    store = Store(settings.index_dir)
    # SQLite's default build allows 32766 variables (this machine's Python allows 250000): as the default
    store.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    allowed = store.allowed_rowids(date_from="2024-01-01")
    assert allowed is not None and len(allowed) == 41_000
    lexical = store.search_lexical("zebra market note", 10, allowed)
    dense = store.search_dense(np.asarray(embedder.embed_query("zebra zebra"), dtype=np.float32), 10, allowed)
    assert len(lexical) == len(dense) == 10 and {r for r, _ in lexical + dense} <= set(allowed)
    assert store.search_lexical("zebra", 10) and not store.search_lexical("zebra", 10, allowed)
    pipeline = Pipeline(settings, embedder=embedder)
    pipeline.store.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    hits = pipeline.retrieve("zebra market note", filters=Filters(date_from="2024-01-01"), top_k=5)
    assert len(hits) == 5 and all(h.published == "2024-03-01" for h in hits)


def test_import_rag_works_without_fcntl() -> None:
    """Windows has no fcntl: the index lock comes from filelock, so `import rag` and a build still work."""
    code = ("import sys, tempfile\nsys.modules['fcntl'] = None\nimport rag\nfrom rag.builder import Builder\n"
            "b = Builder(tempfile.mkdtemp(), embedder_name='x', embedder_dim=4, chunking={}, ann_threshold=9, "
            "nprobe=1, ivf_codec='sq8')\nb.abort()\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


class _FailingServer(HashEmbedder):
    def embed_documents(self, texts, progress=None):  # type: ignore[no-untyped-def]
        if len(self.calls) + 1 == 3:
            from rag import EmbeddingServerError
            raise EmbeddingServerError("the embedding server at http://gpu:8080 stopped answering")
        return super().embed_documents(texts, progress)


def test_an_error_after_a_checkpoint_says_what_the_index_kept(articles_dir: Path, settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import EmbeddingServerError

    monkeypatch.setattr("rag.indexing.EMBED_FLUSH", 4)
    monkeypatch.setattr("rag.indexing.CHECKPOINT_SECONDS", 0.0)
    write_fillers(articles_dir, 6)
    with pytest.raises(EmbeddingServerError, match=r"stopped answering \(the index keeps what this run committed "
                                                   r"before it stopped: \d+ articles"):
        build_index(articles_dir, settings=settings, embedder=_FailingServer())
    monkeypatch.setattr("rag.indexing.CHECKPOINT_SECONDS", 3600.0)
    with pytest.raises(EmbeddingServerError, match="stopped answering$"):  # nothing of this one went in
        build_index(articles_dir, settings=settings, embedder=_FailingServer())
