"""Command line: rag index | info | search | ask | chat | eval | config. Results on stdout, logs on stderr."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from . import faiss_index
from .config import Settings
from .errors import RagError


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Progress:
    """Progress on stderr: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, msg: str) -> None:
        now = time.monotonic()
        if self.tty:
            print("\r\033[K" + msg, end="", file=sys.stderr, flush=True)
        elif now - self.last >= 2.0 or not msg.startswith("embedded"):
            _stderr(msg)
            self.last = now

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(index_dir=getattr(args, "index_dir", None), **extra)


def cmd_index(args: argparse.Namespace) -> int:
    from .api import build_index

    progress = _Progress()
    report = build_index(args.path, settings=_settings(args), rebuild=args.rebuild, replace=args.replace,
                         log=progress)
    progress.done()
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.json else report.summary())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .api import index_info

    info = index_info(_settings(args), check=True)  # a damaged index is an error (exit code 1), not a report
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    counts, emb, faiss = info.get("counts", {}), info.get("embedder", {}), info.get("faiss", {})
    print(f"index:      {info['index_dir']}  ({info.get('generation')}, format {info.get('format_version')})")
    print(f"corpus:     {info.get('root', '?')}")
    print(f"contents:   {counts.get('articles', 0)} articles, {counts.get('chunks', 0)} chunks, "
          f"{counts.get('files', 0)} files")
    print(f"embedder:   {emb.get('name')} ({emb.get('dim')} dims"
          + (f", documents: {emb['documents']}" if emb.get("documents") else "") + ")"
          + (f"; {info['embedder_note']}" if info.get("embedder_note") else ""))
    if info.get("languages"):
        print("languages:  " + ", ".join(f"{lang} {n}" for lang, n in info["languages"].items()))
    ivf = f" ({faiss_index.ivf_codec(faiss)} codes, nlist {faiss['nlist']})" if faiss.get("type") == "ivf" else ""
    deltas = len(info.get("vector_files", [])) - 1
    print(f"vectors:    {faiss.get('type')}{ivf}; update {info.get('update', 0)}"
          + (f", {deltas} delta file{'s' if deltas != 1 else ''} beside the base" if deltas > 0 else ""))
    print(f"chunking:   {info.get('chunking')}")
    print(f"updated at: {info.get('built_at')}")
    print("health:     ok (store.sqlite and the vector files open; sizes and counts match what the index recorded)")
    return 0


def _filters(args: argparse.Namespace) -> Any:
    from .retrieve import Filters

    return Filters(article_ids=tuple(args.article_id or ()), titles=tuple(args.title or ()),
                   date_from=args.date_from, date_to=args.date_to)


def cmd_search(args: argparse.Namespace) -> int:
    from .api import Pipeline

    pipeline = Pipeline(_settings(args))
    hits = pipeline.retrieve(args.question, filters=_filters(args), top_k=args.top_k, mode=args.mode,
                             as_of=args.as_of)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print("no passages found")
    for hit in hits:
        print(f"[{hit.rank}] {hit.score:.4f}  {hit.title}  ({hit.published or 'no date'}; {Path(hit.source).name})")
        print("    " + hit.chunk.text[:300].replace("\n", " ") + ("…" if len(hit.chunk.text) > 300 else ""))
    return 0


def eval_index_dir(corpus: Path) -> Path:
    """Where `rag eval` keeps the index of a corpus: index/eval-<folder>-<hash of its path>."""
    import hashlib

    resolved = corpus.expanduser().resolve()
    return Path("index") / f"eval-{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import Pipeline, build_index
    from .eval import load_questions, score_answers, score_retrieval

    questions = load_questions(args.questions, limit=args.limit, split=args.split)
    index_dir = args.index_dir or eval_index_dir(args.corpus)
    settings = Settings.from_env(index_dir=index_dir, top_k=args.top_k)
    progress = _Progress()
    pipeline = Pipeline(settings)
    report = build_index(args.corpus, settings=settings, log=progress)  # the Pipeline then loads the same embedder
    progress.done()
    _stderr(report.summary().splitlines()[1])
    started = time.perf_counter()
    if args.retrieval_only:
        top_k = max(10, args.top_k or 0)
        result = score_retrieval(questions, lambda q: pipeline.retrieve(q.question, mode=args.mode, top_k=top_k,
                                                                         as_of=q.as_of or args.as_of))
    else:
        result = score_answers(questions, lambda q: pipeline.ask(q.question, as_of=q.as_of or args.as_of),
                               min_support=settings.min_support, progress=_stderr, top_k=settings.top_k)
    result.summary["seconds"] = round(time.perf_counter() - started, 1)
    result.summary["mode"] = args.mode if args.retrieval_only else "answer"
    result.summary["split"] = args.split or "all"
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        _stderr(f"wrote {args.json}")
    print(result.table())
    return 0


def _screen_rows(text: str, columns: int) -> int:
    """How many terminal rows text takes when written from the start of a row."""
    return sum(max(1, -(-len(line) // max(1, columns))) for line in text.split("\n"))


def _erase(written: str) -> None:
    """Takes text written from the start of a terminal row off the screen, the cursor left where it began."""
    if written:
        up = _screen_rows(written, shutil.get_terminal_size().columns) - 1
        print("\r" + (f"\033[{up}A" if up else "") + "\033[J", end="")


def cmd_ask(args: argparse.Namespace) -> int:
    from .answer import REVISED
    from .api import Pipeline
    from .types import Answer

    pipeline = Pipeline(_settings(args))
    answer: Answer | None = None
    live = sys.stdout.isatty() and not args.json  # a pipe or a file gets the checked answer only, once
    written = ""
    for event in pipeline.stream(args.question, filters=_filters(args), as_of=args.as_of):
        if isinstance(event, Answer):
            answer = event
        elif event == REVISED and live:  # checked words replace the draft at once
            _erase(written)
            written = ""
        elif isinstance(event, str) and live:
            print(event, end="", flush=True)  # the answer as it is written
            written += event
    assert answer is not None
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    _erase(written)  # the checked answer replaces the draft (markers dropped, or refused)
    print(answer.text)
    for c in answer.citations:
        print(f"  [{c.marker}] {c.title} ({c.published or 'no date'}; {Path(c.source).name}, chars {c.start}-{c.end})")
        print(f"      “{c.quote}”")
    for s in answer.sentences:
        if not s.supported:
            print(f"  unverified: {s.text}")
    if answer.note:
        print(f"  note: {answer.note}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """Start the Gradio app in this process's place, as a module: the checkout's ui/ when rag runs from one,
    else the installed rag_ui package; the library never imports the UI."""
    import importlib.util
    import os

    from .config import CHECKOUT_DIR

    env = dict(os.environ)
    if CHECKOUT_DIR is not None and (CHECKOUT_DIR / "ui" / "app.py").is_file():
        module = "ui.app"  # with the checkout first on the path, the app imports this same rag
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT_DIR), env.get("PYTHONPATH", "")) if p)
    elif importlib.util.find_spec("rag_ui") is not None:
        module = "rag_ui.app"
    else:
        _stderr("error: the chat app (package rag_ui) is missing from this install of rag; reinstall rag "
                "(pip install --force-reinstall .) from its repository")
        return 1
    argv = [sys.executable, "-m", module, "--host", args.host, "--port", str(args.port)]
    if args.index_dir:
        argv += ["--index-dir", str(args.index_dir)]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).describe(), indent=2))
    return 0


def _positive(text: str) -> int:
    """argparse type: a whole number above 0 (a --top-k of 0 meant the default, and -3 found nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_index(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--index-dir", type=Path, help="index folder (default: $RAG_INDEX_DIR or index/default)")
        return p

    p = with_index(sub.add_parser("index", help="build or update the index of a folder of articles"))
    p.add_argument("path", nargs="?", type=Path, help="folder or file (default: the folder the index was built "
                   "from; for a new index, the bundled sample corpus)")
    p.add_argument("--rebuild", action="store_true", help="start from empty instead of updating (from PATH, or the "
                   "folder the index was built from)")
    p.add_argument("--replace", action="store_true", help="keep only PATH's files: drop the articles of files the "
                   "index holds from elsewhere (refused without this flag)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_index)

    p = with_index(sub.add_parser("info", help="show the index manifest and counts"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = with_index(sub.add_parser("search", help="ranked passages for a question (no language model)"))
    p.add_argument("question")
    p.add_argument("--top-k", type=_positive, default=None)
    p.add_argument("--mode", choices=("hybrid", "dense", "lexical"), default="hybrid")
    p.add_argument("--json", action="store_true")
    _add_filters(p)
    p.set_defaults(func=cmd_search)

    p = with_index(sub.add_parser("ask", help="a cited answer to a question"))
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print Answer.to_dict() (schema-versioned JSON)")
    _add_filters(p)
    p.set_defaults(func=cmd_ask)

    p = with_index(sub.add_parser("chat", help="open the browser chat on the index"))
    p.add_argument("--host", default="127.0.0.1", help="address to serve on; 0.0.0.0 exposes it to the network")
    p.add_argument("--port", type=_port, default=7860)
    p.set_defaults(func=cmd_chat)

    p = with_index(sub.add_parser("eval", help="score a question set (answers, citations, retrieval, latency)"))
    p.add_argument("questions", type=Path, help="JSON Lines question set (see README)")
    p.add_argument("--corpus", type=Path, required=True, help="the folder of articles the questions are about")
    p.add_argument("--json", type=Path, help="write summary and per-question rows to this file")
    p.add_argument("--retrieval-only", action="store_true", help="score retrieval only (no language model)")
    p.add_argument("--mode", choices=("hybrid", "dense", "lexical"), default="hybrid", help="with --retrieval-only")
    p.add_argument("--top-k", type=_positive, default=None)
    p.add_argument("--limit", type=_positive, default=None, help="only the first N questions")
    p.add_argument("--split", choices=("dev", "test"), default=None,
                   help="only the dev or the test half (fixed by a hash of each question id)")
    p.add_argument("--as-of", help="YYYY-MM-DD for rows without an as_of field (default today; the answers read "
                   "it, so give one to compare runs made on different days)")
    p.set_defaults(func=cmd_eval)

    p = with_index(sub.add_parser("config", help="print the settings in effect"))
    p.set_defaults(func=cmd_config)
    return parser


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as-of", help="the day the question is asked on, YYYY-MM-DD (default today): nothing "
                   "published later is used, and 'this week' means the week before it")
    p.add_argument("--article-id", action="append", help="only this article (repeatable)")
    p.add_argument("--title", action="append", help="only articles whose title contains this (repeatable)")
    p.add_argument("--date-from", help="only articles published on or after YYYY-MM-DD")
    p.add_argument("--date-to", help="only articles published on or before YYYY-MM-DD")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RagError as exc:
        _stderr(f"error: {exc}")
        return 1
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except KeyboardInterrupt as exc:  # an indexing run says what of it is in the index (indexing.IndexInterrupted)
        _stderr(f"interrupted; {exc}" if str(exc) else "interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
