"""BM25 for Chinese questions: characters one by one in chunks_fts (before) against trigrams in chunks_fts_cjk with
the names and numbers in chunks_fts (now). Prints hits@5 and MRR@10 of the gold passage, lexical side only.

    .venv/bin/python bench/bench_cjk_lexical.py INDEX_DIR [QA.jsonl]   # an index of tests/data/crosslingual/corpus
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's rag, not an installed one

from rag.eval import load_questions, supports  # noqa: E402
from rag.lexical import bm25_search, fts_terms  # noqa: E402
from rag.store import Store  # noqa: E402
from rag.text import has_cjk  # noqa: E402


def main() -> None:
    store = Store(sys.argv[1])
    qa = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "tests/data/crosslingual/qa.jsonl"
    questions = [q for q in load_questions(qa) if has_cjk(q.question) and q.answerable]
    ways = {"unigrams in chunks_fts": lambda text: bm25_search(store.db, fts_terms(text), 10),
            "trigrams in chunks_fts_cjk + chunks_fts": lambda text: store.search_lexical(text, 10)}
    for name, search in ways.items():
        ranks = []
        for q in questions:
            found = search(q.question)
            records = store.records([r for r, _ in found])
            order = [records[r].chunk.text for r, _ in found]
            rank = next((i for i, text in enumerate(order, 1) if any(supports(text, e) for _, e in q.evidence)), None)
            ranks.append(rank)
        n = len(ranks) or 1
        print(json.dumps({"way": name, "questions": len(ranks),
                          "hits@5": round(sum(1 for r in ranks if r and r <= 5) / n, 3),
                          "mrr@10": round(sum(1 / r for r in ranks if r) / n, 3)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
