"""Upload benchmark: how long 10 articles (about 50 chunks) take from "Add to the index" to answerable.

What it measures: an index of the bundled sample corpus is built first (not timed). Then, twice (the first
upload of a chat also loads the embedder uploads are indexed with; the second finds it loaded), 10 synthetic
articles (bench/synth.py, ~450 words each) are given to rag.add_articles as
the chat gives them, with the real packaged MiniLM embedder, and a Pipeline that was open before the upload
retrieves a question about one of them: "answerable" is that article ranked first. Printed: each progress
message with its time, the seconds to add_articles' return and to answerable, the chunks embedded, and the
CPU-seconds used with the load average (other work on the machine stretches the wall time, not the CPU time).

How to run (from the repository root, alone on the machine; the reference box has 2 cores):
    .venv/bin/python bench/bench_upload.py [--articles 10] [--json bench/out/upload.json]
Nothing outside a temporary folder is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from synth import Corpus  # noqa: E402

from rag import Pipeline, Settings, add_articles, build_index  # noqa: E402

WORDS = 450  # words per article: about 5 chunks of 200 MiniLM tokens (invented names take several tokens)


def write_articles(folder: Path, corpus: Corpus, first: int, n: int) -> list[Path]:
    """n articles of about WORDS words: a synthetic article, continued with paragraphs of the next one."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        name, text = corpus.article(first + 2 * k)
        head, body = text.split("\n\n", 1)
        paragraphs = (body + "\n\n" + corpus.article(first + 2 * k + 1)[1].split("\n\n", 1)[1]).split("\n\n")
        kept: list[str] = []
        while paragraphs and sum(len(p.split()) for p in kept) < WORDS:
            kept.append(paragraphs.pop(0))
        path = folder / name
        path.write_text(head + "\n\n" + "\n\n".join(kept) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def upload(paths: list[Path], settings: Settings, pipeline: Pipeline) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    log: list[tuple[float, str]] = []

    def say(message: str) -> None:
        log.append((round(time.perf_counter() - started, 2), message))
        print(f"  {log[-1][0]:6.2f} s  {message}", file=sys.stderr, flush=True)

    report = add_articles(paths, settings=settings, log=say)
    added = time.perf_counter() - started
    target = report.articles[len(report.articles) // 2]
    question = " ".join(target.title.split()[:8])
    hits = pipeline.retrieve(question)
    answerable = time.perf_counter() - started
    assert hits and hits[0].chunk.article_id == target.id, (question, [h.title for h in hits[:3]])
    assert report.index is not None
    return {"articles": len(report.articles), "chunks": report.index.chunks_embedded, "added_s": round(added, 2),
            "answerable_s": round(answerable, 2), "cpu_s": round(time.process_time() - cpu, 2),
            "load_average": os.getloadavg()[0], "progress": log}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index_dir=Path(tmp) / "index")
        build_index(None, settings=settings)  # the sample corpus
        pipeline = Pipeline(settings)
        pipeline.retrieve("warm-up question")  # the chat has its store and query embedder open already
        corpus = Corpus(seed=2024)
        runs = {}
        for run, first in (("first upload", 0), ("second upload", 1000)):
            print(f"{run}:", file=sys.stderr)
            paths = write_articles(Path(tmp) / f"incoming-{first}", corpus, first, args.articles)
            runs[run] = upload(paths, settings, pipeline)
            r = runs[run]
            print(f"{run}: {r['articles']} articles, {r['chunks']} chunks: added in {r['added_s']} s, "
                  f"answerable after {r['answerable_s']} s, {r['cpu_s']} CPU-seconds "
                  f"(load average {r['load_average']:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
