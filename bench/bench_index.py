"""Indexing benchmark: how long `rag.api.build_index` takes on a corpus of synthetic news articles.

What it measures, per run:
  1. a full build of N synthetic articles (~300-600 words each, headline, `Published:` line, several
     paragraphs; see bench/synth.py) into a fresh index: articles, chunks, seconds, chunks/s, articles/s;
  2. peak RSS of this process (ru_maxrss, MiB; includes the embedder model and the benchmark itself) and the
     core count (os.cpu_count());
  3. an incremental re-index after 1% of the articles were changed (one sentence appended to each): seconds
     and how many chunks were re-embedded (report.chunks_embedded);
  4. a re-run with nothing changed (seconds; should embed 0 chunks).
With the real embedder, the time to load it (load_embedder(Settings())) is measured once and printed
separately; it is not part of the build time. With --repeat R > 1 the whole sequence (fresh folder, fresh
index) runs R times and the median of each figure is printed.

How to run (from the repository root, with the project's virtualenv):
    .venv/bin/python bench/bench_index.py                          # 2000 articles, real embedder
    .venv/bin/python bench/bench_index.py --articles 5000 --repeat 3
    .venv/bin/python bench/bench_index.py --embedder hash          # fake embedder: chunking + storage only
    .venv/bin/python bench/bench_index.py --precision fp32,bf16    # both document precisions, in one run
Options: --articles N (2000), --repeat R (1), --embedder real|hash (real), --precision P[,P] (auto),
--threads T (model threads, 0 = the app default: all cores), --seed S, --tmp DIR (where the temporary folder
goes), --no-warmup, --verbose. Before the timed runs, 3 throw-away articles are indexed once (warm-up, printed
separately) so lazy imports and the model's first forward pass are not charged to run 1; --no-warmup skips that.

Run it alone on a quiet machine (the reference box has 2 cores): other work on the machine skews the
timings, and the real embedder uses every core. Nothing outside the temporary folder is written.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from synth import Corpus  # noqa: E402

from rag.api import build_index, load_embedder  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.embed import Embedder  # noqa: E402


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def change_articles(paths: list[Path], fraction: float, rng: random.Random) -> int:
    """Append one sentence to `fraction` of the files (at least one); returns how many changed."""
    chosen = rng.sample(paths, max(1, round(len(paths) * fraction)))
    for i, path in enumerate(chosen):
        with path.open("a", encoding="utf-8") as f:
            f.write(f"\nIn a later statement, officials said the figures would be reviewed again "
                    f"within {i % 11 + 2} weeks after new complaints from residents.\n")
    return len(chosen)


def warm_up(embedder: Embedder, base: str | None) -> float:
    """Index 3 articles into a throw-away index, so one-time costs (lazy imports of faiss/sqlite code, the
    model's first forward pass) are not charged to the timed build; returns its seconds."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-warmup-", dir=base) as tmp:
        Corpus(seed=7).write(Path(tmp) / "articles", 3)
        started = time.perf_counter()
        build_index(Path(tmp) / "articles", settings=Settings(index_dir=Path(tmp) / "index"),
                    embedder=embedder)
        return time.perf_counter() - started


def one_run(run: int, args: argparse.Namespace, embedder: Embedder, base: str | None) -> dict[str, float]:
    say = print if args.verbose else None
    with tempfile.TemporaryDirectory(prefix="rag-bench-index-", dir=base) as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        paths = Corpus(seed=args.seed).write(tmp_path / "articles", args.articles)
        gen_s = time.perf_counter() - started
        settings = Settings(index_dir=tmp_path / "index", threads=args.threads)

        gc.collect()
        started = time.perf_counter()
        report = build_index(tmp_path / "articles", settings=settings, embedder=embedder, log=say)
        full_s = time.perf_counter() - started
        counts = report.manifest.get("counts", {})
        articles, chunks = int(counts.get("articles", 0)), int(counts.get("chunks", 0))
        rss = peak_rss_mib()

        changed = change_articles(paths, 0.01, random.Random(args.seed + run))
        started = time.perf_counter()
        update = build_index(tmp_path / "articles", settings=settings, embedder=embedder, log=say)
        reindex_s = time.perf_counter() - started

        started = time.perf_counter()
        same = build_index(tmp_path / "articles", settings=settings, embedder=embedder, log=say)
        nochange_s = time.perf_counter() - started

    return {
        "articles": articles,
        "chunks": chunks,
        "full_s": full_s,
        "chunks_per_s": chunks / full_s if full_s else 0.0,
        "articles_per_s": articles / full_s if full_s else 0.0,
        "peak_rss_mib": rss,
        "changed_articles": changed,
        "reindex_s": reindex_s,
        "reindex_chunks_embedded": update.chunks_embedded,
        "nochange_s": nochange_s,
        "nochange_chunks_embedded": same.chunks_embedded,
        "generate_s": gen_s,
    }


LABELS = [
    ("articles", "articles", "{:.0f}"),
    ("chunks", "chunks", "{:.0f}"),
    ("full_s", "full build (s)", "{:.2f}"),
    ("chunks_per_s", "chunks/s", "{:.1f}"),
    ("articles_per_s", "articles/s", "{:.2f}"),
    ("peak_rss_mib", "peak RSS (MiB)", "{:.0f}"),
    ("changed_articles", "changed articles (1%)", "{:.0f}"),
    ("reindex_s", "re-index after 1% change (s)", "{:.2f}"),
    ("reindex_chunks_embedded", "chunks re-embedded", "{:.0f}"),
    ("nochange_s", "no-change re-run (s)", "{:.2f}"),
    ("nochange_chunks_embedded", "chunks embedded, no change", "{:.0f}"),
    ("generate_s", "writing the corpus (s, not timed above)", "{:.2f}"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000, help="synthetic articles to index (2000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are printed when > 1 (1)")
    parser.add_argument("--embedder", choices=("real", "hash"), default="real",
                        help="real = the app's sentence-transformers model; hash = tests.fakes.HashEmbedder")
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads (Settings.threads; 0 = all cores)")
    parser.add_argument("--precision", default="auto",
                        help="document precision(s) of the real embedder, comma-separated, each measured in turn "
                             "in this run: auto, fp32, bf16 (auto)")
    parser.add_argument("--seed", type=int, default=1234, help="corpus seed (1234)")
    parser.add_argument("--tmp", default=None, help="parent folder for the temporary corpus and index")
    parser.add_argument("--no-warmup", action="store_true",
                        help="do not index 3 throw-away articles first (one-time costs then land in run 1)")
    parser.add_argument("--verbose", action="store_true", help="print build_index's progress lines")
    args = parser.parse_args(argv)
    if args.articles < 1 or args.repeat < 1:
        parser.error("--articles and --repeat must be at least 1")

    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    print(f"bench_index: {args.articles} articles, embedder={args.embedder}, repeat={args.repeat}, "
          f"cores={os.cpu_count()}, threads={args.threads or 'default'}, documents in {', '.join(precisions)}")
    columns: dict[str, list[dict[str, float]]] = {}
    loads: dict[str, float] = {}
    for precision in precisions if args.embedder == "real" else ["-"]:
        embedder: Embedder
        if args.embedder == "hash":
            from tests.fakes import HashEmbedder

            embedder = HashEmbedder()
        else:
            started = time.perf_counter()
            embedder = load_embedder(Settings(threads=args.threads, embed_precision=precision))
            loads[precision] = time.perf_counter() - started
            print(f"embedder load: {loads[precision]:.2f} s  ({embedder.name}, dim {embedder.dim}, documents in "
                  f"{getattr(embedder, 'precision', '?')}, peak RSS so far {peak_rss_mib():.0f} MiB)")
        got = str(getattr(embedder, "precision", precision))
        label = got if got == precision or args.embedder == "hash" else f"{precision}={got}"  # auto=bf16
        if not args.no_warmup:
            print(f"warm-up (3 articles, not counted): {warm_up(embedder, args.tmp):.2f} s")
        runs = columns.setdefault(label, [])
        for run in range(args.repeat):
            result = one_run(run, args, embedder, args.tmp)
            runs.append(result)
            if args.repeat > 1:
                print(f"{label} run {run + 1}/{args.repeat}: full {result['full_s']:.2f} s, "
                      f"{result['chunks_per_s']:.1f} chunks/s, re-index {result['reindex_s']:.2f} s, "
                      f"no-change {result['nochange_s']:.2f} s")

    what = "median of %d runs" % args.repeat if args.repeat > 1 else "1 run"
    print(f"\nresults ({what}; one column per document precision):")
    width = max(len(label) for _, label, _ in LABELS)
    print(f"  {'':<{width}}  " + "  ".join(f"{name:>10}" for name in columns))
    for key, label, fmt in LABELS:
        cells = [fmt.format(statistics.median(r[key] for r in runs)) for runs in columns.values()]
        print(f"  {label:<{width}}  " + "  ".join(f"{c:>10}" for c in cells))
    print(f"  {'cores (os.cpu_count())':<{width}}  {os.cpu_count()}")
    for precision, load_s in loads.items():
        print(f"  {'embedder load (s, separate)':<{width}}  {load_s:.2f} ({precision})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
