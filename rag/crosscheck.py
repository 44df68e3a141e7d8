"""The support check for a claim written in another language than the passage it cites ("Chang'e-6 brought back
1,935.3 grams [1]" citing "经过称重,嫦娥六号共采集月球样品1935.3克。"): shared words cannot tell, so a
multilingual embedder compares meanings, and the claim's numbers must still be in the quoted window.

Cosine of USE multilingual v3 between an English claim and its French or Chinese source sentence: 0.43-0.59 on
the sample corpus; between a false claim and the closest sentence of the same article: 0.14-0.38. SIM_FLOOR and
SIM_SPAN map that onto the 0..1 support scale, so that a cosine of 0.40 is min_support's 0.5. Numbers are the
one thing that reads the same in every language, so a claim's number missing from the window fails it.

The find step's answer is a few words, not a sentence: for those the cosine tells nothing, and anchor_support
checks their numbers and names instead.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .embed import Embedder, is_multilingual
from .guard import is_instruction
from .languages import question_language, script_language
from .text import content_words, split_bigrams, split_sentences
from .types import Hit

SIM_FLOOR = 0.30  # cosine at which a cross-language claim has no support
SIM_SPAN = 0.20  # cosine above the floor at which it has full support
_NUMBER_UNIT = re.compile(r"(\d+(?:[.,]\d+)*)\s*([万亿])?")
MISSING_NUMBER = 0.4  # a claim whose number is not in the window keeps this share of its score: below min_support
_NAME = re.compile(r"[^\W\d_][\w'’-]*")


@lru_cache(maxsize=4096)
def text_language(text: str) -> str:
    """The language of a passage: its script for Chinese, Japanese and Korean, else py3langid."""
    return script_language(text) or question_language(text[:1000])


def numbers(text: str) -> list[str]:
    """The numbers of a text with thousands separators dropped ("1,935.3", "2 000", "52.000") and decimal commas
    read as points ("2,8" → "2.8"); a Chinese 万 or 亿 after a number adds what it reads as in thousands, millions
    and billions ("180万" → 1800000, 1800, 1.8)."""
    out = []
    text = re.sub(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(?!\d))", "", text)
    for match in _NUMBER_UNIT.finditer(text):
        n = match.group(1)
        n = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", n) if re.search(r"[,.]\d{3}\b", n) else n
        n = n.replace(",", ".")
        out.append(n)
        if match.group(2):
            value = float(n) * (10_000 if match.group(2) == "万" else 100_000_000)
            out.extend(_plain(value / scale) for scale in (1, 1_000, 1_000_000, 1_000_000_000) if value / scale >= 1)
    return out


def _plain(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:.6g}"


def cross_support(claim: str, hit: Hit, embedder: Embedder, question: str = "") -> tuple[float, int, int]:
    """(support 0..1, start, end) of the window of one or two sentences of the chunk closest in meaning to the
    claim; halved when a number of the claim is not in the window (numbers the question states already, as in
    "Chang'e-6", which the passage writes 嫦娥六号, are not asked for). Sentences giving orders are never evidence."""
    text = hit.chunk.text
    windows = _windows(text)
    sims = embedder.embed_documents([text[s:e] for s, e in windows]) @ embedder.embed_query(claim)
    asked = set(numbers(question))
    wanted = [n for n in numbers(claim) if n not in asked]
    dated = set(numbers(hit.published or ""))  # "3 May 2024" from 嫦娥六号于5月3日… of an article of 2024
    best = (0.0, 0, 0)
    for (start, end), sim in zip(windows, sims.tolist()):
        score = min(1.0, max(0.0, (float(sim) - SIM_FLOOR) / SIM_SPAN))
        have = set(numbers(text[start:end])) | dated
        if any(n not in have for n in wanted):
            score *= MISSING_NUMBER
        # the shorter window wins a tie: one sentence is the tighter quote
        if score > best[0] + 1e-9:
            best = (score, start, end)
    return best


def anchor_support(words: str, hit: Hit, question: str = "") -> tuple[float, int, int]:
    """(support 0..1, start, end) for the find step's few answer words in another language than their passage:
    the share of their anchors (numbers, and names written as the passage writes them: capitalised words in a
    passage of Latin script, character pairs in a Chinese or Japanese one) that a window of one or two sentences
    holds, less when a number is missing; words with no anchor have no support. The embedder cannot judge a few
    words: with USE, "Hans Müller" scored 1.0 for who runs the Feldberg observatory (Katrin Albrecht) with the
    question in front, and the right "6.5 metres" 0.26 for the Webb mirror."""
    text = hit.chunk.text
    asked_numbers = set(numbers(question))
    wanted = [n for n in dict.fromkeys(numbers(words)) if n not in asked_numbers]
    if script_language(text) in ("zh", "ja", "ko"):
        names = set(split_bigrams(words)[0])
    else:
        names = {_fold(w) for m in _NAME.finditer(words) if m.group()[0].isupper() for w in content_words(m.group())}
    names -= {_fold(w) for w in content_words(question)}
    if not wanted and not names:
        return 0.0, 0, 0
    dated = set(numbers(hit.published or ""))
    best = (0.0, 0, 0)
    for start, end in _windows(text):
        have_numbers = set(numbers(text[start:end])) | dated
        have_words = {_fold(w) for w in content_words(text[start:end])}
        found = sum(n in have_numbers for n in wanted) + sum(w in have_words for w in names)
        score = found / (len(wanted) + len(names))
        if any(n not in have_numbers for n in wanted):
            score *= MISSING_NUMBER
        if score > best[0] + 1e-9:  # the shorter window wins a tie
            best = (score, start, end)
    return best


def _windows(text: str) -> list[tuple[int, int]]:
    """Windows of one and of two sentences, none holding a sentence that gives orders."""
    spans = [(s, e) for s, e in split_sentences(text) if not is_instruction(text[s:e])] or [(0, len(text))]
    return spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]


def _fold(word: str) -> str:
    """The word without accents ("décemb" → "decemb"), as names are often written across languages."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch))


def foreign(question: str, passages: list[tuple[int, str]], embedder: Embedder | None) -> set[int]:
    """Numbers of the passages written in another language than the question, when the embedder can compare
    across languages (else none: an English-only model's cosines across languages mean nothing)."""
    if not is_multilingual(embedder) or not question:
        return set()
    asked = question_language(question)
    return {number for number, text in passages if text_language(text) != asked}
