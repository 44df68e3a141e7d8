from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rag import Pipeline, QueryError, Settings
from rag.retrieve import fuse, lexical_stand_ins, more_of_lead, prepare_question, retrieve, select
from rag.signals import AnswerSignals

from .fakes import HashEmbedder, QuotingGenerator


class KeywordReranker:
    """A fake cross-encoder: ranks passages by how often they contain one keyword."""

    name = "keyword"

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.seen: list[int] = []

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        self.seen.append(len(passages))
        return [float(p.lower().count(self.keyword)) for p in passages]


def test_reciprocal_rank_fusion() -> None:
    scores = fuse([[1, 2, 3], [3, 1, 4]], [1.0, 1.0], k=60)
    assert max(scores, key=lambda r: scores[r]) == 1  # 1st and 2nd beats 3rd and 1st
    assert scores[3] > scores[2] and scores[4] < scores[2]
    weighted = fuse([[1, 2], [2, 1]], [1.0, 0.0], k=60)
    assert weighted[1] > weighted[2]


def test_passages_in_another_language_stand_in_with_their_dense_rank() -> None:
    dense = [(7, 0.6), (1, 0.5), (8, 0.45), (9, 0.4), (2, 0.3)]
    lexical = [(1, 12.0), (2, 9.0), (3, 8.0), (4, 5.0), (9, 2.0)]
    language_of = {7: "zh", 1: "en", 8: None, 9: "fr", 2: "en"}
    # 7 (Chinese, dense 1st, no BM25) stands in as BM25's 1st; 9 (French, BM25 5th) as its dense 4th; 8 is of
    # unknown language and 1, 2 are in the question's language: their own BM25 ranks stand
    assert lexical_stand_ins(dense, lexical, language_of, "en") == {7: (1, 12.0), 9: (4, 5.0)}
    # a foreign passage BM25 ranks better than dense keeps its own rank; beyond BM25's list it stands in with 0
    assert lexical_stand_ins([(5, 0.9), (6, 0.8), (4, 0.7)], [(4, 3.0)], {4: "de", 5: "en", 6: "de"}, "en") == \
        {6: (2, 0.0)}
    assert lexical_stand_ins([(4, 0.9)], [(4, 3.0)], {4: "de"}, "en") == {}
    # asked in Chinese: the English and French passages BM25 ranks no better than dense stand in
    assert lexical_stand_ins(dense, lexical, language_of, "zh") == {9: (4, 5.0)}
    assert lexical_stand_ins(dense, [], language_of, "zh") == {1: (2, 0.0), 9: (4, 0.0), 2: (5, 0.0)}


def test_per_article_cap_and_mmr() -> None:
    order = [10, 11, 12, 20, 30]
    article_of = {10: "a", 11: "a", 12: "a", 20: "b", 30: "c"}
    assert select(order, article_of, top_k=4, per_article_cap=2) == [10, 11, 20, 30]
    # the cap never leaves fewer than top_k when only capped passages are left
    assert select(order[:3], article_of, top_k=3, per_article_cap=1) == [10, 11, 12]
    vectors = np.array([[1, 0], [1, 0], [0.99, 0.14], [0, 1], [0.7, 0.7]], dtype=np.float32)
    relevance = [1.0, 0.99, 0.98, 0.5, 0.4]
    plain = select(order, article_of, 3, 5, vectors, relevance, mmr_lambda=1.0)
    diverse = select(order, article_of, 3, 5, vectors, relevance, mmr_lambda=0.3)
    assert plain == [10, 11, 12] and diverse[0] == 10 and 20 in diverse


def test_the_best_article_may_add_one_more_chunk_after_the_top_k() -> None:
    order = [10, 11, 20, 12, 30, 13]
    article_of = {10: "a", 11: "a", 12: "a", 13: "a", 20: "b", 30: "c"}
    chosen = select(order, article_of, top_k=3, per_article_cap=2)
    assert chosen == [10, 11, 20]
    assert more_of_lead(order, article_of, chosen, 1) == [12]  # the next best of "a", not "c"
    assert more_of_lead(order, article_of, chosen, 2) == [12, 13]
    assert more_of_lead(order, article_of, chosen, 0) == [] and more_of_lead(order, article_of, [], 1) == []
    assert more_of_lead([20, 10, 30], article_of, [20, 10, 30], 1) == []  # "b" has no other chunk


def test_search_returns_top_k_and_the_answer_path_reads_one_chunk_more(indexed: Settings) -> None:
    pipeline = Pipeline(indexed, embedder=HashEmbedder())
    question = "Which chess player won the championship in Astana?"
    assert len(pipeline.retrieve(question, top_k=2)) == 2  # what a caller asked for, no more
    plain = retrieve(question, pipeline.store, pipeline.embedder, indexed.replace(per_article_cap=1), top_k=2)
    more = retrieve(question, pipeline.store, pipeline.embedder, indexed.replace(per_article_cap=1), top_k=2,
                    lead_extra=1)
    assert more[:2] == plain and len(more) == 3 and more[2].rank == 3
    assert more[2].chunk.article_id == more[0].chunk.article_id != more[1].chunk.article_id
    assert more[2].chunk.id not in {h.chunk.id for h in plain}
    # and the answer reads it: the top five (one chunk an article here) and the best article's next best chunk
    hits = Pipeline(indexed.replace(per_article_cap=1), embedder=HashEmbedder(), generator=QuotingGenerator()).ask(
        question).hits
    assert len(hits) == indexed.top_k + 1 and hits[-1].chunk.article_id == hits[0].chunk.article_id


def test_rescoring_signals() -> None:
    assert AnswerSignals("Tesla revenue in Q1 2021").number_match("revenue in Q1 2021 was $10.4 billion") == 1.0
    assert AnswerSignals("Tesla revenue in Q1 2021").number_match("Q1 2023 revenue") == 0.5
    when = AnswerSignals("When did Diablo 3 come out?")
    assert when.answer_prior("Nov 8, 2019 ... It was launched on May 15, 2012.") == 1.0
    assert when.answer_prior("Nov 8, 2019 ... Diablo 3 has many fans.") == 0.0
    assert AnswerSignals("How much did it cost?").answer_prior("It cost 40 million euros.") == 1.0


def test_question_validation() -> None:
    with pytest.raises(QueryError):
        prepare_question(" \t\n", 100)
    text, note = prepare_question("word " * 5000, 2000)
    assert len(text) <= 2000 and note and "characters" in note and "first 1,999" in note


def test_reranker_reorders_candidates(indexed: Settings) -> None:
    reranker = KeywordReranker("coins")
    pipeline = Pipeline(indexed, embedder=HashEmbedder(), reranker=reranker)
    plain = Pipeline(indexed, embedder=HashEmbedder()).retrieve("the river and the town", top_k=3)
    reranked = pipeline.retrieve("the river and the town", top_k=3)
    assert reranker.seen and reranker.seen[0] >= 3
    assert "coins" in reranked[0].chunk.text.lower() and "coins" not in plain[0].chunk.text.lower()


def test_modes_and_scores(indexed: Settings) -> None:
    pipeline = Pipeline(indexed, embedder=HashEmbedder())
    question = "Which chess player won the championship in Astana?"
    for mode in ("hybrid", "dense", "lexical"):
        hits = pipeline.retrieve(question, mode=mode, top_k=3)
        assert hits[0].title.startswith("Ding Liren") and [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    assert all(h.lexical_score is None for h in pipeline.retrieve(question, mode="dense"))
    with pytest.raises(QueryError, match="mode"):
        pipeline.retrieve(question, mode="magic")
    assert len(pipeline.retrieve(question, top_k=1)) == 1
    for bad in (0, -3, 2.5, True):  # 0 meant the setting's 5, -3 found nothing
        with pytest.raises(QueryError, match="top_k=.* must be a whole number above 0"):
            pipeline.retrieve(question, top_k=bad)  # type: ignore[arg-type]


def test_rescoring_weights_steer_the_order(indexed: Settings) -> None:
    """The fused pool is rescored with the raw scores: a large cosine weight orders hits by cosine, a large
    BM25 weight by BM25, and every hybrid hit carries its cosine, also one only BM25 found."""
    question = "the river town where coins were found"
    quiet = {"number_weight": 0.0, "answer_type_weight": 0.0, "per_article_cap": 5}
    by_dense = Pipeline(indexed.replace(dense_score_weight=100.0, lexical_score_weight=0.0, **quiet),
                        embedder=HashEmbedder()).retrieve(question, top_k=5)
    by_lexical = Pipeline(indexed.replace(dense_score_weight=0.0, lexical_score_weight=100.0, **quiet),
                          embedder=HashEmbedder()).retrieve(question, top_k=5)
    assert all(h.dense_score is not None for h in by_dense + by_lexical)
    cosines = [h.dense_score for h in by_dense]
    assert cosines == sorted(cosines, reverse=True)  # type: ignore[type-var]
    bm25 = [h.lexical_score or 0.0 for h in by_lexical]
    assert bm25 == sorted(bm25, reverse=True) and bm25[0] > 0
    assert [h.chunk.id for h in by_dense] != [h.chunk.id for h in by_lexical]


def test_lexical_search_keeps_the_rarest_terms_within_a_budget(indexed: Settings) -> None:
    """Under a postings budget the commonest question word is left out ("towns", stemmed to "town", is in
    four chunks), so chunks holding only it stop being BM25 candidates; the rarer words are all kept."""
    from rag.store import Store

    store = Store(indexed.index_dir)
    try:
        freq = store.term_frequencies(["towns", "police", "skylight", "zeppelin"])
        assert freq == {"towns": 4, "police": 2, "skylight": 1, "zeppelin": 0}
        question = "towns police skylight"
        everything = store.search_lexical(question, 50)
        budgeted = store.search_lexical(question, 50, postings_budget=3)
        texts = dict(store.db.execute(  # what FTS5 indexes: the article title and the chunk
            "SELECT c.rowid, lower(a.title || ' ' || c.text) FROM chunks c JOIN articles a ON a.id = c.article_id"))
        assert {r for r, _ in budgeted} == {r for r in texts if "skylight" in texts[r] or "police" in texts[r]}
        assert {r for r, _ in everything} == {r for r in texts if any(w in texts[r] for w in ("town", "police",
                                                                                             "skylight"))}
        assert len(store.search_lexical("towns", 50, postings_budget=4)) == 4
        # when even the rarest word is in more chunks than the budget, BM25 is skipped; the dense side answers
        assert store.search_lexical("towns", 50, postings_budget=3) == []
        assert store.search_lexical("towns police", 50, postings_budget=1) == []
        pipeline = Pipeline(indexed.replace(lexical_postings_budget=1), embedder=HashEmbedder())
        hits = pipeline.retrieve("towns police")
        assert hits and all(h.lexical_score is None for h in hits)
        # a lexical-only search has no dense side to fall back on: it still scores the rarest word
        assert len(store.search_lexical("towns police", 50, postings_budget=1, alone=True)) == 2
        alone = pipeline.retrieve("towns police", mode="lexical")
        assert alone and all(h.lexical_score for h in alone)
    finally:
        store.close()
