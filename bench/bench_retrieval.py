"""Retrieval benchmark: FAISS search latency and IVF recall at scale, and end-to-end hybrid retrieval latency.

Part 1, vector search (for each --sizes N):
  * N random unit vectors of dimension 384 (float32, seeded), clustered like real embeddings: drawn around
    --centres (2000) random centres of uneven popularity with Gaussian noise, then L2-normalised;
  * the indexes the app builds (rag/faiss_index.py): exact `IndexIDMap2(IndexFlatIP(384))`, and IVF (inner
    product) for each --codecs (flat: `IndexIVFFlat`; sq8: `IndexIVFScalarQuantizer`, 8-bit codes, the app's
    default) with nlist = int(4*sqrt(N)) capped like the app at N // 39 (so k-means has >= 39 points per list;
    the cap only bites below ~24k vectors) unless --nlist gives a number, trained on a sample of
    min(N, nlist*40) vectors; the build time of each (IVF: train + add) and its size serialised are printed;
  * Q queries (--queries, 200) = dataset vectors perturbed with noise and re-normalised, searched ONE AT A
    TIME (as the app does) for the top --k (10): p50/p95 latency in ms for flat and for IVF at each
    --nprobe, and recall@k of IVF against the exact flat results.
Real vectors (--real-vectors INDEX,... --real-questions QA.jsonl,...): the exact MiniLM vectors of indexes built
  by `rag index` (e.g. rtqa_dev and rgb_en), with the eval files' questions embedded as the queries, and
  --real-sizes replicating them with noise (--real-noise 0.025 a dimension: a copy at cosine ~0.9 to its
  original, like near-duplicate reports): recall@k of each IVF codec against exact search, as in part 1.
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
  (FTS5 BM25 with and without the postings budget, FAISS, the query embedding). Then what re-indexing one
  changed article costs the store (Builder: delete it, add it back, commit; median of 3, with its steps), and
  the resident memory of a fresh process serving the index as `rag chat` does (real MiniLM only), and its size
  on disk.
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
    .venv/bin/python bench/bench_retrieval.py --sizes "" --hybrid-articles 0 --real-vectors IDX1,IDX2 \
        --real-questions QA1.jsonl,QA2.jsonl --real-sizes 10437,200000,1000000
Other options: --nlist auto|N, --k 10, --centres 2000, --noise 0.05 (per-dimension spread around a centre),
--query-noise 0.035, --threads T (calls faiss.omp_set_num_threads(T); by default faiss's own default is
left alone), --hybrid-articles 0 (skip part 2), --seed S, --tmp DIR.
Memory: the largest size dominates; at 1M the vectors (1.5 GB) are held twice at a time (data + flat, then
data + IVF; the flat index is freed before the IVF is built), about 3.5 GB at peak (7 GB with --real-sizes
1M). Building the IVF at 1M (k-means over 160k vectors into 4000 lists) takes about a minute.

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
import subprocess
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
    from rag.builder import Builder
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
                 "p50": p50, "p95": p95, "recall": 1.0, "mib": n * DIM * 4 / 2**20})
    del flat
    gc.collect()

    for codec in args.codecs:
        bench_ivf(n, data, ids, queries, truth, args, nprobes, rows, codec)
    say(f"peak RSS so far: {peak_rss_mib():,.0f} MiB")
    del data, queries, sources, ids
    gc.collect()


def bench_ivf(n: int, data: np.ndarray, ids: np.ndarray, queries: np.ndarray, truth: np.ndarray,
              args: argparse.Namespace, nprobes: list[int], rows: list[dict], codec: str, tag: str = "") -> None:
    """The IVF index the app builds (rag/faiss_index.build, lists coded by `codec`): build time, its size
    serialised, and at each nprobe the single-query latency and recall@k against the exact `truth`."""
    from rag import faiss_index

    nlist = auto_nlist(n) if args.nlist == "auto" else int(args.nlist)
    started = time.perf_counter()
    ivf, _ = faiss_index.build(ids, data, DIM, n, 0, nprobes[0], codec, nlist=nlist)
    build_s = time.perf_counter() - started
    with tempfile.NamedTemporaryFile(dir=args.tmp) as f:  # (serialize_index would hold a second copy in memory)
        faiss.write_index(ivf, f.name)
        size_mib = os.path.getsize(f.name) / 2**20
    name = f"{tag}ivf-{codec}"
    say(f"{name}: nlist {nlist}, build {build_s:.2f} s (train on {min(n, nlist * 40):,} + add), "
        f"{size_mib:,.0f} MiB serialised")
    for nprobe in nprobes:
        faiss.extract_index_ivf(ivf).nprobe = nprobe
        lat, _, got = time_queries(ivf, queries, args.k)
        p50, p95 = pct(lat)
        r = recall(truth, got)
        say(f"{name} nprobe {nprobe}: search p50 {p50:.3f} ms, p95 {p95:.3f} ms; recall@{args.k} {r:.3f}")
        rows.append({"n": n, "index": name, "nlist": nlist, "nprobe": nprobe, "build": build_s,
                     "p50": p50, "p95": p95, "recall": r, "mib": size_mib})
    del ivf
    gc.collect()


def real_vectors(index_dirs: list[Path]) -> np.ndarray:
    """The exact float vectors of real indexes, as built by `rag index` with MiniLM (the model real_questions
    embeds the questions with)."""
    from rag.embed import DEFAULT_EMBED_NAME
    from rag.manifest import read_manifest
    from rag.store import Store

    parts = []
    for index_dir in index_dirs:
        manifest = read_manifest(index_dir)
        if manifest["embedder"]["name"] != DEFAULT_EMBED_NAME:
            raise SystemExit(f"{index_dir} was built with {manifest['embedder']['name']}; --real-vectors needs "
                             f"{DEFAULT_EMBED_NAME} (RAG_EMBED_MODEL=minilm rag index ...)")
        store = Store(index_dir)  # the exact vectors, wherever the index keeps them (rag/vector_files.py)
        rowids = [r[0] for r in store.db.execute("SELECT rowid FROM chunks ORDER BY rowid")]
        parts.append(store.chunk_vectors(rowids).reshape(-1, DIM))
        store.close()
        say(f"  {len(rowids):,} vectors from {index_dir}")
    return np.ascontiguousarray(np.concatenate(parts))


def real_questions(paths: list[Path]) -> np.ndarray:
    """The questions of eval files (jsonl rows with "question"), embedded by the real MiniLM question path."""
    from rag.api import load_embedder
    from rag.config import Settings

    questions = [json.loads(line)["question"] for path in paths
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = load_embedder(Settings(embed_model="minilm"))
    return np.ascontiguousarray(np.stack([embedder.embed_query(q) for q in questions]), dtype=np.float32)


def replicated(base: np.ndarray, n: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """n vectors: the real ones, then copies of them with Gaussian noise, re-normalised (noise 0.025 a
    dimension puts a copy at cosine ~0.9 to its original: near-duplicate reports, the hard case for codes)."""
    out = np.empty((n, DIM), dtype=np.float32)
    out[: min(n, len(base))] = base[:n]
    for lo in range(len(base), n, len(base)):
        hi = min(n, lo + len(base))
        x = base[: hi - lo] + noise * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_real(args: argparse.Namespace, nprobes: list[int], rows: list[dict]) -> None:
    """Recall of the app's IVF indexes against exact search on real MiniLM vectors of real news text, with
    real questions as queries, at the real size and replicated (--real-sizes)."""
    say("\n== real vectors (--real-vectors), real questions (--real-questions) ==")
    base = real_vectors([Path(p) for p in args.real_vectors.split(",")])
    queries = real_questions([Path(p) for p in args.real_questions.split(",")])
    say(f"{len(base):,} real vectors, {len(queries)} questions")
    sizes = [int(s.replace("_", "")) for s in args.real_sizes.split(",") if s.strip()] or [len(base)]
    for n in sizes:
        data = replicated(base, n, args.real_noise, np.random.default_rng(args.seed + n))
        ids = np.arange(n, dtype=np.int64)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(data)
        scores, truth = flat.search(queries, args.k)
        del flat
        say(f"\n-- {n:,} vectors ({len(base):,} real, the rest noisy copies); exact neighbours' mean cosine: "
            f"1st {float(scores[:, 0].mean()):.2f}, {args.k}th {float(scores[:, -1].mean()):.2f}")
        for codec in args.codecs:
            bench_ivf(n, data, ids, queries, truth, args, nprobes, rows, codec, tag="real ")
        del data
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


def store_builder(index_dir: Path, embedder: Embedder, *, codec: str | None = None, rebuild: bool = False) -> Builder:
    """A rag.builder.Builder for index_dir with the app's default settings (another IVF codec if given)."""
    from rag.builder import Builder
    from rag.config import Settings
    from rag.indexing import chunking_settings

    settings = Settings()
    return Builder(index_dir, embedder_name=embedder.name, embedder_dim=embedder.dim,
                   chunking=chunking_settings(settings), ann_threshold=settings.ann_threshold,
                   nprobe=settings.ivf_nprobe, ivf_codec=codec or settings.ivf_codec, rebuild=rebuild)


def build_synthetic_index(index_dir: Path, chunks: int, seed: int,
                          embedder: Embedder | None = None) -> tuple[list[str], float]:
    """An index of about `chunks` chunks written straight through rag.builder.Builder (one chunk a paragraph of
    a bench/synth.py article, HashEmbedder vectors), skipping files and ingestion so 1M chunks take minutes,
    not hours. Returns 100 questions made from the articles, and the build time in seconds."""
    import hashlib

    from synth import Corpus

    from rag.types import Article, Chunk
    from tests.fakes import HashEmbedder

    embedder, corpus = embedder or HashEmbedder(), Corpus(seed=seed)
    started = time.perf_counter()
    builder = store_builder(index_dir, embedder, rebuild=True)
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
    from rag import faiss_index
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
            updates = [time_one_update(index_dir, doc_embedder) for _ in range(3)]
            say("  re-index of 1 changed article (Builder: delete it, add it again, commit; a delta file), median "
                f"of 3: {float(np.median([u['total'] for u in updates])):.2f} s; steps of the median run: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(updates, key=lambda u: u['total'])[1].items()))
            reopen = time_reopen(index_dir)
            say(f"  the chat's reopen after those updates (a new Store while the stale one is still open), median "
                f"of 3: {reopen['store']:.3f} s; the base and deltas read as a store read them before it shared the "
                f"base (vector_files.load): {reopen['read']:.3f} s")
            compaction = time_one_update(index_dir, doc_embedder, compact=True)
            say(f"  the same update folding the deltas into a new FAISS base (one update does, each time "
                f"{faiss_index_share()}): {compaction['total']:.2f} s; steps: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in compaction.items() if k != "total"))
            if args.query_embedder != "minilm":  # a fresh process loads the embedder the index names
                continue
            (Path(tmp) / "questions.json").write_text(json.dumps(questions))
            codecs = [faiss_index.ivf_codec(manifest["faiss"])]
            if manifest["faiss"]["type"] == "ivf":  # the same index with the other codec, in the same run
                codecs.append("flat" if codecs[0] == "sq8" else "sq8")
            for i, codec in enumerate(codecs):
                if i:
                    started = time.perf_counter()
                    store_builder(index_dir, doc_embedder, codec=codec).commit()  # changes nothing else
                    say(f"  re-coded with ivf_codec={codec} in {time.perf_counter() - started:.0f} s")
                served = subprocess.run([sys.executable, __file__, "--serve", str(index_dir)], check=True,
                                        capture_output=True, text=True).stdout.strip()
                live = index_dir / json.loads((index_dir / "manifest.json").read_text())["generation"]
                gen_gib = sum(f.stat().st_size for f in live.iterdir()) / 2**30
                folder_gib = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file()) / 2**30
                say(f"  a fresh process serving it ({manifest['faiss']['type']}"
                    f"{'-' + codec if manifest['faiss']['type'] == 'ivf' else ''}; the chat's Pipeline, real MiniLM "
                    f"questions): {served}; on disk {gen_gib:.2f} GiB a generation, {folder_gib:.2f} GiB the folder")
    return rows


def faiss_index_share() -> str:
    """How often an update folds the deltas into a new base, in words."""
    from rag.vector_files import COMPACT_SHARE

    return f"another {COMPACT_SHARE:.0%} of the index's chunks have changed"


def time_one_update(index_dir: Path, embedder: Embedder, compact: bool = False) -> dict[str, float]:
    """What an indexing run that changed one article costs the store, past reading and embedding it: one
    article deleted and added again (same chunks and vectors) through rag.builder.Builder, then committed.
    Seconds, in all and between the builder's steps (its fault points). compact: this update writes a new FAISS
    base with the deltas folded in, as one does each time the deltas reach COMPACT_SHARE of the index."""
    from rag import builder as rag_builder
    from rag import vector_files
    from rag.store import Store
    from rag.types import Article, Chunk

    store = Store(index_dir)
    db = store.db
    (article_id,) = db.execute("SELECT id FROM articles ORDER BY random() LIMIT 1").fetchone()
    row = db.execute("SELECT id, title, text, source, published, language, url, sha256 FROM articles WHERE id = ?",
                     (article_id,)).fetchone()
    parts = db.execute('SELECT id, article_id, text, start, "end", rowid FROM chunks WHERE article_id = ? '
                       "ORDER BY rowid", (article_id,)).fetchall()
    path = db.execute("SELECT path, size, mtime_ns FROM files WHERE article_ids LIKE ?",
                      (f'%"{article_id}"%',)).fetchone()
    vectors = store.chunk_vectors([p[5] for p in parts])  # wherever the index keeps them (rag/vector_files.py)
    store.close()
    del store, db  # (its FAISS base is not held through the timed update)
    article = Article(id=row[0], title=row[1], text=row[2], source=row[3], published=row[4], language=row[5],
                      url=row[6], sha256=row[7])
    chunks = [Chunk(p[0], p[1], p[2], p[3], p[4]) for p in parts]
    marks: list[tuple[str, float]] = [("start", time.perf_counter())]
    real_fault_point, share = rag_builder.fault_point, vector_files.COMPACT_SHARE
    rag_builder.fault_point = lambda step: marks.append((step, time.perf_counter()))  # type: ignore[assignment]
    vector_files.COMPACT_SHARE = 0.0 if compact else share
    try:
        builder = store_builder(index_dir, embedder)
        builder.remove_article(article.id)
        builder.add_article(article, chunks, vectors)
        if path:
            builder.set_file(path[0], path[1], path[2], [article.id])
        marks.append(("changed", time.perf_counter()))
        builder.commit()
        marks.append(("done", time.perf_counter()))
    finally:
        rag_builder.fault_point = real_fault_point  # type: ignore[assignment]
        vector_files.COMPACT_SHARE = share
    steps: dict[str, float] = {}
    for (_, before), (step, t) in zip(marks, marks[1:]):  # a step met twice (a second old generation) adds up
        steps[f"to {step}"] = steps.get(f"to {step}", 0.0) + t - before
    return {"total": marks[-1][1] - marks[0][1], **steps}


def time_reopen(index_dir: Path) -> dict[str, float]:
    """Seconds to open the store again while the stale one is open, as the chat does after an update (it shares
    the FAISS base and reads only the delta files), and to read the base with its deltas applied, as every
    reopen did before (vector_files.load, which the builder still uses to fold deltas into a new base). Medians
    of 3."""
    from rag import vector_files
    from rag.store import Store

    held = Store(index_dir)
    store_s, read_s = [], []
    try:
        for _ in range(3):
            started = time.perf_counter()
            Store(index_dir).close()
            store_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            vector_files.load(index_dir, index_dir / held.manifest["generation"], held.state, None)
            read_s.append(time.perf_counter() - started)
    finally:
        held.close()
    return {"store": float(np.median(store_s)), "read": float(np.median(read_s))}


def serve(index_dir: Path) -> int:
    """A fresh process that opens the index as `rag chat` does and retrieves the questions saved beside it three
    times over; prints its resident memory then (VmRSS) and at its peak (VmHWM)."""
    from rag.api import Pipeline
    from rag.config import Settings

    questions = json.loads((index_dir.parent / "questions.json").read_text())
    pipeline = Pipeline(Settings(index_dir=index_dir))
    for _ in range(3):
        for q in questions:
            pipeline.retrieve(q)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    mib = {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}
    print(f"RSS {mib['VmRSS']:,.0f} MiB after {3 * len(questions)} questions, peak {mib['VmHWM']:,.0f} MiB")
    pipeline.close()
    return 0


def print_table(rows: list[dict], k: int) -> None:
    say("\nsummary (latency per single query; build = seconds to build that index)")
    header = (f"{'N':>10}  {'index':<16} {'nlist':>6} {'nprobe':>6} {'build s':>8} {'p50 ms':>8} "
              f"{'p95 ms':>8} {f'recall@{k}':>9} {'MiB':>6}")
    say(header)
    say("-" * len(header))
    for r in rows:
        rec = "" if r["recall"] is None else f"{r['recall']:.3f}"
        mib = f"{r['mib']:.0f}" if r.get("mib") else ""
        say(f"{r['n']:>10,}  {r['index']:<16} {r['nlist']!s:>6} {r['nprobe']!s:>6} {r['build']:>8.2f} "
            f"{r['p50']:>8.3f} {r['p95']:>8.3f} {rec:>9} {mib:>6}")


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
    parser.add_argument("--codecs", default="flat,sq8", help="IVF list codecs to measure (flat,sq8)")
    parser.add_argument("--real-vectors", default="",
                        help="index folders built by `rag index`, comma-separated: recall on their real vectors")
    parser.add_argument("--real-questions", default="",
                        help="--real-vectors: jsonl files whose \"question\" fields are the queries")
    parser.add_argument("--real-sizes", default="",
                        help="--real-vectors: vector counts, the real ones replicated with noise (default: as is)")
    parser.add_argument("--real-noise", type=float, default=0.025,
                        help="--real-sizes: per-dimension noise of a copy (0.025: cosine ~0.9 to its original)")
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)  # bench_hybrid_scale's child process
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--tmp", default=None, help="parent folder for the hybrid part's temporary index")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(Path(args.serve))
    args.codecs = [c for c in args.codecs.split(",") if c]
    if bool(args.real_vectors) != bool(args.real_questions):
        parser.error("--real-vectors and --real-questions go together")
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
    if args.real_vectors:
        bench_real(args, nprobes, rows)
    if args.hybrid_articles > 0:
        rows += bench_hybrid(args)
    if args.scale:
        rows += bench_hybrid_scale([int(x.replace("_", "")) for x in args.scale.split(",") if x.strip()], args)
    print_table(rows, args.k)
    say(f"peak RSS: {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
