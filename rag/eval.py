"""Score a question set: retrieval (hits@k, MRR), answers, refusals, citations and latency."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import statistics
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import crosscheck
from .dates import given_day
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
    evidence: tuple[tuple[str, str], ...] = ()  # (doc file name, verbatim quote; may be empty)
    gold_docs: tuple[str, ...] = ()  # file names of the corpus the answer comes from (document-level hits)
    as_of: str | None = None  # "YYYY-MM-DD" the question was asked on: "this week" means the week before it


SPLITS = ("dev", "test")


def split_of(question_id: str) -> str:
    """"dev" or "test", fixed by a hash of the question id: rules are tuned on dev and reported on both."""
    return SPLITS[hashlib.sha256(question_id.encode("utf-8")).digest()[0] & 1]


def load_questions(path: Path | str, limit: int | None = None, split: str | None = None) -> list[Question]:
    """Questions from a JSON Lines file in the format of shared/eval/README.md; split keeps one half."""
    if split is not None and split not in SPLITS:
        raise IngestError(f"split {split!r} is not one of {', '.join(SPLITS)}")
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
        qid = str(obj.get("id", f"q{lineno}"))
        if split is not None and split_of(qid) != split:
            continue
        out.append(Question(
            id=qid, question=question, answers=answers,
            answer_parts=tuple(tuple(str(a) for a in part) for part in obj.get("answer_parts") or ()),
            answerable=bool(obj.get("answerable", bool(answers))),
            evidence=tuple((str(e.get("doc", "")), str(e.get("quote") or "")) for e in obj.get("evidence") or ()),
            gold_docs=tuple(str(d) for d in obj.get("gold_docs") or ()),
            as_of=_as_of(obj.get("as_of"), path, lineno),
        ))
        if limit and len(out) >= limit:
            break
    return out


def _as_of(value: Any, path: Path, lineno: int) -> str | None:
    return given_day(value, f"{path} line {lineno}: as_of", IngestError)


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


def _file_name(source: str) -> str:
    return Path(source.split("#", 1)[0]).name  # "folder/x.jsonl#L3" -> "x.jsonl"


def first_gold_doc_rank(hits: Sequence[Hit], question: Question) -> int | None:
    """Rank of the first hit from one of the question's gold documents."""
    gold = set(question.gold_docs)
    for hit in hits:
        if _file_name(hit.source) in gold:
            return hit.rank
    return None


def _has_quotes(question: Question) -> bool:
    return question.answerable and any(quote.strip() for _, quote in question.evidence)


def answer_is_correct(text: str, question: Question) -> bool:
    if question.answer_parts:
        return all(any(gives(text, alias) for alias in part) for part in question.answer_parts)
    return any(gives(text, a) for a in question.answers)


def gives(text: str, gold: str) -> bool:
    """Does the answer give the gold answer? Its characters in order, white space, case and Unicode forms aside
    ("Halifax, Nova Scotia" in "halifax,  Nova Scotia"), and a number not cut out of a longer one ("846" is not
    in "846,000", "12.6" not in "12.65"); or, for an amount, the same value written another way, with the gold's
    other words and signs ("$12.6 million" in "$12,600,000 [1]", but not in "12.6 million euros"). A gold answer's
closing full stop is not asked for."""
    gold = unicodedata.normalize("NFKC", gold).lower().rstrip(".!?。 ") or gold  # "It is over." in "It is over [1]."
    chars = _squash(gold)
    if not chars:
        return False
    text = re.sub(r"\s*\[\d+\]", "", unicodedata.normalize("NFKC", text).lower())  # citation markers are no numbers
    body = r"\s*".join(re.escape(c) for c in chars)
    pattern = (r"(?<!\d)(?<!\d[.,])" if chars[0].isdigit() else "") + body + (r"(?![.,]?\d)" if chars[-1].isdigit()
                                                                             else "")
    if re.search(pattern, text):
        return True
    wanted = crosscheck.numbers(gold, claim=True)
    if not wanted:
        return False
    given = set(crosscheck.numbers(text, claim=True))
    rest = crosscheck.without_amounts(gold).split()
    return all(n in given for n in wanted) and all(_squash(word) in _squash(text) for word in rest)


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


class _Ranks:
    """First ranks of gold evidence (quote-level) and of gold documents, over the questions that have them."""

    def __init__(self) -> None:
        self.quote: list[int | None] = []
        self.doc: list[int | None] = []

    def add(self, hits: Sequence[Hit], q: Question) -> tuple[int | None, int | None]:
        quote_rank = doc_rank = None
        if _has_quotes(q):
            quote_rank = first_supporting_rank(hits, q)
            self.quote.append(quote_rank)
        if q.answerable and q.gold_docs:
            doc_rank = first_gold_doc_rank(hits, q)
            self.doc.append(doc_rank)
        return quote_rank, doc_rank

    def summary(self, latencies: Sequence[float], n: int) -> dict[str, Any]:
        summary: dict[str, Any] = {"questions": n, "scored_for_retrieval": len(self.quote)}
        summary.update(_rank_metrics(self.quote, ""))
        if self.doc:
            summary["scored_for_documents"] = len(self.doc)
            summary.update(_rank_metrics(self.doc, "doc_"))
        summary["retrieval_p50_ms"] = round(1000 * (_pct(latencies, 0.5) or 0.0), 2)
        summary["retrieval_p95_ms"] = round(1000 * (_pct(latencies, 0.95) or 0.0), 2)
        return summary


def _rank_metrics(ranks: Sequence[int | None], prefix: str) -> dict[str, float]:
    scored = len(ranks) or 1
    out = {f"{prefix}hits@{k}": sum(1 for r in ranks if r is not None and r <= k) / scored for k in K_VALUES}
    out[f"{prefix}mrr@10"] = sum(1.0 / r for r in ranks if r is not None and r <= 10) / scored
    return out


def score_retrieval(questions: Sequence[Question], hits_of: Callable[[Question], Sequence[Hit]]) -> EvalResult:
    """hits@1/5/10 and MRR@10 against gold quotes, and the same against gold documents where a set has them."""
    rows, latencies, ranks = [], [], _Ranks()
    for q in questions:
        started = time.perf_counter()
        hits = hits_of(q)
        latencies.append(time.perf_counter() - started)
        quote_rank, doc_rank = ranks.add(hits, q)
        rows.append({"id": q.id, "question": q.question, "as_of": q.as_of, "first_supporting_rank": quote_rank,
                     "first_gold_doc_rank": doc_rank, "hits": [h.to_dict() for h in hits]})
    return EvalResult(ranks.summary(latencies, len(questions)), rows)


@dataclass
class _Tally:
    """Running counts of score_answers."""

    correct: int = 0
    refused_right: int = 0
    refused_wrong: int = 0
    cited_total: int = 0
    cited_ok: int = 0
    cited_gold: int = 0
    recall_hits: int = 0
    sentences: int = 0
    uncited: int = 0
    timings: dict[str, list[float]] = field(default_factory=dict)

    def time(self, answer: Answer, elapsed: float) -> None:
        self.timings.setdefault("total_s", []).append(answer.timings.get("total_s", elapsed))
        for key in ("ttft_s", "retrieval_s", "prompt_tokens"):
            if key in answer.timings:
                self.timings.setdefault(key, []).append(answer.timings[key])

    def citations(self, answer: Answer, q: Question, min_support: float) -> list[dict[str, Any]]:
        rows, gold_cited = [], False
        for c in answer.citations:
            # the highlighted quote itself, not the whole chunk around it, must hold the gold evidence
            gold = any(supports(c.quote, quote) for _, quote in q.evidence)
            ok = gold or c.support >= min_support  # its own passage, not a neighbouring marker's, must hold up
            self.cited_total += 1
            self.cited_ok += ok
            self.cited_gold += gold
            gold_cited |= gold
            rows.append({"marker": c.marker, "title": c.title, "source": c.source, "quote": c.quote,
                         "support": c.support, "supports_gold": gold, "precise": ok})
        self.recall_hits += q.answerable and gold_cited
        return rows


def score_answers(questions: Sequence[Question], ask: Callable[[Question], Answer], *,
                  min_support: float = 0.5, progress: Callable[[str], None] | None = None,
                  top_k: int | None = None) -> EvalResult:
    """Ask every question (on its as_of date) and score answers, refusals, citations, retrieval and latency.

    top_k: the answer's hits past it (what the answer read beyond the search results: Settings.lead_article_extra)
    are left out of hits@k and MRR."""
    rows: list[dict[str, Any]] = []
    tally, ranks = _Tally(), _Ranks()
    for i, q in enumerate(questions, 1):
        started = time.perf_counter()
        answer = ask(q)
        tally.time(answer, time.perf_counter() - started)
        is_correct = q.answerable and not answer.refused and answer_is_correct(answer.text, q)
        tally.correct += is_correct
        tally.refused_right += (not q.answerable) and answer.refused
        tally.refused_wrong += q.answerable and answer.refused
        citation_rows = tally.citations(answer, q, min_support)
        if not answer.refused:
            tally.sentences += len(answer.sentences)
            tally.uncited += sum(1 for s in answer.sentences if not s.markers)
        quote_rank, doc_rank = ranks.add(answer.hits[:top_k], q)
        # the day it was asked on, as the answer used it (the row's, else the run's): the prompt says "Today is …",
        # so a set without dates answers differently from one calendar day to the next
        rows.append({"id": q.id, "question": q.question, "as_of": answer.as_of or q.as_of, "answerable": q.answerable,
                     "answer": answer.text, "refused": answer.refused, "rejected": list(answer.rejected),
                     "correct": bool(is_correct) if q.answerable else answer.refused,
                     "gold_answers": list(q.answers), "citations": citation_rows, "first_supporting_rank": quote_rank,
                     "first_gold_doc_rank": doc_rank, "timings": dict(answer.timings),
                     "hits": [{"rank": h.rank, "title": h.title, "source": h.source, "published": h.published,
                               "score": h.score, "text": h.chunk.text} for h in answer.hits]})
        if progress:
            mark = "ok " if rows[-1]["correct"] else "BAD"
            progress(f"[{i}/{len(questions)}] {mark} {q.id}: {answer.text[:100]!r}")
    return EvalResult(_answer_summary(questions, tally, ranks), rows)


def _answer_summary(questions: Sequence[Question], t: _Tally, ranks: _Ranks) -> dict[str, Any]:
    answerable = sum(1 for q in questions if q.answerable)
    unanswerable = len(questions) - answerable
    times = t.timings
    summary = ranks.summary(times.get("retrieval_s", []), len(questions))
    summary.update({
        "answer_accuracy": t.correct / (answerable or 1),
        "refusal_accuracy": t.refused_right / unanswerable if unanswerable else None,
        "false_refusal_rate": t.refused_wrong / (answerable or 1),
        # self-graded: a citation counts when it holds a gold quote or passes the pipeline's own support check
        "citation_precision": t.cited_ok / t.cited_total if t.cited_total else None,
        # graded against gold evidence only (what CI's floor uses)
        "citation_precision_gold": t.cited_gold / t.cited_total if t.cited_total else None,
        "citation_recall": t.recall_hits / (answerable or 1),
        "uncited_sentence_rate": t.uncited / t.sentences if t.sentences else 0.0,
        "ttft_p50_s": _round(_pct(times.get("ttft_s", []), 0.5)),
        "ttft_p95_s": _round(_pct(times.get("ttft_s", []), 0.95)),
        "total_p50_s": _round(_pct(times.get("total_s", []), 0.5)),
        "total_p95_s": _round(_pct(times.get("total_s", []), 0.95)),
        "prompt_tokens_mean": _round(statistics.fmean(times["prompt_tokens"])) if times.get("prompt_tokens") else None,
        "answerable": answerable, "unanswerable": unanswerable,
    })
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
