"""Answering benchmark: time to first token and total time per question for llama.cpp thread settings,
on a quiet machine and beside a busy process.

For each --configs entry "T/B" (T = threads generating tokens, B = threads reading the prompt; 0 = llama.cpp's
own default, which is cores/2 and cores), one Pipeline with the default (or --llm) model answers the
answerable questions of --questions (default ../shared/eval/seed_qa.jsonl over ../shared/corpus) --repeat
times, after one warm-up question. It prints, per config, the median time to first token, median total
time, median characters per second written after the first token, and answer accuracy (the same substring
check as rag eval). With --busy, a second process spinning on one core runs during the timed part, as
another job on a 2-core machine would.

How to run (from the repository root, alone on the machine):
    .venv/bin/python bench/bench_answer.py                          # configs 0/0, 1/1, 1/2, 2/2; quiet
    .venv/bin/python bench/bench_answer.py --busy                   # the same beside a busy core
    .venv/bin/python bench/bench_answer.py --configs 1/2 --repeat 3 --limit 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.api import Pipeline, build_index, load_embedder  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.eval import answer_is_correct, load_questions  # noqa: E402
from rag.generate import LlamaCppGenerator  # noqa: E402
from rag.models import model_name, resolve_llm_path  # noqa: E402


def say(msg: str) -> None:
    print(msg, flush=True)


def run_config(settings: Settings, embedder: object, threads: int, batch_threads: int, questions: list,
               repeat: int, busy: bool) -> dict:
    path = resolve_llm_path(settings.llm_path, settings.cache_dir)
    generator = LlamaCppGenerator(path, n_ctx=settings.llm_context, threads=threads, batch_threads=batch_threads,
                                  name=model_name(settings.llm_path))
    pipeline = Pipeline(settings, embedder=embedder, generator=generator)  # type: ignore[arg-type]
    pipeline.ask(questions[0].question)  # warm-up: loads the model, caches the system prompt
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    ttft, total, speed, correct = [], [], [], 0
    try:
        for _ in range(repeat):
            for q in questions:
                answer = pipeline.ask(q.question)
                t = answer.timings
                total.append(t["total_s"])
                if "ttft_s" in t:
                    ttft.append(t["ttft_s"])
                    if t["total_s"] > t["ttft_s"]:  # decoding speed: characters after the first token
                        speed.append(len(answer.text) / (t["total_s"] - t["ttft_s"]))
                correct += answer_is_correct(answer.text, q) and not answer.refused
    finally:
        if hog:
            hog.kill()
        pipeline.close()
    return {"config": f"{threads}/{batch_threads}", "ttft_p50": statistics.median(ttft) if ttft else None,
            "total_p50": statistics.median(total), "chars_per_s": statistics.median(speed) if speed else None,
            "accuracy": correct / (len(questions) * repeat), "asked": len(questions) * repeat}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--questions", default=str(ROOT.parent / "shared" / "eval" / "seed_qa.jsonl"))
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--configs", default="0/0,1/1,1/2,2/2", help="T/B thread pairs, comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the questions per config (2)")
    parser.add_argument("--limit", type=int, default=None, help="first N answerable questions only")
    parser.add_argument("--busy", action="store_true", help="keep one core busy while timing")
    parser.add_argument("--llm", default="", help="RAG_LLM_PATH value (default: the packaged default model)")
    args = parser.parse_args(argv)

    questions = [q for q in load_questions(args.questions) if q.answerable][: args.limit]
    with tempfile.TemporaryDirectory(prefix="rag-bench-answer-") as tmp:
        settings = Settings.from_env(index_dir=Path(tmp) / "index", llm_path=args.llm or None)
        embedder = load_embedder(settings)
        build_index(args.corpus, settings=settings, embedder=embedder)
        say(f"{len(questions)} questions x {args.repeat}, model {model_name(settings.llm_path)}, "
            f"{'one core busy' if args.busy else 'quiet machine'}")
        rows = []
        for spec in args.configs.split(","):
            threads, batch_threads = (int(x) for x in spec.split("/"))
            started = time.perf_counter()
            row = run_config(settings, embedder, threads, batch_threads, questions, args.repeat, args.busy)
            rows.append(row)
            say(f"  {row['config']:>5}: TTFT p50 {row['ttft_p50']:.2f} s, total p50 {row['total_p50']:.2f} s, "
                f"{row['chars_per_s']:.0f} chars/s generated, accuracy {row['accuracy']:.2f} "
                f"({time.perf_counter() - started:.0f} s)")
    say("\nthreads/batch  TTFT p50 s  total p50 s  chars/s  accuracy")
    for r in rows:
        say(f"{r['config']:>13}  {r['ttft_p50']:>10.2f}  {r['total_p50']:>11.2f}  {r['chars_per_s']:>7.0f}  "
            f"{r['accuracy']:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
