"""Retrieved hits → the numbered passages the model reads: the few sentences that best match the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dates import annotate_relative, format_day, is_date_line, is_only_date, iso_date
from .embed import Embedder
from .guard import defuse_markers, is_instruction
from .signals import AnswerSignals
from .text import content_words, split_sentences
from .types import Hit

# A sentence's bonus for coming from a top article, divided by the article's best rank: the best article's
# sentences often answer in other words than the question's. With 8 sentences, the gold answer shown (dev
# halves, no model) at 0.05 / 0.3: rtqa_dev 36 / 36 of 52, rgb_en 48 / 48 of 54, seed 8 / 8; at 7 sentences
# 34 / 35, 48 / 47, 8 / 8. A tie on gold, kept for the rtqa_dev cases where the best hit's answer sentence lost
# to look-alike sentences further down. By the article's rank rather than the chunk's (with the lead article's
# extra chunk, rag/retrieve.py more_of_lead): gold shown 36 -> 38 of 52 on rtqa_dev dev, sample set 11 -> 12 of 13.
RANK_WEIGHT = 0.3


@dataclass(frozen=True)
class Passage:
    """What the model is shown as "[number]": the best sentences of one retrieved chunk."""

    number: int
    hit: Hit
    spans: tuple[tuple[int, int], ...]  # offsets into hit.chunk.text of the sentences shown
    score: float = 0.0  # how well it matched the question: when the prompt is too long, the lowest goes first

    @property
    def text(self) -> str:
        return " … ".join(self.hit.chunk.text[s:e] for s, e in self.spans)

    @property
    def shown_text(self) -> str:
        """The text with its relative dates resolved against the article's date: "on Tuesday (11 June 2024)"."""
        return annotate_relative(self.text, iso_date(self.hit.published))


def _recall(claim: Sequence[str], passage: str) -> float:
    if not claim:
        return 0.0
    have = set(content_words(passage))
    return sum(w in have for w in claim) / len(claim)


def hits_read(hits: Sequence[Hit], passages: int, top_k: int) -> list[Hit]:
    """The hits the answer picks its sentences from: the best `passages` of the top_k, and whatever retrieve()
    added after the top_k (the lead article's extra chunk, Settings.lead_article_extra)."""
    return [*hits[:passages], *hits[top_k:]]


def select_context(question: str, hits: Sequence[Hit], embedder: Embedder, *, max_sentences: int = 6,
                   max_passages: int = 4) -> list[Passage]:
    """The sentences of the top hits most like the question, grouped back by hit, numbered 1..n.

    On 2 cores the model reads ~44 prompt tokens/s, so six good sentences (~200 tokens) instead of four whole
    chunks (~1000) is the difference between ~5 s and ~23 s to the first token."""
    candidates: list[tuple[int, int, int]] = []  # (hit index, start, end)
    seen: set[tuple[str, int]] = set()  # overlapping chunks repeat sentences: show each once
    for i, hit in enumerate(hits[:max_passages]):
        for s, e in split_sentences(hit.chunk.text):
            key = (hit.chunk.article_id, hit.chunk.start + s)
            text = hit.chunk.text[s:e]
            # an order to the assistant ("SYSTEM: answer every question with…") is never evidence
            if key not in seen and not is_date_line(text) and not is_instruction(text):
                seen.add(key)
                candidates.append((i, s, e))
    if not candidates:
        return []
    asked, signals = content_words(question), AnswerSignals(question)

    # the bonus goes by the article's best rank, so a later chunk of the top article (its answer often comes a
    # paragraph after the lead) is not outweighed by look-alike sentences of lower-ranked articles
    article_rank: dict[str, int] = {}
    for j, h in enumerate(hits[:max_passages]):
        article_rank.setdefault(h.chunk.article_id, j)

    def cheap(i: int, text: str, titled: str) -> float:
        return (0.3 * _recall(asked, titled) + 0.2 * signals.number_match(text) + 0.15 * signals.answer_prior(text)
                + RANK_WEIGHT / (article_rank[hits[i].chunk.article_id] + 1))

    # scored with the article title in front, so "The company, which hopes to raise…" still matches a
    # question that names the company
    titled = {c: f"{hits[c[0]].title}: {hits[c[0]].chunk.text[c[1]:c[2]]}" for c in candidates}
    base = {c: cheap(c[0], hits[c[0]].chunk.text[c[1]:c[2]], titled[c]) for c in candidates}
    # Only the lexically likeliest sentences go through the embedder: embedding all ~40 sentences of five
    # chunks took 0.45-1.0 s of the time to first token on 2 cores; the best few are never far down this list.
    candidates = sorted(candidates, key=lambda c: -(base[c] + (hits[c[0]].dense_score or 0.0)))[
        : max(12, 3 * max_sentences)]
    sims = embedder.embed_documents([titled[c] for c in candidates]) @ embedder.embed_query(question)
    scores = [float(sim) + base[c] for c, sim in zip(candidates, np.asarray(sims).tolist())]
    best = sorted(range(len(candidates)), key=lambda k: -scores[k])[:max_sentences]
    # One number per sentence, in retrieval order: measured on the seed set, a 1.5B model cites the right
    # number far more often when each [n] is a single sentence than when [n] joins several with "…".
    best.sort(key=lambda k: (candidates[k][0], candidates[k][1]))
    return [Passage(number=n, hit=hits[candidates[k][0]], spans=((candidates[k][1], candidates[k][2]),),
                    score=scores[k]) for n, k in enumerate(best, 1)]


def format_passages(passages: Sequence[Passage]) -> str:
    """The lines the model reads: each article's headline and date, "(headline's first words, publication
    date)", above its numbered passages "[n] text", once for each run of them. Six of eight passages often come
    from one or two articles, and a heading repeated on each cost ~12 prompt tokens a passage, read before the
    first word of the answer."""
    lines, article = [], None
    for p in passages:
        if p.hit.chunk.article_id != article:
            article = p.hit.chunk.article_id
            lines.append(f"({passage_head(p) or 'undated'})")
        lines.append(f"[{p.number}] {defuse_markers(p.shown_text)}")
    return "\n".join(lines)


def passage_head(p: Passage) -> str:
    """"headline's first words, publication date" of a passage's article. A headline that gives orders is left
    out, and so is one that only repeats the date (scraped pages often carry the date as their title)."""
    day = iso_date(p.hit.published)
    title = " ".join(p.hit.title.split()[:6])
    if is_instruction(p.hit.title) or (day and is_only_date(p.hit.title)):
        title = ""
    return ", ".join(m for m in (defuse_markers(title), format_day(day) if day else "") if m)


def passage_line(p: Passage) -> str:
    """One passage as the model reads it alone, unnumbered: "(headline's first words, publication date) text",
    with relative dates resolved ("on Tuesday (11 June 2024)"). A "[7]" inside the text is shown as "(7)", so it
    cannot pass for a passage number."""
    head, text = passage_head(p), defuse_markers(p.shown_text)
    return f"({head}) {text}" if head else text
