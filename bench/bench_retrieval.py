"""Retrieval benchmark: FAISS search latency and IVF recall at scale, and end-to-end hybrid retrieval latency.

Part 1, vector search (for each --sizes N):
  * N random unit vectors of dimension 384 (float32, seeded), clustered like real embeddings: drawn around
    --centres (2000) random centres of uneven popularity with Gaussian noise, then L2-normalised;
  * two indexes, as the app builds them (rag/faiss_index.py): exact `IndexIDMap2(IndexFlatIP(384))`, and
    `IndexIVFFlat` (inner product) with nlist = int(4*sqrt(N)) capped like the app at N // 39 (so k-means has
    >= 39 points per list; the cap only bites below ~24k vectors) unless --nlist gives a number, trained on
    a sample of min(N, nlist*40) vectors; the build time of each (IVF: train + add) is printed;
  * Q queries (--queries, 200) = dataset vectors perturbed with noise and re-normalised, searched ONE AT A
    TIME (as the app does) for the top --k (10): p50/p95 latency in ms for flat and for IVF at each
    --nprobe, and recall@k of IVF against the exact flat results.
Part 2, hybrid retrieval on a real index: --hybrid-articles (2000) synthetic articles (bench/synth.py,
  ~6 chunks each with the fake embedder) indexed with `build_index` and tests.fakes.HashEmbedder, then
  `Pipeline(settings, embedder=HashEmbedder()).retrieve(question)` timed for --hybrid-questions (100)
  questions made of words from the articles: p50/p95 ms for hybrid (FAISS + SQLite FTS5/BM25 + fusion),
  and for dense-only and lexical-only for comparison. The fake embedder costs next to nothing, so this is
  the store's share of a query; the real model's query embedding comes on top of it.
Part 3, end-to-end hybrid retrieval at size (--scale 10000,100000,1000000): an index of that many chunks is
  written straight through rag.builder.Builder (synthetic paragraphs, hashed vectors of MiniLM's shape: 384
  dims; IVF above the app's ann_threshold, as the app builds it), then `Pipeline.retrieve(question)` is timed
  --repeat times over 100 questions for hybrid, hybrid as it was before BM25 was skipped for questions whose
  rarest word is over the postings budget ("before"), dense and lexical, with the question embedded by the real
  MiniLM (--query-embedder minilm, the default; `hash` leaves the model out), and its parts on their own
  (FTS5 BM25 with and without the postings budget, FAISS, the query embedding).
A compact table of everything is printed at the end.

Recall depends heavily on how the synthetic vectors are spread (--centres, --noise, --query-noise): with the
defaults a query's exact 1st neighbour (the vector it was made from) is at cosine ~0.8 and members of one
cluster at ~0.5; the script prints the exact neighbours' mean cosines so the regime is visible. Small N is
pessimistic: at 10k vectors there are only ~5 per cluster, so the 10 nearest are partly noise and IVF finds
them less often. Treat the recall figures as indicative; check recall on real embeddings before relying on it.

How to run (from the repository root, with the project's virtualenv):
    .venv/bin/python bench/bench_retrieval.py                      # 10k, 100k, 1M vectors; 2000 articles
    .venv/bin/python bench/bench_retrieval.py --sizes 100000 --nprobe 4,8,16,32,64
    .venv/bin/python bench/bench_retrieval.py --sizes 10000 --queries 20 --hybrid-articles 100   # smoke test
    .venv/bin/python bench/bench_retrieval.py --sizes "" --hybrid-articles 0 --scale 10000,100000,1000000
Other options: --nlist auto|N, --k 10, --centres 2000, --noise 0.05 (per-dimension spread around a centre),
--query-noise 0.035, --threads T (calls faiss.omp_set_num_threads(T); by default faiss's own default is
left alone), --hybrid-articles 0 (skip part 2), --seed S, --tmp DIR.
Memory: the largest size dominates; at 1M the vectors (1.5 GB) are held twice at a time (data + flat, then
data + IVF; the flat index is freed before the IVF is built), about 3.5 GB at peak. Building the IVF at 1M
(k-means over 160k vectors into 4000 lists) takes minutes.

Run it alone on a quiet machine (the reference box has 2 cores): anything else running skews the latencies
and the build times.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import faiss  # noqa: E402

if TYPE_CHECKING:
    from rag.embed import Embedder

DIM = 384


def say(msg: str) -> None:
    print(msg, flush=True)


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def clustered_vectors(n: int, centres: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors around `centres` random unit centres (uneven cluster sizes), built block by block."""
    c = rng.standard_normal((centres, DIM), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, centres)
    p = weights / weights.sum()
    out = np.empty((n, DIM), dtype=np.float32)
    block = 65536
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        x = c[rng.choice(centres, hi - lo, p=p)]
        x += noise * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:hi] = x
    return out


def make_queries(data: np.ndarray, q: int, noise: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """q dataset vectors plus noise, re-normalised; and which rows they were made from."""
    picks = rng.choice(len(data), min(q, len(data)), replace=False)
    x = data[picks] + noise * rng.standard_normal((len(picks), DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32), picks


def auto_nlist(n: int) -> int:
    # The app's rule (rag/faiss_index.py): 4*sqrt(N), at most N // 39 (k-means wants >= 39 points per list).
    return int(max(1, min(65536, 4 * np.sqrt(n), n // 39)))


def time_queries(index: faiss.Index, queries: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search one query at a time; returns (latencies in ms, scores (Q, k), result ids (Q, k))."""
    for i in range(min(5, len(queries))):  # warm-up, not timed
        index.search(queries[i:i + 1], k)
    lat = np.empty(len(queries))
    ids = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    for i in range(len(queries)):
        started = time.perf_counter()
        score, found = index.search(queries[i:i + 1], k)
        lat[i] = (time.perf_counter() - started) * 1000
        ids[i], scores[i] = found[0], score[0]
    return lat, scores, ids


def recall(truth: np.ndarray, got: np.ndarray) -> float:
    k = truth.shape[1]
    hits = [len(set(t[t >= 0]) & set(g[g >= 0])) / k for t, g in zip(truth, got)]
    return float(np.mean(hits))


def pct(lat: np.ndarray) -> tuple[float, float]:
    p50, p95 = np.percentile(lat, [50, 95])
    return float(p50), float(p95)


def bench_size(n: int, args: argparse.Namespace, nprobes: list[int], rows: list[dict]) -> None:
    rng = np.random.default_rng(args.seed + n)
    say(f"\n== N = {n:,} vectors x {DIM} (float32, {n * DIM * 4 / 2**20:,.0f} MiB) ==")
    started = time.perf_counter()
    data = clustered_vectors(n, args.centres, args.noise, rng)
    ids = np.arange(n, dtype=np.int64)
    queries, sources = make_queries(data, args.queries, args.query_noise, rng)
    say(f"data: {time.perf_counter() - started:.1f} s to generate; {len(queries)} queries, mean cosine to "
        f"the vector each was made from {float(np.mean(np.sum(queries * data[sources], axis=1))):.2f}")

    started = time.perf_counter()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    flat.add_with_ids(data, ids)
    flat_build = time.perf_counter() - started
    lat, scores, truth = time_queries(flat, queries, args.k)
    p50, p95 = pct(lat)
    say(f"flat: build {flat_build:.2f} s; search p50 {p50:.2f} ms, p95 {p95:.2f} ms; exact neighbours' mean "
        f"cosine: 1st {float(scores[:, 0].mean()):.2f}, "
        f"2nd {float(scores[:, min(1, args.k - 1)].mean()):.2f}, "
        f"{args.k}th {float(scores[:, -1].mean()):.2f}")
    rows.append({"n": n, "index": "flat", "nlist": "", "nprobe": "", "build": flat_build,
                 "p50": p50, "p95": p95, "recall": 1.0})
    del flat
    gc.collect()

    nlist = auto_nlist(n) if args.nlist == "auto" else int(args.nlist)
    sample_n = min(n, nlist * 40)
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(DIM)
    ivf = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = data[rng.choice(n, sample_n, replace=False)]
    ivf.train(sample)
    train_s = time.perf_counter() - started
    del sample
    ivf.add_with_ids(data, ids)
    ivf_build = time.perf_counter() - started
    say(f"ivf: nlist {nlist}, trained on {sample_n:,}; build {ivf_build:.2f} s "
        f"(train {train_s:.2f} s + add {ivf_build - train_s:.2f} s)")
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        lat, _, got = time_queries(ivf, queries, args.k)
        p50, p95 = pct(lat)
        r = recall(truth, got)
        say(f"ivf nprobe {nprobe}: search p50 {p50:.3f} ms, p95 {p95:.3f} ms; recall@{args.k} {r:.3f}")
        rows.append({"n": n, "index": "ivf", "nlist": nlist, "nprobe": nprobe, "build": ivf_build,
                     "p50": p50, "p95": p95, "recall": r})
    say(f"peak RSS so far: {peak_rss_mib():,.0f} MiB")
    del ivf, quantizer, data, queries, sources, ids
    gc.collect()


def bench_hybrid(args: argparse.Namespace) -> list[dict]:
    from synth import Corpus, questions_from

    from rag.api import Pipeline, build_index
    from rag.config import Settings
    from tests.fakes import HashEmbedder

    say(f"\n== hybrid retrieval: {args.hybrid_articles} synthetic articles, HashEmbedder ==")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-bench-retrieval-", dir=args.tmp) as tmp:
        folder = Path(tmp) / "articles"
        paths = Corpus(seed=args.seed).write(folder, args.hybrid_articles)
        settings = Settings(index_dir=Path(tmp) / "index")
        started = time.perf_counter()
        report = build_index(folder, settings=settings, embedder=HashEmbedder())
        build_s = time.perf_counter() - started
        chunks = int(report.manifest.get("counts", {}).get("chunks", 0))
        say(f"index: {chunks:,} chunks, built in {build_s:.2f} s")
        questions = questions_from(paths, args.hybrid_questions, seed=args.seed)
        pipeline = Pipeline(settings, embedder=HashEmbedder())
        try:
            for mode in ("hybrid", "dense", "lexical"):
                for q in questions[:5]:  # warm-up: opens the store, fills caches
                    pipeline.retrieve(q, mode=mode)
                lat = np.empty(len(questions))
                empty = 0
                for i, q in enumerate(questions):
                    started = time.perf_counter()
                    hits = pipeline.retrieve(q, mode=mode)
                    lat[i] = (time.perf_counter() - started) * 1000
                    empty += not hits
                p50, p95 = pct(lat)
                say(f"{mode}: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {len(questions)} questions"
                    + (f" ({empty} returned nothing)" if empty else ""))
                rows.append({"n": chunks, "index": f"{mode} (rag)", "nlist": "", "nprobe": "",
                             "build": build_s, "p50": p50, "p95": p95, "recall": None})
        finally:
            pipeline.close()
    return rows


def build_synthetic_index(index_dir: Path, chunks: int, seed: int,
                          embedder: Embedder | None = None) -> tuple[list[str], float]:
    """An index of about `chunks` chunks written straight through rag.builder.Builder (one chunk a paragraph of
    a bench/synth.py article, HashEmbedder vectors), skipping files and ingestion so 1M chunks take minutes,
    not hours. Returns 100 questions made from the articles, and the build time in seconds."""
    import hashlib

    from synth import Corpus

    from rag.builder import Builder
    from rag.config import Settings
    from rag.indexing import chunking_settings
    from rag.types import Article, Chunk
    from tests.fakes import HashEmbedder

    embedder, corpus, settings = embedder or HashEmbedder(), Corpus(seed=seed), Settings()
    started = time.perf_counter()
    builder = Builder(index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim,
                      chunking=chunking_settings(settings), ann_threshold=settings.ann_threshold,
                      nprobe=settings.ivf_nprobe, rebuild=True)
    written, i, sample_texts = 0, 0, []
    try:
        while written < chunks:
            name, text = corpus.article(i)
            title, _, body = text.split("\n", 2)
            digest = hashlib.sha256(text.encode()).hexdigest()
            article = Article(id=digest[:16], title=title, text=text, source=name, sha256=digest)
            parts: list[Chunk] = []
            offset = len(title) + len(_) + 1
            for para in body.split("\n\n"):
                start = text.index(para, offset)
                parts.append(Chunk(f"{article.id}-{len(parts):03d}", article.id, para, start, start + len(para)))
                offset = start + len(para)
            parts = parts[: chunks - written]
            builder.add_article(article, parts, embedder.embed_documents([c.text for c in parts]))
            builder.set_file(name, len(text), 0, [article.id])
            written += len(parts)
            if i % 997 == 0:
                sample_texts.append(body)
            if i % 20000 == 0 and i:
                say(f"  {written:,} chunks written, {time.perf_counter() - started:.0f} s")
            i += 1
        builder.commit()
    except BaseException:
        builder.abort()
        raise
    return synth_questions(sample_texts, 100, seed), time.perf_counter() - started


def synth_questions(bodies: list[str], n: int, seed: int) -> list[str]:
    import random
    import re

    from synth import _FUNCTION

    rng, stop, out = random.Random(seed), set(_FUNCTION), []
    for _ in range(n):
        words = [w for w in re.findall(r"[A-Za-z]+", rng.choice(bodies)) if w.lower() not in stop and len(w) > 3]
        out.append(rng.choice(("What happened with", "Why did", "Who said", "When was", "What is")) + " "
                   + " ".join(rng.sample(words, min(len(words), rng.randint(3, 6)))) + "?")
    return out


@contextlib.contextmanager
def _rarest_word_always_kept(on: bool) -> Iterator[None]:
    """The postings budget as it was before: the rarest word was scored even when it alone was over budget."""
    from rag import store as rag_store
    from rag.lexical import affordable_terms

    def before(terms: list[str], freq: dict[str, int], budget: int) -> list[str]:
        return affordable_terms(terms, freq, budget) or sorted(terms, key=lambda t: freq[t])[:1]

    if on:
        rag_store.affordable_terms = before  # type: ignore[assignment]
    try:
        yield
    finally:
        rag_store.affordable_terms = affordable_terms


def bench_hybrid_scale(sizes: list[int], args: argparse.Namespace) -> list[dict]:
    """End-to-end Pipeline.retrieve() at each size, hybrid, dense and lexical, with the store's parts timed."""
    from rag.api import Pipeline
    from rag.config import Settings
    from tests.fakes import HashEmbedder

    if args.query_embedder == "minilm":
        # The real query path: MiniLM embeds each question (~10 ms on 2 cores); the index holds hashed vectors
        # of MiniLM's shape (384 dims, its name), since embedding 1M chunks for real would take ~14 hours.
        from rag.api import load_embedder

        query_embedder: object = load_embedder(Settings())  # as a Pipeline loads it (question on one thread)
        doc_embedder = type("MiniLMShaped", (HashEmbedder,), {"dim": query_embedder.dim,  # type: ignore[attr-defined]
                                                              "name": query_embedder.name})()  # type: ignore[attr-defined]
    else:
        query_embedder = doc_embedder = HashEmbedder()
    rows = []
    for n in sizes:
        say(f"\n== hybrid retrieval at {n:,} chunks (synthetic, {type(doc_embedder).__name__} {doc_embedder.dim} dims, "
            f"questions embedded by {type(query_embedder).__name__}, written through Builder) ==")
        with tempfile.TemporaryDirectory(prefix="rag-bench-scale-", dir=args.tmp) as tmp:
            index_dir = Path(tmp) / "index"
            questions, build_s = build_synthetic_index(index_dir, n, args.seed, doc_embedder)
            manifest = json.loads((index_dir / "manifest.json").read_text())
            say(f"index: {manifest['counts']['chunks']:,} chunks in {manifest['counts']['articles']:,} articles, "
                f"faiss {manifest['faiss']}, built in {build_s:.0f} s")
            pipeline = Pipeline(Settings(index_dir=index_dir), embedder=query_embedder)  # type: ignore[arg-type]
            try:
                store = pipeline.store
                for mode, label in (("hybrid", "hybrid (rag)"), ("hybrid", "hybrid (before)"),
                                    ("dense", "dense (rag)"), ("lexical", "lexical (rag)")):
                    # "before": BM25 still scored the rarest word when even it was over the postings budget
                    with _rarest_word_always_kept(label == "hybrid (before)"):
                        for q in questions[:5]:
                            pipeline.retrieve(q, mode=mode)
                        lat = []
                        for _ in range(args.repeat):
                            for q in questions:
                                t0 = time.perf_counter()
                                pipeline.retrieve(q, mode=mode)
                                lat.append((time.perf_counter() - t0) * 1000)
                    p50, p95 = pct(np.asarray(lat))
                    say(f"{label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({len(lat)} queries)")
                    rows.append({"n": n, "index": label, "nlist": manifest["faiss"].get("nlist", ""),
                                 "nprobe": manifest["faiss"].get("nprobe", ""), "build": build_s,
                                 "p50": p50, "p95": p95, "recall": None})
                qvecs = [query_embedder.embed_query(q) for q in questions]  # type: ignore[attr-defined]
                budget = pipeline.settings.lexical_postings_budget
                parts = {f"FTS5 BM25 (50, budget {budget:,})": [
                             partial(store.search_lexical, q, 50, postings_budget=budget) for q in questions],
                         "FTS5 BM25 (50, every word)": [partial(store.search_lexical, q, 50) for q in questions],
                         "FAISS (50)": [partial(store.search_dense, v, 50) for v in qvecs],
                         "query embedding": [partial(query_embedder.embed_query, q)  # type: ignore[attr-defined]
                                             for q in questions]}
                for label, calls in parts.items():
                    lat = []
                    for call in calls:
                        t0 = time.perf_counter()
                        call()
                        lat.append((time.perf_counter() - t0) * 1000)
                    p50, p95 = pct(np.asarray(lat))
                    say(f"  of which {label}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
            finally:
                pipeline.close()
    return rows


def print_table(rows: list[dict], k: int) -> None:
    say("\nsummary (latency per single query; build = seconds to build that index)")
    header = (f"{'N':>10}  {'index':<16} {'nlist':>6} {'nprobe':>6} {'build s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8} {f'recall@{k}':>9}")
    say(header)
    say("-" * len(header))
    for r in rows:
        rec = "" if r["recall"] is None else f"{r['recall']:.3f}"
        say(f"{r['n']:>10,}  {r['index']:<16} {r['nlist']!s:>6} {r['nprobe']!s:>6} {r['build']:>8.2f} "
            f"{r['p50']:>8.3f} {r['p95']:>8.3f} {rec:>9}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vector counts, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="queries per size (200)")
    parser.add_argument("--nlist", default="auto",
                        help="IVF lists: auto (the app's 4*sqrt(N) rule) or a number")
    parser.add_argument("--nprobe", default="8,16,32", help="IVF nprobe values, comma-separated (8,16,32)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per search, and recall@k (10)")
    parser.add_argument("--centres", type=int, default=2000, help="cluster centres of the synthetic vectors")
    parser.add_argument("--noise", type=float, default=0.05,
                        help="per-dimension noise around a centre (0.05)")
    parser.add_argument("--query-noise", type=float, default=0.035,
                        help="per-dimension noise added to a dataset vector to make a query (0.035)")
    parser.add_argument("--threads", type=int, default=0,
                        help="if > 0, faiss.omp_set_num_threads(T); 0 leaves faiss's default")
    parser.add_argument("--hybrid-articles", type=int, default=2000,
                        help="synthetic articles for the hybrid part (2000 ~ 12k chunks); 0 skips it")
    parser.add_argument("--hybrid-questions", type=int, default=100,
                        help="questions for the hybrid part (100)")
    parser.add_argument("--scale", default="",
                        help="chunk counts for end-to-end hybrid retrieval at scale, e.g. 10000,100000,1000000 "
                             "(chunks written straight into an index; empty skips it)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the questions at each --scale size (3)")
    parser.add_argument("--query-embedder", choices=("hash", "minilm"), default="minilm",
                        help="--scale: embed questions with the real MiniLM (default) or the hashing fake")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--tmp", default=None, help="parent folder for the hybrid part's temporary index")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
        nprobes = [int(s) for s in args.nprobe.split(",") if s.strip()]
        if args.nlist != "auto":
            int(args.nlist)
    except ValueError as exc:
        parser.error(f"bad number: {exc}")
    if any(n < 1 for n in sizes) or any(p < 1 for p in nprobes) or args.queries < 1 or args.k < 1:
        parser.error("sizes, nprobe, queries and k must be positive")

    if args.threads > 0:
        faiss.omp_set_num_threads(args.threads)
    say(f"bench_retrieval: sizes {sizes}, {args.queries} queries, k {args.k}, nprobe {nprobes}, "
        f"nlist {args.nlist}; faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}, "
        f"cores {os.cpu_count()}")
    rows: list[dict] = []
    for n in sizes:
        bench_size(n, args, nprobes, rows)
    if args.hybrid_articles > 0:
        rows += bench_hybrid(args)
    if args.scale:
        rows += bench_hybrid_scale([int(x.replace("_", "")) for x in args.scale.split(",") if x.strip()], args)
    print_table(rows, args.k)
    say(f"peak RSS: {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
