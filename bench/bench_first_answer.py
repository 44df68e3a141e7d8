"""First-answer benchmark: is the first question after the chat starts as quick as the ones after it?

What it measures: --runs fresh processes, each started as `rag chat` starts (a Pipeline, then ui.app.warm(),
which loads the models and has the model read its fixed instructions), then asks the --questions below in
turn on an index of the bundled sample corpus (built first, not timed). Per run it prints the warm-up time
and each answer's time to first token and total; then the median first-answer TTFT against the median TTFT of
the later answers, and their difference (the #17 target: within 1 s). The questions are about the sample corpus
(close to bench/sample_qa.jsonl's: this measures time, not answers); each run asks them in a different rotation, so
"first" is not always the same question.

How to run (from the repository root, alone on the machine; ~1 minute a run on 2 cores):
    .venv/bin/python bench/bench_first_answer.py [--runs 3] [--index-dir DIR] [--json bench/out/first.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = (
    "Which rocket put the James Webb Space Telescope in orbit?",
    "For how many days was the Suez Canal blocked by the Ever Given?",
    "How far from Earth is the galaxy whose black hole was photographed?",
    "Where did the Artemis I rocket launch from?",
)
ONE_RUN = """
import json, sys, time
from pathlib import Path
from rag import Pipeline, Settings
from ui.app import warm
started = time.perf_counter()
pipeline = Pipeline(Settings.from_env(index_dir=Path(sys.argv[1])))
warm(pipeline)
out = {"warm_s": round(time.perf_counter() - started, 2), "answers": []}
for question in json.loads(sys.argv[2]):
    answer = pipeline.ask(question)
    out["answers"].append({"question": question, "ttft_s": answer.timings.get("ttft_s"),
                           "total_s": answer.timings.get("total_s"), "text": answer.text[:80]})
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes (default 3)")
    parser.add_argument("--index-dir", type=Path, help="an index of the sample corpus (default: built in a temp dir)")
    parser.add_argument("--json", type=Path, help="write the runs and the summary here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index_dir or Path(tmp) / "index"
        if not (index / "manifest.json").is_file():
            print(f"indexing the sample corpus into {index} …", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "rag.cli", "index", "--index-dir", str(index)], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
        runs = []
        for r in range(args.runs):
            order = list(QUESTIONS[r % len(QUESTIONS):] + QUESTIONS[: r % len(QUESTIONS)])
            done = subprocess.run([sys.executable, "-c", ONE_RUN, str(index), json.dumps(order)], cwd=ROOT,
                                  check=True, capture_output=True, text=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(run)
            times = "  ".join(f"{a['ttft_s']}/{a['total_s']}" for a in run["answers"])
            print(f"run {r + 1}: warm-up {run['warm_s']} s; TTFT/total per answer, first to last: {times}")
    first = [run["answers"][0]["ttft_s"] for run in runs]
    later = [a["ttft_s"] for run in runs for a in run["answers"][1:]]
    summary = {"runs": len(runs), "first_ttft_p50_s": statistics.median(first),
               "later_ttft_p50_s": statistics.median(later)}
    summary["first_minus_later_s"] = round(summary["first_ttft_p50_s"] - summary["later_ttft_p50_s"], 2)
    print(f"first answer TTFT p50 {summary['first_ttft_p50_s']} s, later answers {summary['later_ttft_p50_s']} s: "
          f"{summary['first_minus_later_s']:+} s (target: within 1 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
