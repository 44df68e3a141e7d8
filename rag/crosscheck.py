"""The support check for a claim written in another language than the passage it cites ("Chang'e-6 brought back
1,935.3 grams [1]" citing "经过称重,嫦娥六号共采集月球样品1935.3克。"): shared words cannot tell, so a
multilingual embedder compares meanings, and the claim's numbers must still be in the quoted window.

Cosine of USE multilingual v3 between an English claim and its French or Chinese source sentence: 0.43-0.59 on
the sample corpus; between a false claim and the closest sentence of the same article: 0.14-0.38. SIM_FLOOR and
SIM_SPAN map that onto the 0..1 support scale, so that a cosine of 0.40 is min_support's 0.5.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .chunk import split_sentences
from .embed import Embedder
from .guard import is_instruction
from .languages import question_language, script_language
from .types import Hit

SIM_FLOOR = 0.30  # cosine at which a cross-language claim has no support
SIM_SPAN = 0.20  # cosine above the floor at which it has full support
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def is_multilingual(embedder: Embedder | None) -> bool:
    """Can this embedder compare sentences across languages? (Adapters say so with `multilingual = True`.)"""
    return bool(getattr(embedder, "multilingual", False))


@lru_cache(maxsize=4096)
def text_language(text: str) -> str:
    """The language of a passage: its script for Chinese, Japanese and Korean, else py3langid."""
    return script_language(text) or question_language(text[:1000])


def numbers(text: str) -> list[str]:
    """The numbers of a text with thousands separators dropped ("1,935.3" → "1935.3")."""
    out = []
    for n in _NUMBER.findall(text):
        n = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", n) if re.search(r"[,.]\d{3}\b", n) else n
        out.append(n.replace(",", "."))
    return out


def cross_support(claim: str, hit: Hit, embedder: Embedder) -> tuple[float, int, int]:
    """(support 0..1, start, end) of the window of one or two sentences of the chunk closest in meaning to the
    claim; halved when a number of the claim is not in the window. Sentences giving orders are never evidence."""
    text = hit.chunk.text
    spans = [(s, e) for s, e in split_sentences(text) if not is_instruction(text[s:e])] or [(0, len(text))]
    windows = [(s, e) for s, e in spans] + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
    sims = embedder.embed_documents([text[s:e] for s, e in windows]) @ embedder.embed_query(claim)
    wanted = numbers(claim)
    best = (0.0, 0, 0)
    for (start, end), sim in zip(windows, sims.tolist()):
        score = min(1.0, max(0.0, (float(sim) - SIM_FLOOR) / SIM_SPAN))
        have = set(numbers(text[start:end]))
        if any(n not in have for n in wanted):
            score *= 0.5
        # the shorter window wins a tie: one sentence is the tighter quote
        if score > best[0] + 1e-9:
            best = (score, start, end)
    return best


def foreign(question: str, passages: list[tuple[int, str]], embedder: Embedder | None) -> set[int]:
    """Numbers of the passages written in another language than the question, when the embedder can compare
    across languages (else none: an English-only model's cosines across languages mean nothing)."""
    if not is_multilingual(embedder) or not question:
        return set()
    asked = question_language(question)
    return {number for number, text in passages if text_language(text) != asked}
