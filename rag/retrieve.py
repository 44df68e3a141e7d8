"""Question → ranked Hits: dense (FAISS) and BM25 (FTS5) candidates, reciprocal-rank fusion, rerank, caps."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from .config import Settings
from .crosscheck import is_multilingual
from .dates import Date, age_days, parse_as_of, wants_recent
from .embed import Embedder
from .errors import MissingDependencyError, ModelNotFoundError, QueryError
from .store import Store
from .types import Hit
from .words import STOPWORDS


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some articles (by id or title words) and/or a date range (ISO dates)."""

    article_ids: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __bool__(self) -> bool:
        return bool(self.article_ids or self.titles or self.date_from or self.date_to)


class Reranker(Protocol):
    name: str

    def score(self, question: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A local sentence-transformers cross-encoder (no model ships on PyPI, so the user points at one)."""

    def __init__(self, path: str, *, threads: int = 0) -> None:
        from pathlib import Path

        if not Path(path).is_dir():
            raise ModelNotFoundError(f"reranker folder {path!r} does not exist; set RAG_RERANKER_PATH to a "
                                     "local cross-encoder folder, or unset it to skip reranking")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise MissingDependencyError(
                "sentence-transformers is not installed. Run: pip install -e '.[models]'") from None
        self.name = Path(path).name
        self._model = CrossEncoder(path, device="cpu", local_files_only=True)

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        return [float(s) for s in self._model.predict([(question, p) for p in passages])]


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_FULL_DATE = re.compile(rf"{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}|\d{{4}}-\d\d-\d\d"
                        r"|\d{4}年\d{1,2}月", re.I)
_DATELINE = re.compile(rf"^\s*(?:{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{4}}-\d\d-\d\d)\s*(?:\.\.\.|[-—:·])?\s*", re.I)
_QUANTITY_Q = re.compile(r"^(?:how (?:much|many|long|far|old|big|tall)|what (?:is|was|were|are) .*\b(?:revenue|price|"
                         r"cost|number|population|score|rate|amount|value|capitali[sz]ation|percentage|age)\b)", re.I)
_DATE_Q = re.compile(r"^(?:when\b|what (?:date|day|year|month)\b|on what date|in (?:what|which) year)", re.I)


_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return [w[:-2] if w.endswith("'s") else w for w in _WORD.findall(text.lower().replace("’", "'"))]


class AnswerSignals:
    """What rescoring asks of every candidate passage about one question, with the question's side worked
    out once: its numbers, its words, and the kind of answer it wants (a date, a quantity, or names)."""

    def __init__(self, question: str) -> None:
        question = question.strip()
        words = _words(question)
        self.numbers = [w for w in words if any(ch.isdigit() for ch in w)]
        self.asked = set(words)
        self.kind = "date" if _DATE_Q.match(question) else "quantity" if _QUANTITY_Q.match(question) else "name"

    def number_match(self, passage: str) -> float:
        """Share of the question's numbers (years, quarters, amounts) that the passage also has."""
        if not self.numbers:
            return 0.0
        have = set(_words(passage))
        return sum(n in have for n in self.numbers) / len(self.numbers)

    def answer_prior(self, passage: str) -> float:
        """0..1: does the passage hold something of the kind the question asks for (a date for "when", a
        quantity for "how much", otherwise names not already in the question)? A dateline does not count."""
        body = _DATELINE.sub("", passage, count=1)
        if self.kind == "date":
            return 1.0 if _FULL_DATE.search(body) else 0.0
        if self.kind == "quantity":
            return 1.0 if any(w not in self.asked for w in re.findall(r"\d[\d,.]*", body)) else 0.0
        names = {w.lower() for w in re.findall(r"\b[A-Z][\w'-]+", body)} - self.asked - STOPWORDS
        return min(1.0, len(names) / 3)


def number_match(question: str, passage: str) -> float:
    return AnswerSignals(question).number_match(passage)


def answer_prior(question: str, passage: str) -> float:
    return AnswerSignals(question).answer_prior(passage)


@lru_cache(maxsize=1)
def _side_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-bm25")


def prepare_question(question: str, max_chars: int) -> tuple[str, str | None]:
    """The question stripped and cut to max_chars, and a note when it had to be cut."""
    text = " ".join((question or "").split())
    if not text:
        raise QueryError("the question is empty; type a question about the articles")
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
        return cut, f"the question was {len(text):,} characters; only the first {len(cut):,} were used"
    return text, None


def fuse(rankings: Sequence[Sequence[int]], weights: Sequence[float], k: int) -> dict[int, float]:
    """Reciprocal-rank fusion: each list adds weight / (k + rank) to the items it ranks."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


def select(order: Sequence[int], article_of: dict[int, str], top_k: int, per_article_cap: int,
           vectors: np.ndarray | None = None, relevance: Sequence[float] | None = None,
           mmr_lambda: float = 1.0) -> list[int]:
    """Pick top_k from a ranked list, at most per_article_cap per article, optionally with MMR diversity."""
    chosen: list[int] = []
    per_article: dict[str, int] = {}
    remaining = list(range(len(order)))
    use_mmr = vectors is not None and relevance is not None and mmr_lambda < 1.0 and len(order) > 1
    if use_mmr:
        assert relevance is not None and vectors is not None
        rel = np.asarray(relevance, dtype=np.float32)
        rel = (rel - rel.min()) / (float(rel.max() - rel.min()) or 1.0)
    capped: list[int] = []  # passed over for the cap; used only if the cap would leave fewer than top_k
    while remaining and len(chosen) < top_k:
        if use_mmr and chosen:
            picked_idx = [order.index(c) for c in chosen]
            sim = (vectors[remaining] @ vectors[picked_idx].T).max(axis=1)  # type: ignore[index]
            mmr = mmr_lambda * rel[remaining] - (1 - mmr_lambda) * sim
            ranked = [remaining[i] for i in np.argsort(-mmr, kind="stable")]
        else:
            ranked = list(remaining)
        for idx in ranked:
            article = article_of[order[idx]]
            remaining.remove(idx)
            if per_article.get(article, 0) < per_article_cap:
                per_article[article] = per_article.get(article, 0) + 1
                chosen.append(order[idx])
                break
            capped.append(order[idx])
    return chosen + capped[: top_k - len(chosen)]


FUTURE_OVERFETCH = 2_000  # chunks from after the as-of date fetched past and dropped, above that filtered


def recency(published: str | None, as_of: Date, half_life_days: float) -> float:
    """1 for an article of the as-of day, halving every half_life_days before it; 0 without a date."""
    age = age_days(published, as_of)
    return 0.0 if age is None or age < 0 else math.pow(0.5, age / half_life_days)


def retrieve(question: str, store: Store, embedder: Embedder, settings: Settings, *,
             filters: Filters | None = None, reranker: Reranker | None = None, mode: str = "hybrid",
             top_k: int | None = None, as_of: Date | str | None = None) -> tuple[Hit, ...]:
    """The top_k passages for question as of a date (default today), best first.

    Nothing published after as_of is returned (articles without a date stay in); a question about the
    present ("this week", "recently") prefers articles published shortly before as_of. mode is "hybrid",
    "dense" or "lexical"."""
    if mode not in ("hybrid", "dense", "lexical"):
        raise QueryError(f"retrieval mode {mode!r} is not one of hybrid, dense, lexical")
    top_k = top_k or settings.top_k
    day = parse_as_of(as_of)
    text, _note = prepare_question(question, settings.max_question_chars)
    allowed = (store.allowed_rowids(article_ids=filters.article_ids, titles=filters.titles,
                                    date_from=filters.date_from, date_to=filters.date_to) if filters else None)
    # Articles from after the as-of date did not exist yet. There are usually few (none when as_of is today),
    # so each side fetches that many more candidates and drops them.
    future = store.future_rowids(day.isoformat())
    if len(future) > FUTURE_OVERFETCH:  # too many to fetch past: search only what existed on the as-of day
        allowed = [r for r in (allowed if allowed is not None else store.all_rowids()) if r not in future]
        future = frozenset()
    extra = len(future)
    # BM25 runs on another core while the embedder reads the question (SQLite and torch both release the GIL):
    # at 1M chunks ~10 ms of FTS5 then hides behind ~10-14 ms of MiniLM (bench_retrieval.py --scale).
    bm25 = (_side_thread().submit(store.search_lexical, text, settings.lexical_candidates + extra, allowed,
                                  settings.lexical_postings_budget) if mode != "dense" else None)
    query_vec = embedder.embed_query(text) if mode != "lexical" else None
    dense = (store.search_dense(query_vec, settings.dense_candidates + extra, allowed)
             if query_vec is not None else [])
    lexical = bm25.result() if bm25 is not None else []
    if future:
        dense = [d for d in dense if d[0] not in future][: settings.dense_candidates]
        lexical = [d for d in lexical if d[0] not in future][: settings.lexical_candidates]
    fused = fuse([[r for r, _ in dense], [r for r, _ in lexical]],
                 [settings.dense_weight, settings.lexical_weight], settings.rrf_k)
    order = sorted(fused, key=lambda r: -fused[r])
    pool = order[: max(top_k * 4, settings.rescore_candidates)]
    records = store.records(pool)
    dense_of, lexical_of = dict(dense), dict(lexical)
    if query_vec is not None and pool:  # cosine for every candidate, also those only BM25 found
        dense_of.update(zip(pool, (store.chunk_vectors(pool) @ query_vec).tolist()))
    top_bm25 = max((lexical_of.get(r, 0.0) for r in pool), default=0.0) or 1.0
    # Rescore the fused pool. Rank fusion alone throws the scores away; here each candidate gets its
    # fused position (1 at the top), plus its cosine and its BM25 relative to the best in the pool, plus
    # small bonuses for matching the question's numbers and for holding an answer of the asked-for kind.
    # On rgb_en this took hits@5 / MRR@10 from 0.84 / 0.63 (plain RRF) to 0.91 / 0.74; see README, Retrieval.
    signals = AnswerSignals(text)
    # The answer-type bonus reads English question words and capitalised names: over a multilingual index it
    # favours English and German passages whatever the question (tests/data/crosslingual hits@5 0.81 with it,
    # 0.85 without it for questions not in English, 0.89 without it at all); an English-only index keeps it.
    type_weight = 0.0 if is_multilingual(embedder) else settings.answer_type_weight
    recent_weight = settings.recency_weight if wants_recent(text, day) else settings.recency_prior
    scores = {r: settings.rrf_k / (settings.rrf_k + i)
              + settings.dense_score_weight * dense_of.get(r, 0.0)
              + settings.lexical_score_weight * lexical_of.get(r, 0.0) / top_bm25
              + settings.number_weight * signals.number_match(records[r].chunk.text)
              + type_weight * signals.answer_prior(records[r].chunk.text)
              + recent_weight * recency(records[r].published, day, settings.recency_half_life_days)
              for i, r in enumerate(pool, 1)}
    pool = sorted(pool, key=lambda r: -scores[r])
    if reranker is not None and pool:
        reranked = reranker.score(text, [records[r].chunk.text for r in pool])
        scores = dict(zip(pool, reranked))
        pool = sorted(pool, key=lambda r: -scores[r])
    vectors = store.chunk_vectors(pool) if settings.mmr_lambda < 1.0 and pool else None
    chosen = select(pool, {r: records[r].chunk.article_id for r in pool}, top_k, settings.per_article_cap,
                    vectors, [scores[r] for r in pool], settings.mmr_lambda)
    return tuple(
        Hit(chunk=records[r].chunk, score=scores[r], rank=i, title=records[r].title, source=records[r].source,
            published=records[r].published, dense_score=dense_of.get(r), lexical_score=lexical_of.get(r))
        for i, r in enumerate(chosen, 1)
    )

