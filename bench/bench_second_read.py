"""The second read (rag/answer.py) on the relation probe set: does re-asking the question over the passage alone
catch claims whose words are all in the passage but whose relation is wrong (the loser named as the winner)?

Each row of tests/data/relation_probes.jsonl is (question, passage, claim, phrase), half true, half wrong in
relation only. The production prompt (prompts/second_read.txt) and grammar are used; two rules are scored:
  none      - reject when the second reader finds no answer (what answering does by default)
  disagree  - reject also when its answer shares nothing with the claim's answer (answer.same_answer)
Printed: wrong claims caught, true claims rejected, and the median seconds per read.

    .venv/bin/python bench/bench_second_read.py [--limit N]     # ~3 minutes for 96 rows on 2 cores, alone
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag import Pipeline, Settings  # noqa: E402
from rag.answer import SECOND_READ_GRAMMAR, SECOND_READ_TOKENS, same_answer, second_read_finds  # noqa: E402

PROBES = ROOT / "tests" / "data" / "relation_probes.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--show", action="store_true", help="print every row the rules reject")
    args = parser.parse_args()
    rows = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.limit]
    pipeline = Pipeline(Settings())
    generator = pipeline.generator
    replies: dict[tuple[str, str], str] = {}  # true and false rows share a question and passage: read once
    seconds = []
    for row in rows:
        key = (row["question"], row["passage"])
        if key not in replies:
            prompt = pipeline.prompts.render("second_read.txt", passage=row["passage"], question=row["question"])
            started = time.perf_counter()
            replies[key] = generator.generate([{"role": "user", "content": prompt}], max_tokens=SECOND_READ_TOKENS,
                                              grammar=SECOND_READ_GRAMMAR)
            seconds.append(time.perf_counter() - started)
    for rule in ("none", "disagree"):
        caught = rejected_true = 0
        for row in rows:
            reply = replies[(row["question"], row["passage"])]
            found = second_read_finds(reply)
            reject = not found or (rule == "disagree" and not same_answer(row["phrase"], reply, row["question"]))
            caught += reject and not row["label"]
            rejected_true += reject and row["label"]
            if args.show and reject:
                print(f"  {rule}: {row['id']} phrase={row['phrase']!r} second read={reply!r}")
        false_rows = sum(not r["label"] for r in rows) or 1
        true_rows = sum(bool(r["label"]) for r in rows) or 1
        print(f"{rule:9} wrong claims caught {caught}/{false_rows} ({caught / false_rows:.0%}), "
              f"true claims rejected {rejected_true}/{true_rows} ({rejected_true / true_rows:.0%})")
    print(f"reads {len(seconds)}, median {statistics.median(seconds):.2f} s each")


if __name__ == "__main__":
    main()
