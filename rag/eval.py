"""Score a question set: retrieval (hits@k, MRR), answers, refusals, citations and latency."""

from __future__ import annotations

import difflib
import json
import re
import statistics
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IngestError
from .types import Answer, Hit

K_VALUES = (1, 5, 10)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    answer_parts: tuple[tuple[str, ...], ...] = ()
    answerable: bool = True
    evidence: tuple[tuple[str, str], ...] = ()  # (doc file name, verbatim quote)


def load_questions(path: Path | str, limit: int | None = None) -> list[Question]:
    """Questions from a JSON Lines file in the format of shared/eval/README.md."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"question set {path} does not exist; give a .jsonl file (see README, 'rag eval')")
    out: list[Question] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            question = str(obj["question"])
        except (ValueError, KeyError, TypeError):
            raise IngestError(f"{path} line {lineno} is not a JSON object with a 'question' field") from None
        answers = tuple(str(a) for a in obj.get("answers") or ())
        out.append(Question(
            id=str(obj.get("id", f"q{lineno}")), question=question, answers=answers,
            answer_parts=tuple(tuple(str(a) for a in part) for part in obj.get("answer_parts") or ()),
            answerable=bool(obj.get("answerable", bool(answers))),
            evidence=tuple((str(e.get("doc", "")), str(e.get("quote", ""))) for e in obj.get("evidence") or ()),
        ))
        if limit and len(out) >= limit:
            break
    return out


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def supports(passage: str, quote: str) -> bool:
    """A passage supports a gold quote when it contains it (white space ignored), or — cut by a chunk
    boundary — shares an unbroken run of more than half of it."""
    p, q = _squash(passage), _squash(quote)
    if not q:
        return False
    if q in p:
        return True
    match = difflib.SequenceMatcher(None, p, q, autojunk=False).find_longest_match(0, len(p), 0, len(q))
    return match.size > len(q) / 2


def first_supporting_rank(hits: Sequence[Hit], question: Question) -> int | None:
    for hit in hits:
        if any(supports(hit.chunk.text, quote) for _, quote in question.evidence):
            return hit.rank
    return None


def answer_is_correct(text: str, question: Question) -> bool:
    got = _squash(text)
    if question.answer_parts:
        return all(any(_squash(alias) in got for alias in part) for part in question.answer_parts)
    return any(_squash(a) in got for a in question.answers)


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class EvalResult:
    summary: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "questions": self.rows}

    def table(self) -> str:
        lines = [f"{'metric':<24}{'value':>10}"]
        for key, value in self.summary.items():
            if isinstance(value, float):
                lines.append(f"{key:<24}{value:>10.3f}")
            elif isinstance(value, (int, str)) or value is None:
                lines.append(f"{key:<24}{str(value):>10}")
        return "\n".join(lines)


def score_retrieval(questions: Sequence[Question], hits_of: Callable[[str], Sequence[Hit]]) -> EvalResult:
    """hits@1/5/10 and MRR@10 over the answerable questions that have gold evidence."""
    rows, ranks, latencies = [], [], []
    for q in questions:
        started = time.perf_counter()
        hits = hits_of(q.question)
        latencies.append(time.perf_counter() - started)
        rank = first_supporting_rank(hits, q) if q.answerable and q.evidence else None
        if q.answerable and q.evidence:
            ranks.append(rank)
        rows.append({"id": q.id, "question": q.question, "first_supporting_rank": rank,
                     "hits": [h.to_dict() for h in hits]})
    return EvalResult(_retrieval_summary(ranks, latencies, len(questions)), rows)


def _retrieval_summary(ranks: Sequence[int | None], latencies: Sequence[float], n: int) -> dict[str, Any]:
    scored = len(ranks) or 1
    summary: dict[str, Any] = {"questions": n, "scored_for_retrieval": len(ranks)}
    for k in K_VALUES:
        summary[f"hits@{k}"] = sum(1 for r in ranks if r is not None and r <= k) / scored
    summary["mrr@10"] = sum(1.0 / r for r in ranks if r is not None and r <= 10) / scored
    summary["retrieval_p50_ms"] = round(1000 * (_pct(latencies, 0.5) or 0.0), 2)
    summary["retrieval_p95_ms"] = round(1000 * (_pct(latencies, 0.95) or 0.0), 2)
    return summary


def score_answers(questions: Sequence[Question], ask: Callable[[str], Answer], *,
                  min_support: float = 0.5, progress: Callable[[str], None] | None = None) -> EvalResult:
    """Ask every question and score answers, refusals, citations, retrieval and latency."""
    rows: list[dict[str, Any]] = []
    ranks: list[int | None] = []
    correct = refused_right = refused_wrong = 0
    cited_ok = cited_total = cited_gold = recall_hits = sentences = uncited = 0
    ttft, totals, retrieval, prompt_tokens = [], [], [], []
    answerable = [q for q in questions if q.answerable]
    for i, q in enumerate(questions, 1):
        started = time.perf_counter()
        answer = ask(q.question)
        elapsed = time.perf_counter() - started
        totals.append(answer.timings.get("total_s", elapsed))
        if "ttft_s" in answer.timings:
            ttft.append(answer.timings["ttft_s"])
        if "retrieval_s" in answer.timings:
            retrieval.append(answer.timings["retrieval_s"])
        if "prompt_tokens" in answer.timings:
            prompt_tokens.append(answer.timings["prompt_tokens"])
        is_correct = q.answerable and not answer.refused and answer_is_correct(answer.text, q)
        correct += is_correct
        refused_right += (not q.answerable) and answer.refused
        refused_wrong += q.answerable and answer.refused
        gold_cited = False
        citation_rows = []
        for c in answer.citations:
            # the highlighted quote itself, not the whole chunk around it, must hold the gold evidence
            gold = any(supports(c.quote, quote) for _, quote in q.evidence)
            ok = gold or c.support >= min_support  # its own passage, not a neighbouring marker's, must hold up
            cited_total += 1
            cited_ok += ok
            cited_gold += gold
            gold_cited |= gold
            citation_rows.append({"marker": c.marker, "title": c.title, "source": c.source, "quote": c.quote,
                                  "support": c.support, "supports_gold": gold, "precise": ok})
        recall_hits += q.answerable and gold_cited
        if not answer.refused:
            sentences += len(answer.sentences)
            uncited += sum(1 for s in answer.sentences if not s.markers)
        rank = first_supporting_rank(answer.hits, q) if q.answerable and q.evidence else None
        if q.answerable and q.evidence:
            ranks.append(rank)
        rows.append({"id": q.id, "question": q.question, "answerable": q.answerable, "answer": answer.text,
                     "refused": answer.refused, "correct": bool(is_correct) if q.answerable else answer.refused,
                     "gold_answers": list(q.answers), "citations": citation_rows,
                     "first_supporting_rank": rank, "timings": answer.timings,
                     "hits": [{"rank": h.rank, "title": h.title, "source": h.source, "score": h.score,
                               "text": h.chunk.text} for h in answer.hits]})
        if progress:
            mark = "ok " if rows[-1]["correct"] else "BAD"
            progress(f"[{i}/{len(questions)}] {mark} {q.id}: {answer.text[:100]!r}")
    unanswerable = len(questions) - len(answerable)
    summary = _retrieval_summary(ranks, retrieval, len(questions))
    summary.update({
        "answer_accuracy": correct / (len(answerable) or 1),
        "refusal_accuracy": refused_right / unanswerable if unanswerable else None,
        "false_refusal_rate": refused_wrong / (len(answerable) or 1),
        "citation_precision": cited_ok / cited_total if cited_total else None,
        "citation_precision_gold": cited_gold / cited_total if cited_total else None,
        "citation_recall": recall_hits / (len(answerable) or 1),
        "uncited_sentence_rate": uncited / sentences if sentences else 0.0,
        "ttft_p50_s": _round(_pct(ttft, 0.5)), "ttft_p95_s": _round(_pct(ttft, 0.95)),
        "total_p50_s": _round(_pct(totals, 0.5)), "total_p95_s": _round(_pct(totals, 0.95)),
        "prompt_tokens_mean": _round(statistics.fmean(prompt_tokens)) if prompt_tokens else None,
        "answerable": len(answerable), "unanswerable": unanswerable,
    })
    return EvalResult(summary, rows)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
