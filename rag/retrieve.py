"""Question → ranked Hits: dense (FAISS) and BM25 (FTS5) candidates, reciprocal-rank fusion, rerank, caps."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .config import Settings
from .dates import Date, age_days, given_day, names_past_time, parse_as_of, wants_recent
from .embed import Embedder, is_multilingual
from .errors import QueryError
from .languages import question_language
from .rerank import Reranker
from .signals import AnswerSignals
from .store import ChunkRecord, Store
from .types import Hit


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some articles (by id or title words) and/or a date range (ISO dates)."""

    article_ids: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        """A date that is not YYYY-MM-DD is the caller's error (QueryError): compared as text it would filter
        wrongly ("2021/01/01") or not at all, and say nothing."""
        for name in ("date_from", "date_to"):
            object.__setattr__(self, name, given_day(getattr(self, name), name.replace("_", " ")))

    def __bool__(self) -> bool:
        return bool(self.article_ids or self.titles or self.date_from or self.date_to)


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


def lexical_stand_ins(dense: Sequence[tuple[int, float]], lexical: Sequence[tuple[int, float]],
                      language_of: dict[int, str | None], asked: str, own: dict[int, int] | None = None
                      ) -> dict[int, tuple[int, float]]:
    """For dense candidates in another language than the question: the BM25 rank and score each stands in with,
    its dense rank and the BM25 score found at that rank, where that is better than its own.

    BM25 matches words, so a passage in another language is lexically invisible however well it answers, and
    fusion sank it: over the bundled sample corpus, the Chinese passage that states what an English question asks
    was the dense side's first but 32nd of the fused pool, behind every English passage found by both sides, and
    never reached the answer. With its dense rank standing in for the BM25 rank it cannot have, it competes as a
    passage both sides agree on, no more. Passages of the question's language, and of unknown language, keep
    their own BM25 ranks. own: BM25's rank of each rowid, when the caller has it already."""
    own = lexical_ranks(lexical) if own is None else own
    return {r: (rank, lexical[rank - 1][1] if rank <= len(lexical) else 0.0)
            for rank, (r, _) in enumerate(dense, 1)
            if language_of.get(r) not in (None, asked) and own.get(r, math.inf) > rank}


def lexical_ranks(lexical: Sequence[tuple[int, float]]) -> dict[int, int]:
    """BM25's rank (from 1) of each rowid it found."""
    return {r: i for i, (r, _) in enumerate(lexical, 1)}


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


def more_of_lead(order: Sequence[int], article_of: dict[int, str], chosen: Sequence[int], extra: int) -> list[int]:
    """Up to extra more chunks of the best article, best scoring first, to go after the top_k: the cap keeps other
    articles in the top_k, while the best article's third-best chunk often holds the answer its first two lead to."""
    if not chosen or extra <= 0:
        return []
    lead, taken = article_of[chosen[0]], set(chosen)
    return [r for r in order if article_of[r] == lead and r not in taken][:extra]


FUTURE_OVERFETCH = 2_000  # chunks from after the as-of date fetched past and dropped, above that filtered


def recency(published: str | None, as_of: Date, half_life_days: float) -> float:
    """1 for an article of the as-of day, halving every half_life_days before it; 0 without a date."""
    age = age_days(published, as_of)
    return 0.0 if age is None or age < 0 else math.pow(0.5, age / half_life_days)


Scored = list[tuple[int, float]]  # (chunk rowid, score), best first


def _candidates(text: str, store: Store, embedder: Embedder, settings: Settings, filters: Filters | None,
                day: Date, mode: str) -> tuple[Scored, Scored, np.ndarray | None]:
    """The dense and BM25 candidates for the question (and its vector), none published after day."""
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
                                  settings.lexical_postings_budget, alone=mode == "lexical")
            if mode != "dense" else None)
    query_vec = embedder.embed_query(text) if mode != "lexical" else None
    dense = (store.search_dense(query_vec, settings.dense_candidates + extra, allowed)
             if query_vec is not None else [])
    lexical = bm25.result() if bm25 is not None else []
    if future:
        dense = [d for d in dense if d[0] not in future][: settings.dense_candidates]
        lexical = [d for d in lexical if d[0] not in future][: settings.lexical_candidates]
    return dense, lexical, query_vec


def _rescore(text: str, pool: Sequence[int], records: dict[int, ChunkRecord], dense_of: dict[int, float],
             lexical_of: dict[int, float], settings: Settings, day: Date, *, multilingual: bool = False
             ) -> dict[int, float]:
    """Rescore the fused pool. Rank fusion alone throws the scores away; here each candidate gets its
    fused position (1 at the top), plus its cosine and its BM25 relative to the best in the pool, plus
    small bonuses for matching the question's numbers and for holding an answer of the asked-for kind.
    On rgb_en this took hits@5 / MRR@10 from 0.84 / 0.63 (plain RRF) to 0.91 / 0.74; see README, Retrieval."""
    top_bm25 = max((lexical_of.get(r, 0.0) for r in pool), default=0.0) or 1.0
    signals = AnswerSignals(text)
    # The answer-type bonus reads English question words and capitalised names: over a multilingual index it
    # favours English and German passages whatever the question (tests/data/crosslingual hits@5 0.81 with it,
    # 0.85 without it for questions not in English, 0.89 without it at all); an English-only index keeps it.
    type_weight = 0.0 if multilingual else settings.answer_type_weight
    # present-tense questions lean on recency; news questions in general a little; a named past date not at all
    recent_weight = (settings.recency_weight if wants_recent(text, day)
                     else 0.0 if names_past_time(text, day) else settings.recency_prior)
    return {r: settings.rrf_k / (settings.rrf_k + i)
            + settings.dense_score_weight * dense_of.get(r, 0.0)
            + settings.lexical_score_weight * lexical_of.get(r, 0.0) / top_bm25
            + settings.number_weight * signals.number_match(records[r].chunk.text)
            + type_weight * signals.answer_prior(records[r].chunk.text)
            + recent_weight * recency(records[r].published, day, settings.recency_half_life_days)
            for i, r in enumerate(pool, 1)}


def retrieve(question: str, store: Store, embedder: Embedder, settings: Settings, *,
             filters: Filters | None = None, reranker: Reranker | None = None, mode: str = "hybrid",
             top_k: int | None = None, as_of: Date | str | None = None, lead_extra: int = 0) -> tuple[Hit, ...]:
    """The top_k passages for question as of a date (default today), best first, then up to lead_extra more
    chunks of the best article (what the answer reads: see more_of_lead()).

    Nothing published after as_of is returned (articles without a date stay in); a question about the
    present ("this week", "recently") prefers articles published shortly before as_of. mode is "hybrid",
    "dense" or "lexical".

    The store's vectors are those it opened (store.py), its rows the live ones: a caller holding its own Store
    across an update reopens it once store.is_stale() says so, as Pipeline.store does. A stale one ranks an
    article re-added under new rowids by lexical score alone (its chunks have no vector there), which made one
    debugging session's ranking differ from a fresh process's."""
    if mode not in ("hybrid", "dense", "lexical"):
        raise QueryError(f"retrieval mode {mode!r} is not one of hybrid, dense, lexical")
    if top_k is not None and (not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or top_k <= 0):
        raise QueryError(f"top_k={top_k!r} must be a whole number above 0 (or None for the setting, "
                         f"{settings.top_k})")
    top_k = int(top_k or settings.top_k)
    day = parse_as_of(as_of)
    text, _note = prepare_question(question, settings.max_question_chars)
    dense, lexical, query_vec = _candidates(text, store, embedder, settings, filters, day, mode)
    fused = fuse([[r for r, _ in dense], [r for r, _ in lexical]],
                 [settings.dense_weight, settings.lexical_weight], settings.rrf_k)
    dense_of, lexical_of = dict(dense), dict(lexical)
    rescored_bm25 = dict(lexical_of)  # with the stand-ins; Hit.lexical_score stays what BM25 itself found
    if mode == "hybrid" and dense and is_multilingual(embedder):
        own = lexical_ranks(lexical)
        stand_ins = lexical_stand_ins(dense, lexical, store.languages(r for r, _ in dense), question_language(text),
                                      own)
        for r, (rank, bm25) in stand_ins.items():
            fused[r] += settings.lexical_weight * (1 / (settings.rrf_k + rank)
                                                   - (1 / (settings.rrf_k + own[r]) if r in own else 0.0))
            rescored_bm25[r] = max(lexical_of.get(r, 0.0), bm25)
    order = sorted(fused, key=lambda r: -fused[r])
    pool = order[: max(top_k * 4, settings.rescore_candidates)]
    records = store.records(pool)
    pool = [r for r in pool if r in records]  # a chunk an update removed since the store's vectors were read
    # cosine for every candidate, also those only BM25 found (0 for one an update added since the store's flat
    # vectors were read: the next question reopens them)
    if query_vec is not None and pool:
        dense_of.update(zip(pool, (store.chunk_vectors(pool) @ query_vec).tolist()))
    scores = _rescore(text, pool, records, dense_of, rescored_bm25, settings, day,
                      multilingual=is_multilingual(embedder))
    pool = sorted(pool, key=lambda r: -scores[r])
    if reranker is not None and pool:
        reranked = reranker.score(text, [records[r].chunk.text for r in pool])
        scores = dict(zip(pool, reranked))
        pool = sorted(pool, key=lambda r: -scores[r])
    vectors = store.chunk_vectors(pool) if settings.mmr_lambda < 1.0 and pool else None
    article_of = {r: records[r].chunk.article_id for r in pool}
    chosen = select(pool, article_of, top_k, settings.per_article_cap, vectors, [scores[r] for r in pool],
                    settings.mmr_lambda)
    chosen += more_of_lead(pool, article_of, chosen, lead_extra)
    return tuple(
        Hit(chunk=records[r].chunk, score=scores[r], rank=i, title=records[r].title, source=records[r].source,
            published=records[r].published, dense_score=dense_of.get(r), lexical_score=lexical_of.get(r))
        for i, r in enumerate(chosen, 1)
    )

