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

import math
import re
import unicodedata
from functools import lru_cache

from .dates import WORLD_MONTH_RE, is_calendar_word, iso_date, month_number
from .embed import Embedder, is_multilingual
from .guard import is_instruction
from .languages import question_language, script_language
from .text import content_words, split_bigrams, split_sentences
from .types import Hit

SIM_FLOOR = 0.30  # cosine at which a cross-language claim has no support
SIM_SPAN = 0.20  # cosine above the floor at which it has full support
MISSING_NUMBER = 0.4  # a claim whose number is not in the window keeps this share of its score: below min_support
_NAME = re.compile(r"[^\W\d_][\w'’-]*")


@lru_cache(maxsize=4096)
def text_language(text: str) -> str:
    """The language of a passage: its script for Chinese, Japanese and Korean, else py3langid."""
    return script_language(text) or question_language(text[:1000])


# Words that multiply the number before them: "9,5 Millionen" is 9500000 and so is "950万". A unit that reads
# like one is left out ("3千米" is 3 km, not 3000 m).
_MULTIPLIERS = {"万": 10_000, "萬": 10_000, "亿": 100_000_000, "億": 100_000_000, "thousand": 1e3, "thousands": 1e3,
                "tausend": 1e3, "tsd": 1e3, "mil": 1e3, "mille": 1e3, "million": 1e6, "millions": 1e6, "millionen": 1e6,
                "mio": 1e6, "mill": 1e6, "mln": 1e6, "m€": 1e6, "millón": 1e6, "millones": 1e6, "billion": 1e9,
                "billions": 1e9, "bn": 1e9, "milliard": 1e9, "milliards": 1e9, "milliarde": 1e9, "milliarden": 1e9,
                "mrd": 1e9, "mds": 1e9, "md€": 1e9, "millardos": 1e9}
_CJK_MULTIPLIER = "[万萬亿億]"
_LATIN_MULTIPLIER = "|".join(sorted((w for w in _MULTIPLIERS if not re.fullmatch(_CJK_MULTIPLIER, w)), key=len,
                                    reverse=True))
_MULTIPLIER = rf"(?:{_CJK_MULTIPLIER}|(?:{_LATIN_MULTIPLIER})(?![^\W\d_])\.?)"
_NUMBER_UNIT = re.compile(rf"(\d+(?:[.,]\d+)*)((?:\s*{_MULTIPLIER})*)", re.I)
_MULTIPLIER_WORD = re.compile(rf"{_CJK_MULTIPLIER}|{_LATIN_MULTIPLIER}", re.I)
# a month's name beside a day or year: "18 de noviembre", "18. November", "Nov. 18", "mars 2024" (not "10,000 march")
_DATED_MONTH = re.compile(rf"(?<![\d.,])\d{{1,2}}\.?\s+(?:de\s+)?({WORLD_MONTH_RE})(?![^\W\d_])"
                          rf"|(?<![^\W\d_])({WORLD_MONTH_RE})\.?\s+(?:\d{{1,2}}(?![\d.,]?\d)|(?:19|20)\d\d(?!\d))",
                          re.I)
# small numbers written as words, as articles write them ("a six-day blockage", "sechs Tage", "ocho minutos")
_NUMBER_WORDS = {word: i for words in ("two three four five six seven eight nine ten eleven twelve",
                                       "deux trois quatre cinq six sept huit neuf dix onze douze",
                                       "zwei drei vier fünf sechs sieben acht neun zehn elf zwölf",
                                       "dos tres cuatro cinco seis siete ocho nueve diez once doce")
                 for i, word in enumerate(words.split(), start=2)}
_NUMBER_WORD = re.compile(rf"(?<![^\W\d_])({'|'.join(_NUMBER_WORDS)})(?![^\W\d_])", re.I)


def numbers(text: str, *, claim: bool = False) -> list[str]:
    """The numbers a text states, so that they can be matched across languages and ways of writing them:
    thousands separators dropped ("1,935.3", "2 000", "52.000"), decimal commas read as points ("2,8" → "2.8"),
    an amount with a multiplier word as its value too ("9,5 Millionen" → 9.5 and 9500000, "180万" → 180 and
    1800000), and a month named beside a day or year as its number ("18 de noviembre" → 18 and 11).

    claim: the numbers a claim (or the found words) asserts: an amount with a multiplier counts as its value
    alone ("846,000" is not "846 millions"). Else, for a passage, its small numbers written as words count too
    ("six-day" → 6): there they can only add a match."""
    out = []
    text = re.sub(r"(?<=\d)[ \u00a0\u202f](?=\d{3}(?!\d))", "", text)
    for match in _NUMBER_UNIT.finditer(text):
        n = match.group(1)
        n = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", n) if re.search(r"[,.]\d{3}\b", n) else n
        n = n.replace(",", ".")
        scale = math.prod(_MULTIPLIERS[w.lower()] for w in _MULTIPLIER_WORD.findall(match.group(2)))
        if scale == 1 or not claim:
            out.append(n)
        if scale != 1:
            out.append(_plain(round(float(n) * scale, 3)))
    out.extend(str(month_number(m.group(1) or m.group(2))) for m in _DATED_MONTH.finditer(text))
    if not claim:
        out.extend(str(_NUMBER_WORDS[m.group(1).lower()]) for m in _NUMBER_WORD.finditer(text))
    return out


def without_amounts(text: str) -> str:
    """The text with its numbers and their multiplier words taken out ("$12.6 million" → "$")."""
    return _NUMBER_UNIT.sub(" ", text)


def _plain(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def cross_support(claim: str, hit: Hit, embedder: Embedder, question: str = "") -> tuple[float, int, int]:
    """(support 0..1, start, end) of the window of one or two sentences of the chunk closest in meaning to the
    claim; halved when a number of the claim is not in the window (numbers the question states already, as in
    "Chang'e-6", which the passage writes 嫦娥六号, are not asked for). Sentences giving orders are never evidence."""
    text = hit.chunk.text
    windows = _windows(text)
    sims = embedder.embed_documents([text[s:e] for s, e in windows]) @ embedder.embed_query(claim)
    asked = set(numbers(question, claim=True))
    wanted = [n for n in numbers(claim, claim=True) if n not in asked]
    dated = _dated(hit)  # "3 May 2024" from 嫦娥六号于5月3日… of an article of 2024
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
    asked_numbers = set(numbers(question, claim=True))
    wanted = [n for n in dict.fromkeys(numbers(words, claim=True)) if n not in asked_numbers]
    if script_language(text) in ("zh", "ja", "ko"):
        names = set(split_bigrams(words)[0])
    else:
        names = {_fold(w) for m in _NAME.finditer(words) if m.group()[0].isupper()
                 and not (is_calendar_word(m.group()) or month_number(m.group()))
                 for w in content_words(m.group())}
    names -= {_fold(w) for w in content_words(question)}
    if not wanted and not names:
        return 0.0, 0, 0
    dated = _dated(hit)
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


def _dated(hit: Hit) -> set[str]:
    """The year, month and day of the article's date, as a claim writes them ("5", not "05")."""
    day = iso_date(hit.published)
    return {str(day.year), str(day.month), str(day.day)} if day else set()


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
