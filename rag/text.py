"""Words and sentences: the one place that says what a word, a stop word and a sentence are.

Retrieval's rescoring (words_of), the support check and context choice (content_words, stem) and chunking
(split_sentences, count_words) read text through these; the BM25 side reads it through FTS5's own tokenizer
(lexical.py), so that a question's terms are cut exactly as the indexed text was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

# Words that carry no topic: dropped from BM25 queries, rescoring and the support check.
STOPWORDS = frozenset(
    "a an and are as at be been by did do does for from had has have how i in is it its of on or that the their "
    "this to was were what when where which who whom whose why will with you your about into than then there "
    "these those they we he she his her them our can could would should may might also not no yes".split()
)
_STOP = STOPWORDS | {"being", "said", "says", "according", "much", "many"}  # not evidence of support either

# kana, CJK ideographs (with extension A and compatibility ideographs) and hangul: written without spaces, so to
# FTS5's unicode61 each character is a word of its own, and to the support check each pair of characters is one
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK = re.compile(f"([{CJK_CHARS}])")
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")

_WORD = re.compile(r"[\w']+")


def words_of(text: str) -> list[str]:
    """Lower-cased words, apostrophes kept and a possessive "'s" dropped ("Acme's" → "acme"); numbers whole."""
    return [w[:-2] if w.endswith("'s") else w for w in _WORD.findall(text.lower().replace("’", "'"))]


def stem(word: str) -> str:
    """A light stemmer: "hopes", "hoped", "hoping" → "hop"; then at most 6 letters ("capitalization")."""
    for suffix in ("ing", "ed", "es", "s", "e", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:6]


# A full stop between words, not inside a number ("5.9") or an abbreviation ("U.S."): a web address's parts
# ("blink182.com" → blink182, com: the band's name is a word of the passage) or two sentences a scrape ran together
# ("street.was").
_WORD_DOT = re.compile(r"(?<=\w\w)\.(?=[^\W\d_]{2})")


def content_words(text: str) -> list[str]:
    """Lower-cased, stemmed words minus stop words; numbers kept whole ("5.9", "$16.5", "58%"); CJK as character
    bigrams ("月球样品" → 月球 球样 样品); a web address in its parts ("blink182.com" → blink182, com)."""
    out, text = split_bigrams(text)  # Chinese/Japanese has no spaces: its words are character pairs
    text = _WORD_DOT.sub(" ", re.sub(r"'s\b", "", text.lower().replace("’", "'")))
    words = re.findall(r"[\w.$%]+", text)
    for w in words:
        w = w.strip(".")
        if w and w not in _STOP:
            out.append(w.strip("$%") if any(ch.isdigit() for ch in w) else stem(w))
    return out


@lru_cache(maxsize=1)
def foreign_stopwords() -> frozenset[str]:
    """Function words of French, German, Spanish, Portuguese and Italian (rag/data/stopwords.json), lower-cased
    with their accents ("où", "für"): dropped from BM25 queries beside STOPWORDS."""
    raw: dict[str, str] = json.loads(resources.files("rag").joinpath("data/stopwords.json").read_text("utf-8"))
    return frozenset(w for code, words in raw.items() if not code.startswith("_") for w in words.split())


# ---------------------------------------------------------------- Chinese and Japanese

def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


def without_cjk(text: str) -> str:
    return CJK_RUN.sub(" ", text)


def bigrams(run: str) -> list[str]:
    """The overlapping character pairs of a CJK run ("月球样品" → 月球 球样 样品); a lone character is kept."""
    return [run[i:i + 2] for i in range(len(run) - 1)] or [run]


def split_bigrams(text: str) -> tuple[list[str], str]:
    """(the character bigrams of the text's CJK runs, the text with those runs blanked out)."""
    grams = [g for run in CJK_RUN.findall(text) for g in bigrams(run)]
    return grams, CJK_RUN.sub(" ", text) if grams else text


# ---------------------------------------------------------------- sentences

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp gov gen col lt sgt rep sen no nos fig approx est dept univ "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun u.s u.k u.n e.g i.e a.m p.m".split()
)
# A sentence ends at . ! ? … (plus closing quotes/brackets) before white space and a capital, digit or quote,
# or right after CJK full stops (full-width or half-width), or after ! ? … written straight before a CJK character
# (Chinese text has no space after them).
_LATIN_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+[\"'“‘«(\[]?[\w¿¡])")
_CJK_END = re.compile(f"[。！？．｡]+[”’」』）]*|[!?…]+[”’」』）]*(?=[{CJK_CHARS}“‘「『（])")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of text; white space between them belongs to none."""
    cuts: set[int] = set()
    for match in _LATIN_END.finditer(text):
        end = match.end()
        if match.group().startswith(".") and _is_abbreviation(text, match.start()):
            continue
        nxt = re.match(r"\s+(\S)", text[end:])
        if nxt and nxt.group(1).islower():
            continue
        cuts.add(end)
    for match in _CJK_END.finditer(text):
        cuts.add(match.end())
    for match in re.finditer(r"\n", text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        line = text[line_start:match.start()].strip()
        # a line break ends a sentence after a heading-length line or a finished clause
        if not line or len(line) < 80 or line[-1] in ".!?:;。！？”\"'":
            cuts.add(match.start())
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in sorted(cuts) + [len(text)]:
        piece = text[start:cut]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece.rstrip())
            spans.append((start + lead, start + trail))
        start = cut
    return spans


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"([\w.]+)$", text[max(0, dot - 12):dot])
    if not word:
        return False
    token = word.group(1).lower().rstrip(".")
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


# Dotted initials only ("H.P.A."): bare capitals are too often other things ("AI", "AR-15", "CEO", "PM").
_SHORT_FORM = re.compile(r"\b(?:[A-Z]\.){2,}")
_LONG_FORM = re.compile(r"[A-Z][\w'’-]*(?:\s+(?:of|the|and|for)\s+[A-Z][\w'’-]*|\s+[A-Z][\w'’-]*)+")


def initials(text: str) -> str:
    """The first letters of the text's capitalised words, "the", "of" and "and" aside: "Bank of Elbonia" -> "BE"."""
    return "".join(w[0] for w in re.findall(r"[A-Z][\w'’-]*", text) if w.lower() not in ("the", "of", "and"))


def spelled_out(claim: str, text: str) -> set[str]:
    """Content words of the claim's names that the text writes as their dotted initials: "Harbour Port
    Authority" where the text says "H.P.A.". Articles and answers each pick one form."""
    short = {form.replace(".", "") for form in _SHORT_FORM.findall(text)}
    if not short:
        return set()
    found: set[str] = set()
    for name in _LONG_FORM.findall(claim):
        if initials(name) in short:
            found |= set(content_words(name))
    return found


def count_words(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free token count (words and punctuation marks), for tests and fallbacks."""
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


def estimate_tokens(text: str) -> int:
    """Tokens a model's vocabulary may cut text into, over-estimated, for servers that do not say: ~4 characters
    per token for Latin-script words, but one per digit or non-Latin letter, two per CJK character and four beyond
    the BMP (Qwen: 1,999 rare CJK characters are 3,796 tokens, 1,999 from CJK Extension B 6,489)."""
    weights = [1 if ch.isdigit() or 0x2FF < ord(ch) < 0x2E80 else 2 if ord(ch) <= 0xFFFF else 4
               for ch in text if ch.isdigit() or ord(ch) > 0x2FF]
    return max(1, (len(text) - len(weights)) // 4 + sum(weights))
