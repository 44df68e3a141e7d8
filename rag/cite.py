"""The model's text → verified citations: markers, support scores, exact quotes."""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import crosscheck
from .context import Passage
from .dates import annotate_relative, format_day, iso_date
from .embed import Embedder
from .guard import is_instruction
from .languages import is_refusal
from .text import content_words, spelled_out, split_sentences
from .types import Citation, Hit, Sentence

# The one sentence the product says when the articles do not answer; the prompt receives it as $no_answer.
NO_ANSWER = "The indexed articles do not answer this question."

# asks for something ("In which year…", "By how much…"), so an answer must say something the question does not
_WH_QUESTION = re.compile(r"\s*(?:\w+\s+)?(?:what|which|who|whom|whose|when|where|why|how)\b", re.I)
_WHEN = re.compile(r"\s*(?:when|what (?:date|day)|on what (?:date|day)|quand|à quelle date)\b", re.I)
QUOTE_SLACK = 0.2  # a shorter quote may score this much below the best window of its passage
_MARKER = re.compile(r"\s*\[(\d{1,3})\]")


def split_claims(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """The answer's sentences with the markers each one carries."""
    claims = []
    for s, e in split_sentences(text):
        sentence = text[s:e]
        markers = tuple(int(m) for m in _MARKER.findall(sentence))
        claims.append((sentence, markers))
    # a marker the splitter left at the start of the next sentence ("… rose. [2] Next …") belongs before it
    fixed: list[tuple[str, tuple[int, ...]]] = []
    for sentence, markers in claims:
        lead = re.match(r"^((?:\s*\[\d{1,3}\])+)[.!?]?\s*", sentence)
        if lead and fixed:
            moved = tuple(int(m) for m in _MARKER.findall(lead.group(1)))
            prev, prev_markers = fixed[-1]
            fixed[-1] = (prev + " " + lead.group(1).strip(), prev_markers + moved)
            sentence, markers = sentence[lead.end():], markers[len(moved):]
        if sentence.strip():
            fixed.append((sentence, markers))
    return fixed


def question_names(question: str) -> list[list[str]]:
    """Capitalised names in the question after its first word ("Bank of England"), as stemmed words.

    An abbreviation in capitals ("KRB") is left out of a name, since articles often spell it out ("the Kessel
    River Board"), and so is a lowercase word hyphened onto a name ("KRB-funded", "Lyon-based")."""
    body = question.strip().split(" ", 1)[1] if " " in question.strip() else ""
    found = re.findall(r"\b[A-Z][\w'’.-]*(?:\s+(?:of|de|the|and|&)\s+[A-Z][\w'’.-]*|\s+[A-Z][\w'’.-]*)*", body)
    names = []
    for name in found:
        parts = [part for part in re.split(r"[\s-]+", name)
                 if part[:1].isupper() and not (sum(c.isupper() for c in part) > 1 and part.upper() == part)]
        if words := content_words(" ".join(parts)):
            names.append(words)
    return names


def best_support(claim: str, hit: Hit, question: str = "", min_support: float = 0.5) -> tuple[float, int, int]:
    """(support 0..1, start, end): the window of one to three sentences of the chunk that best supports the
    claim — the share of the claim's content words it holds, halved when a number of the claim is missing,
    or when the window lacks what the question asks about ("Who founded X?" answered from a passage that
    names someone but says nothing of founding). Of windows scoring nearly as well, the shortest is the
    quote: one word of the claim found in a neighbouring sentence should not triple the highlighted text.
    No window holds a sentence that gives the assistant orders: an injected line supports nothing."""
    words = content_words(_MARKER.sub("", claim))
    asked = set(content_words(question)) & set(words)
    text = hit.chunk.text
    spans = split_sentences(text) or [(0, len(text))]
    numbers = [w for w in words if any(ch.isdigit() for ch in w)]
    orders = [is_instruction(text[s:e]) for s, e in spans]
    published = iso_date(hit.published)
    # "When…?" is answered by the article's own date as much as by its text ("…opened on Tuesday")
    dated = set(content_words(format_day(published))) if published and _WHEN.match(question) else set()
    windows: list[tuple[float, int, int, int]] = []  # (score, sentences, start, end)
    for size in (1, 2, 3):
        for i in range(len(spans) - size + 1):
            if any(orders[i:i + size]):
                continue
            start, end = spans[i][0], spans[i + size - 1][1]
            have = set(content_words(annotate_relative(text[start:end], published))) | dated
            have |= spelled_out(claim, text[start:end])  # "Harbour Port Authority" supported by "H.P.A."
            score = sum(w in have for w in words) / len(words) if words else 0.0
            if any(n not in have for n in numbers):
                score *= 0.5
            if asked and sum(w in have for w in asked) < 2 * len(asked) / 3:
                score *= 0.5
            windows.append((score, size, start, end))
    if not windows:  # the chunk is all orders
        return 0.0, 0, 0
    top = max(w[0] for w in windows)
    # "nearly as well": within 0.2 (one content word in five), and on the same side of min_support
    near = [w for w in windows if w[0] >= top - QUOTE_SLACK and (w[0] >= min_support or top < min_support)]
    score, _, start, end = min(near, key=lambda w: (w[1], -w[0], w[2]))
    return score, start, end


def _holds_orders(text: str, start: int, end: int) -> bool:
    """Does text[start:end] take in a sentence that gives the assistant orders?"""
    return any(is_instruction(text[s:e]) for s, e in split_sentences(text) if s < end and e > start)


def _useful(words: set[str], scored: list[tuple[int, tuple[float, int, int]]], by_number: dict[int, Passage],
            min_support: float) -> list[tuple[int, tuple[float, int, int]]]:
    """The citations of a supported sentence worth keeping: the best one, any other that supports the
    sentence too, and any that half supports it while holding words of the claim (`words`: its content words
    less the question's, which are in every passage) that the kept ones lack. "…is suffering [1] [3]" loses
    [3] when passage 3 only shares the company's name with it."""
    kept: list[tuple[int, tuple[float, int, int]]] = []
    covered: set[str] = set()
    for m, window in sorted(scored, key=lambda item: -item[1][0]):
        adds = (words & set(content_words(by_number[m].hit.chunk.text[window[1]:window[2]]))) - covered
        if not kept or window[0] >= min_support or (adds and window[0] >= min_support / 2):
            kept.append((m, window))
            covered |= adds
    order = [m for m, _ in scored]
    return sorted(kept, key=lambda item: order.index(item[0]))


def _with_markers(sentence: str, markers: Sequence[int]) -> str:
    """The sentence with its markers written once each, before its closing stop: "It rose 5% [1] [2]."."""
    body = _MARKER.sub("", sentence).strip()
    stop = body[-1] if body and body[-1] in ".!?。！？" else "."
    body = body.rstrip(".!?。！？ ")
    return body + "".join(f" [{m}]" for m in markers) + stop if markers else body + stop


def cite(text: str, passages: Sequence[Passage], *, min_support: float = 0.5, question: str = "",
         embedder: Embedder | None = None, found: bool = False
         ) -> tuple[str, tuple[Sentence, ...], tuple[Citation, ...], bool]:
    """(answer text, sentences, citations, refused) from the model's raw text and the passages it saw. With a
    multilingual embedder, a passage in another language than the question is checked by meaning, or, for the
    find step's few words (found=True), by their numbers and names (crosscheck)."""
    raw = " ".join(text.split())
    if not raw or is_refusal(raw):  # the refusal sentence in any language of rag/data/languages.json
        return NO_ANSWER, (), (), True
    by_number = {p.number: p for p in passages}
    other = crosscheck.foreign(question, [(p.number, p.hit.chunk.text) for p in passages], embedder)

    def check(sentence: str, p: Passage) -> tuple[float, int, int]:
        window = best_support(sentence, p.hit, question, min_support)
        if p.number in other and embedder is not None and window[0] < 1.0:
            claim = _MARKER.sub("", sentence)
            window = max(window, crosscheck.anchor_support(claim, p.hit, question) if found
                         else crosscheck.cross_support(claim, p.hit, embedder, question))
        return window

    # A name the question asks about that no shown passage mentions at all ("Bank of England" when only the
    # Fed's decision was retrieved) means a claim repeating it cannot be supported, however many words match.
    shown = set(content_words(" ".join(f"{p.hit.title} {p.hit.chunk.text}" for p in passages)))
    # (not across languages: "Chang'e-6" is written 嫦娥六号 in the passage that answers)
    absent = [] if other else [n for n in question_names(question) if not all(w in shown for w in n)]
    asked_words, wh_question = set(content_words(question)), bool(_WH_QUESTION.match(question))
    # drop markers that point at no passage the model was shown (a prompt injection cannot add one)
    raw = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in by_number else "", raw)
    sentences: list[Sentence] = []
    spans: dict[int, list[tuple[float, int, int]]] = {}
    pieces: list[str] = []
    for sentence, markers in split_claims(raw):
        markers = tuple(dict.fromkeys(markers))  # keep order, drop repeats
        scored = [(m, check(sentence, by_number[m])) for m in markers]
        support = max((s for _, (s, _, _) in scored), default=0.0)
        claim_words = set(content_words(_MARKER.sub("", sentence)))
        names_missing = any(all(w in claim_words for w in n) for n in absent)
        # "What rocket carried Webb into space?" answered "The rocket carried Webb into space [3]." repeats the
        # question: every word is in the passage, and nothing is answered
        restates = wh_question and not claim_words - asked_words
        if names_missing or restates:
            scored, support = [(m, (0.0, s, e)) for m, (_, s, e) in scored], 0.0
        recited = False
        if support < min_support and not names_missing and not restates:
            # Small models often state a passage's fact but cite its neighbour's number: re-cite the sentence
            # to the shown passage that does support it, rather than drop a true, checkable claim.
            alternatives = [(p.number, check(sentence, p)) for p in passages]
            number, window = max(alternatives, key=lambda a: a[1][0], default=(0, (0.0, 0, 0)))
            if window[0] >= min_support:
                scored, support, recited = [(number, window)], window[0], True
                markers = (number,)
        if support >= min_support:
            scored = _useful(claim_words - asked_words, scored, by_number, min_support)
            markers = tuple(m for m, _ in scored)
        sentence = _with_markers(sentence, markers)
        for m, window in scored:
            spans.setdefault(m, []).append(window)
        pieces.append(sentence)
        sentences.append(Sentence(text=sentence, markers=markers, supported=support >= min_support,
                                  support=support, recited=recited))
    raw = " ".join(pieces)
    if not any(s.supported for s in sentences):
        return NO_ANSWER, tuple(sentences), (), True
    return raw, tuple(sentences), _citations(spans, by_number), False


def _citations(spans: dict[int, list[tuple[float, int, int]]], by_number: dict[int, Passage]) -> tuple[Citation, ...]:
    """One Citation per cited passage, quoting the span from its first supporting window to its last."""
    citations = []
    for marker in sorted(spans):
        hit = by_number[marker].hit
        windows = spans[marker]
        start, end = min(w[1] for w in windows), max(w[2] for w in windows)
        if _holds_orders(hit.chunk.text, start, end):  # windows either side of an injected line: quote the best
            _, start, end = max(windows, key=lambda w: w[0])
        citations.append(Citation(
            marker=marker, chunk_id=hit.chunk.id, article_id=hit.chunk.article_id, title=hit.title,
            source=hit.source, start=hit.chunk.start + start, end=hit.chunk.start + end,
            quote=hit.chunk.text[start:end], support=round(max(w[0] for w in windows), 4),
            published=hit.published))
    return tuple(citations)
