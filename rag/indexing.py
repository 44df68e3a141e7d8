"""One indexing run: which files changed, what to chunk and embed, and the summary it ends with."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .builder import Builder
from .chunk import chunk_article
from .config import Settings
from .embed import Embedder
from .embed_choice import describe, load_embedder, pick
from .errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, IngestError, RagError
from .files import iter_files, unreadable_reason
from .ingest import Skipped, read_file
from .manifest import MANIFEST, read_manifest
from .types import Article, Chunk
from .uploads import uploads_dir

TITLE_TOKENS = 32  # at most this much of the title is put in front of each chunk for embedding
EMBED_FLUSH = 512  # chunks embedded and written per step, so memory stays flat on big corpora
UPLOAD_FLUSH = 16  # chunks per step of an upload from the chat, so its progress moves (MiniLM: 3.5 s a step on 2
# cores with a load average of 17, 4.8 CPU-seconds for 54 chunks: bench/bench_upload.py)
SUMMARY_LINES = 50  # skipped .jsonl lines named in the summary; to_dict() (rag index --json) names them all
CHECKPOINT_SECONDS = 120.0  # a long run commits what it has embedded at least this often, so that Ctrl-C, a kill
# or a reboot loses at most this much embedding (a commit at 100k chunks takes about a second)

Log = Callable[[str], None]


@dataclass
class IndexReport:
    """What one `rag index` run did."""

    index_dir: Path
    files_added: int = 0
    files_updated: int = 0
    files_removed: int = 0
    files_unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    skipped_lines: list[Skipped] = field(default_factory=list)  # lines of .jsonl files read: "<path>:<line>"
    notes: list[Skipped] = field(default_factory=list)  # articles indexed with a date to check (Skipped.kept)
    changed_paths: set[str] = field(default_factory=set)  # files read again whose articles changed
    articles_added: int = 0
    articles_removed: int = 0
    chunks_embedded: int = 0
    checkpoints: int = 0  # parts of the run committed before its end
    embedder_note: str = ""  # why this embedder, when it was chosen from the corpus's languages
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_dir": str(self.index_dir),
            "root": self.manifest.get("root"),
            "files": {"added": self.files_added, "updated": self.files_updated, "removed": self.files_removed,
                      "unchanged": self.files_unchanged, "skipped": len(self.skipped)},
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "skipped_lines": [{"source": s.source, "reason": s.reason} for s in self.skipped_lines],
            "notes": [{"source": _line_form(s.source), "note": s.reason} for s in self.notes],
            "articles_added": self.articles_added,
            "articles_removed": self.articles_removed,
            "chunks_embedded": self.chunks_embedded,
            "embedder": {**self.manifest.get("embedder", {}), **({"note": self.embedder_note} if self.embedder_note
                                                                   else {})},
            "seconds": round(self.seconds, 3),
            "counts": self.manifest.get("counts", {}),
        }

    def summary(self) -> str:
        counts = self.manifest.get("counts", {})
        lines = [
            f"index: {self.index_dir}  ({counts.get('articles', 0)} articles, {counts.get('chunks', 0)} chunks)"
            + (f" from {self.manifest['root']}" if self.manifest.get("root") else ""),
            f"files: {self.files_added} added, {self.files_updated} updated, {self.files_removed} removed, "
            f"{self.files_unchanged} unchanged, {len(self.skipped)} skipped"
            + (f"; {len(self.skipped_lines)} lines of .jsonl files skipped" if self.skipped_lines else ""),
            f"embedded {self.chunks_embedded} chunks of {self.articles_added} new or changed articles; "
            f"removed {self.articles_removed} articles; {self.seconds:.1f} s",
        ]
        if self.embedder_note:
            lines.append(f"embedder: {self.manifest.get('embedder', {}).get('name')} ({self.embedder_note})")
        lines += [f"skipped {s.source}: {s.reason}" for s in self.skipped + self.skipped_lines[:SUMMARY_LINES]]
        if len(self.skipped_lines) > SUMMARY_LINES:
            lines.append(f"... and {len(self.skipped_lines) - SUMMARY_LINES} more skipped .jsonl lines "
                         "(rag index --json lists them all)")
        lines += [f"note {_line_form(s.source)}: {s.reason}" for s in self.notes[:SUMMARY_LINES]]
        if len(self.notes) > SUMMARY_LINES:
            lines.append(f"... and {len(self.notes) - SUMMARY_LINES} more notes (rag index --json lists them all)")
        return "\n".join(lines)


def _line_form(source: str) -> str:
    """An article's source as the summary names a .jsonl line, as it names a skipped one: "x.jsonl:3"."""
    path, _, line = source.partition("#L")
    return f"{path}:{line}" if line else path


def chunking_settings(settings: Settings) -> dict[str, Any]:
    """What decides chunk boundaries and embedding input; an index records it and refuses a change."""
    return {"chunk_tokens": settings.chunk_tokens, "overlap_tokens": settings.chunk_overlap_tokens,
            "title_tokens": TITLE_TOKENS, "splitter": 1}


def run_index(root: Path, settings: Settings, embedder: Embedder | None, *, rebuild: bool = False,
              replace: bool = False, log: Log | None = None) -> IndexReport:
    """Bring the index at settings.index_dir up to date with the files under root; embedder None picks one from
    the corpus's languages (embed_choice.pick) for a new index, and keeps the one an existing index was built with.

    The index then holds root's files (and the chat's uploads): a file it held that is gone from the disk leaves
    it. One that still exists outside root (an index built from another folder; root a single file) would leave
    it too, with hours of embedding: that run is refused with IndexMismatchError unless replace is set."""
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    root = Path(root).expanduser()
    if not root.exists():
        raise IngestError(f"{root} does not exist; give a folder (or file) of .txt/.md/.html/.jsonl articles")
    root = root.resolve()
    report = IndexReport(index_dir=Path(settings.index_dir))
    before = _counts(settings)
    builder = _builder(settings, embedder.name if embedder else "", embedder.dim if embedder else 0,
                       chunking_settings(settings), rebuild=rebuild)
    try:
        files = [(root, path) for path in iter_files(root)]
        uploads = uploads_dir(settings.index_dir)
        if uploads.is_dir():  # the articles added from the chat stay, whatever folder is indexed
            found = {path for _, path in files}
            files += [(uploads, path) for path in iter_files(uploads) if path not in found]
        pending, waiting, seen = _scan(files, settings, builder, report, say)
        if builder.previous is None and not pending:
            _refuse_empty(root, report)
        previous_paths = builder.known_paths() - seen
        if not replace:
            _refuse_dropping_elsewhere(root, previous_paths, settings)  # (a rebuild knows no paths)
        automatic = embedder is None
        if embedder is None:
            embedder, report.embedder_note = choose_embedder(settings, builder, pending)
            builder.embedder = {**builder.embedder, "name": embedder.name, "dim": embedder.dim}
            say(f"embedder: {embedder.name} ({report.embedder_note})")
            automatic = builder.previous is None or bool(builder.previous.get("embedder_note"))

        def extra(final: bool) -> dict[str, Any]:
            languages = builder.language_counts()
            if automatic and final:  # said as the languages stand now (at a checkpoint, as the run chose)
                report.embedder_note = describe(str(builder.embedder["name"]), languages)
            return {"root": str(root), "languages": languages,
                    **({"embedder_note": report.embedder_note} if report.embedder_note else {})}

        checkpointed = time.monotonic()

        def checkpoint(done: int, total: int, waiting_ids: set[str]) -> None:
            nonlocal checkpointed
            if builder.can_checkpoint and done < total and time.monotonic() - checkpointed >= CHECKPOINT_SECONDS:
                # the old version of a changed article goes once the new one is in: never both live
                report.articles_removed += builder.remove_unreferenced_articles(also=waiting_ids)
                report.manifest = builder.checkpoint(extra(final=False))
                report.checkpoints += 1
                checkpointed = time.monotonic()
                say(f"committed {done}/{total} chunks: an interrupted run keeps them")

        _embed_and_add(pending, settings, embedder, builder, report, say, waiting=waiting, after_flush=checkpoint)
        builder.forget_files(previous_paths)
        report.files_removed = len(previous_paths)
        report.articles_removed += builder.remove_unreferenced_articles()
        _move_sources(builder, previous_paths | report.changed_paths, settings)
        report.manifest = builder.commit(extra(final=True))
    except BaseException as exc:
        builder.abort()
        if isinstance(exc, KeyboardInterrupt):
            raise IndexInterrupted(_interrupted(settings, before)) from None
        if isinstance(exc, RagError) and (kept := _kept_part(settings, before)):
            raise type(exc)(f"{exc} ({kept})") from exc
        raise
    report.seconds = time.perf_counter() - started
    return report


class IndexInterrupted(KeyboardInterrupt):
    """Ctrl-C during an indexing run; its message says what of the run is in the index."""


def _counts(settings: Settings) -> dict[str, Any] | None:
    """The live index's counts, or None when there is no readable index."""
    try:
        counts = read_manifest(settings.index_dir).get("counts")
    except (IndexNotFoundError, IndexCorruptError):
        return None
    return dict(counts) if isinstance(counts, dict) else {}


def _kept_part(settings: Settings, before: dict[str, Any] | None) -> str:
    """What of a run that stopped is in the index: "" when nothing (the index is as it was, or there is none)."""
    now = _counts(settings)
    if now is None or now == before:
        return ""
    return (f"the index keeps what this run committed before it stopped: {now.get('articles', 0)} articles, "
            f"{now.get('chunks', 0)} chunks; run the same rag index again to go on from there")


def _interrupted(settings: Settings, before: dict[str, Any] | None) -> str:
    kept = _kept_part(settings, before)
    if kept:
        return kept
    if before is None:
        return "no index was written; run rag index again to start over"
    return "the index is as it was before this run"


def _move_sources(builder: Builder, paths: set[str], settings: Settings) -> None:
    """An article kept because another file holds it too (a copy) takes that file as its source once the file it
    cited is deleted or no longer holds it: citations and the list of articles named the old one. Each file
    holding such articles is read once, to find their own lines in it."""
    if not paths:
        return
    for path, article_ids in builder.orphaned_sources(paths).items():
        try:
            articles, _ = read_file(Path(path), max_file_bytes=settings.max_file_bytes)
        except IngestError:
            continue
        sources = {a.id: a.source for a in articles}
        for article_id in article_ids:
            if article_id in sources:
                builder.update_source(article_id, sources[article_id])


def _refuse_empty(root: Path, report: IndexReport) -> None:
    """A new index (or a --rebuild) with no article to hold is refused: it would serve nothing, and fix an
    embedder chosen from no language at all."""
    problems = report.skipped + report.skipped_lines
    why = (f": {len(report.skipped)} skipped, e.g. {problems[0].source}: {problems[0].reason}" if problems
           else "")
    files = report.files_added + len(report.skipped)
    raise IngestError(f"no article could be read from {root} ({files} file{'' if files == 1 else 's'}{why}); "
                      "nothing was indexed. Give a folder of .txt, .md, .html or .jsonl articles")


def _refuse_dropping_elsewhere(root: Path, gone: set[str], settings: Settings) -> None:
    """Refuse a run that would drop the articles of files that still exist outside root (IndexMismatchError)."""
    elsewhere = sorted(p for p in gone if root != Path(p) and root not in Path(p).parents and Path(p).is_file())
    if elsewhere:
        others = {str(Path(p).parent) for p in elsewhere}
        where = next(iter(others)) if len(others) == 1 else f"{len(others)} folders, e.g. {Path(elsewhere[0]).parent}"
        raise IndexMismatchError(
            f"{settings.index_dir} also holds {len(elsewhere)} files from {where}, which indexing {root} alone would "
            f"drop; nothing was changed. Index the folder that holds them all, or pass --replace to keep only "
            f"{root}'s files")


def documents_precision(before: str, now: str) -> str:
    """How the index's document vectors were computed ("bf16", "fp32", or "bf16+fp32" over several runs): the
    variants of one model agree to cosine 0.99998, so an index keeps its embedder whichever variant added to it."""
    return "+".join(sorted((set(before.split("+")) | {now}) - {""}))


def choose_embedder(settings: Settings, builder: Builder, pending: list[Article]) -> tuple[Embedder, str]:
    """The embedder for an index whose settings leave the choice to the corpus: the one the index was built with,
    or for a new index the one embed_choice.pick names for the languages of its articles."""
    languages = Counter(a.language for a in pending)
    if builder.previous is not None:
        name = str(builder.previous.get("embedder", {}).get("name", ""))
        languages.update(builder.language_counts())
        note = (describe(name, languages) if builder.previous.get("embedder_note")
                else "the one the index was built with")
        return load_embedder(settings, name), note
    name, note = pick(languages)
    return load_embedder(settings, name), note


def add_files(paths: Sequence[Path], root: Path, settings: Settings, embedder: Embedder, *,
              log: Log | None = None) -> tuple[IndexReport, dict[str, list[str]]]:
    """Add (or update) just these files, which lie under root, keeping every other file's articles: what an
    upload from the chat does, with the same crash-safe build as run_index. An existing index keeps its own
    chunk settings. Returns the report and the article ids of each file read."""
    started = time.perf_counter()
    say = log or (lambda _msg: None)
    root = Path(root).resolve()
    settings = _with_index_chunking(settings)
    report = IndexReport(index_dir=Path(settings.index_dir))
    builder = _builder(settings, embedder.name, embedder.dim, chunking_settings(settings), keep_codec=True)
    try:
        say(f"reading and cleaning {len(paths)} file{'' if len(paths) == 1 else 's'}")
        pending, waiting, _seen = _scan([(root, Path(p)) for p in paths], settings, builder, report, say)
        _embed_and_add(pending, settings, embedder, builder, report, say, waiting=waiting, flush_at=UPLOAD_FLUSH)
        ids = {str(p): (builder.known_file(str(p)) or (0, 0, []))[2] for p in paths}
        say("writing the new index")
        report.manifest = builder.commit(_kept_root(builder))
    except BaseException:
        builder.abort()
        raise
    report.seconds = time.perf_counter() - started
    return report, ids


def remove_articles(article_ids: Sequence[str], settings: Settings) -> tuple[IndexReport, list[str]]:
    """Take articles out of the index (no embedder needed); returns the report and the files left holding no
    article. A file of the corpus keeps its entry, so the article stays out until that file changes."""
    started = time.perf_counter()
    manifest = read_manifest(settings.index_dir)
    embedder = manifest.get("embedder") or {}
    report = IndexReport(index_dir=Path(settings.index_dir))
    builder = _builder(settings, str(embedder.get("name")), int(embedder.get("dim") or 0), manifest.get("chunking")
                       or {}, keep_codec=True)
    emptied: list[str] = []
    try:
        for article_id in article_ids:
            if builder.has_article(article_id):
                report.articles_removed += 1
                emptied += builder.remove_article(article_id)[1]
        report.manifest = builder.commit(_kept_root(builder))
    except BaseException:
        builder.abort()
        raise
    report.seconds = time.perf_counter() - started
    return report, emptied


def _builder(settings: Settings, name: str, dim: int, chunking: dict[str, Any], rebuild: bool = False,
             keep_codec: bool = False) -> Builder:
    """keep_codec: the chat's uploads and removals keep the live index's IVF codec; a `rag index` run re-codes
    it when RAG_IVF_CODEC asks for another (a minute at 1M chunks: not in the chat's process)."""
    return Builder(settings.index_dir, embedder_name=name, embedder_dim=dim, chunking=chunking,
                   ann_threshold=settings.ann_threshold, nprobe=settings.ivf_nprobe, rebuild=rebuild,
                   ivf_codec=settings.ivf_codec, keep_codec=keep_codec)


def _kept_root(builder: Builder) -> dict[str, Any]:
    """The corpus folder the last `rag index` run read and why its embedder was chosen, kept in the manifest by a
    change that reads no folder, with the articles' languages counted again."""
    previous = builder.previous or {}
    languages = builder.language_counts()
    kept = {"root": previous["root"]} if previous.get("root") else {}
    if previous.get("embedder_note"):  # chosen automatically: said as the languages stand now
        kept["embedder_note"] = describe(str(builder.embedder["name"]), languages)
    return {**kept, "languages": languages}


def _with_index_chunking(settings: Settings) -> Settings:
    """settings with the chunk sizes the index was built with, so that articles added to it are chunked alike
    (a different tokenizer or splitter is still refused by the Builder)."""
    if not (Path(settings.index_dir) / MANIFEST).is_file():
        return settings
    chunking = read_manifest(settings.index_dir).get("chunking") or {}
    ours = chunking_settings(settings)
    if {k: chunking.get(k) for k in ("title_tokens", "splitter")} != {k: ours[k] for k in ("title_tokens", "splitter")}:
        return settings
    try:
        return settings.replace(chunk_tokens=int(chunking["chunk_tokens"]),
                                chunk_overlap_tokens=int(chunking["overlap_tokens"]))
    except (KeyError, TypeError, ValueError):
        return settings


@dataclass
class FileEntry:
    """A file read by this run, recorded as indexed only once all its articles are in (`missing` is empty): a run
    that stops half-way (after a checkpoint) leaves it unrecorded, so the next run reads it again."""

    path: str
    size: int
    mtime_ns: int
    article_ids: list[str]
    missing: set[str]


def _scan(files: Iterable[tuple[Path, Path]], settings: Settings, builder: Builder, report: IndexReport,
          say: Log) -> tuple[list[Article], list[FileEntry], set[str]]:
    """Read new and changed files, each (root, path); returns the articles that need embedding, the files waiting
    for them, and every path seen."""
    seen: set[str] = set()
    waiting: list[FileEntry] = []
    pending: dict[str, Article] = {}
    for root, path in files:
        key = str(path)
        seen.add(key)
        try:
            stat = path.stat()
        except OSError as exc:
            report.skipped.append(Skipped(key, unreadable_reason(path, exc)))
            continue
        known = builder.known_file(key)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            report.files_unchanged += 1
            continue
        try:
            articles, bad_lines = read_file(path, max_file_bytes=settings.max_file_bytes, root=root)
        except IngestError as exc:
            # A file that was indexed before and is unreadable now keeps its old entry: nothing is lost.
            report.skipped.append(Skipped(key, str(exc)))
            continue
        # named once: an unchanged file is not read again
        report.skipped_lines.extend(s for s in bad_lines if not s.kept)
        report.notes.extend(s for s in bad_lines if s.kept)
        ids = [a.id for a in articles]
        new = [a for a in articles if not builder.has_article(a.id) and a.id not in pending]
        for article in new:
            pending[article.id] = article
        if known is None:
            report.files_added += 1
        elif sorted(known[2]) != sorted(ids):
            report.files_updated += 1
            report.changed_paths.add(key)
        else:
            report.files_unchanged += 1  # touched, same content
        for article in articles:
            if article.id not in pending:  # a moved file keeps its vectors; a corrected date is taken
                builder.update_article(article)
        missing = {i for i in ids if i in pending}
        if missing:
            waiting.append(FileEntry(key, stat.st_size, stat.st_mtime_ns, ids, missing))
        else:
            builder.set_file(key, stat.st_size, stat.st_mtime_ns, ids)
    say(f"scanned {len(seen)} files: {len(pending)} new or changed articles to embed")
    return list(pending.values()), waiting, seen


def _record_files(builder: Builder, waiting: list[FileEntry], added: set[str]) -> list[FileEntry]:
    """Record the files whose articles are now all in; returns those still waiting."""
    still = []
    for entry in waiting:
        entry.missing -= added
        if entry.missing:
            still.append(entry)
        else:
            builder.set_file(entry.path, entry.size, entry.mtime_ns, entry.article_ids)
    return still


def embedding_input(title: str, chunk: Chunk) -> str:
    """What the embedder sees for a chunk: its article's (short) title, then the chunk text."""
    return f"{title}\n{chunk.text}" if title else chunk.text


def short_title(title: str, embedder: Embedder) -> tuple[str, int]:
    """The title cut to TITLE_TOKENS tokens, and its token count."""
    words = title.split()
    while words:
        candidate = " ".join(words)
        tokens = embedder.count_tokens([candidate])[0]
        if tokens <= TITLE_TOKENS:
            return candidate, tokens
        words = words[: max(1, len(words) * TITLE_TOKENS // tokens - 1)] if len(words) > 1 else []
    return "", 0


def _embed_and_add(articles: list[Article], settings: Settings, embedder: Embedder, builder: Builder,
                   report: IndexReport, say: Log, *, waiting: list[FileEntry], flush_at: int | None = None,
                   after_flush: Callable[[int, int, set[str]], None] | None = None) -> None:
    """Chunk and embed the articles, adding them step by step; after each step the files whose articles are all
    in are recorded, and after_flush(chunks done, chunks in all, the articles of files still waiting) may commit
    them (a checkpoint)."""
    flush_at = flush_at or EMBED_FLUSH  # read now: tests set EMBED_FLUSH to make many small steps
    planned: list[tuple[Article, list[Chunk], list[str]]] = []
    for article in articles:
        title, title_tokens = short_title(article.title, embedder)
        # never let title + chunk outgrow the model's window (+2 for its [CLS]/[SEP] tokens)
        budget = max(16, min(settings.chunk_tokens, embedder.max_tokens - 2 - title_tokens - 1))
        chunks = chunk_article(article, max_tokens=budget,
                               overlap_tokens=min(settings.chunk_overlap_tokens, budget // 2),
                               count_tokens=embedder.count_tokens)
        planned.append((article, chunks, [embedding_input(title, c) for c in chunks]))
    total = sum(len(c) for _, c, _ in planned)
    say(f"embedding {total} chunks with {embedder.name}")
    if total:
        builder.embedder["documents"] = documents_precision(str(builder.embedder.get("documents", "")),
                                                            str(getattr(embedder, "precision", "fp32")))
    done = 0
    started = time.perf_counter()
    batch: list[tuple[Article, list[Chunk], list[str]]] = []

    def flush() -> None:
        nonlocal done, waiting
        texts = [t for _, _, inputs in batch for t in inputs]
        vectors = embedder.embed_documents(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
        offset = 0
        for article, chunks, _ in batch:
            builder.add_article(article, chunks, vectors[offset:offset + len(chunks)])
            offset += len(chunks)
        done += len(texts)
        report.articles_added += len(batch)
        report.chunks_embedded = done
        rate = done / max(1e-9, time.perf_counter() - started)
        say(f"embedded {done}/{total} chunks ({rate:.1f} chunks/s)")
        waiting = _record_files(builder, waiting, {article.id for article, _, _ in batch})
        batch.clear()
        if after_flush:
            after_flush(done, total, {i for entry in waiting for i in entry.article_ids})

    for item in planned:
        batch.append(item)
        if sum(len(c) for _, c, _ in batch) >= flush_at:
            flush()
    if batch:
        flush()
    assert not waiting, f"files left waiting for articles never embedded: {[e.path for e in waiting][:3]}"
