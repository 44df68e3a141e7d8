"""Article → Chunks: whole sentences packed up to a token budget, with overlap, keeping char offsets."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .cjk import CJK_CHARS
from .types import Article, Chunk

TokenCounter = Callable[[Sequence[str]], list[int]]

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


def count_words(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free token count (words and punctuation marks), for tests and fallbacks."""
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


def chunk_article(article: Article, *, max_tokens: int = 200, overlap_tokens: int = 40,
                  count_tokens: TokenCounter = count_words) -> list[Chunk]:
    """Chunks of whole sentences, each at most max_tokens by count_tokens, with up to overlap_tokens shared."""
    text = article.text
    units = _units(text, max_tokens, count_tokens)
    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []  # (start, end, tokens)
    fresh = 0  # units in `current` not already emitted in a previous chunk

    def emit() -> None:
        start, end = current[0][0], current[-1][1]
        chunks.append(Chunk(id=f"{article.id}-{len(chunks):03d}", article_id=article.id,
                            text=text[start:end], start=start, end=end))

    for unit in units:
        if current and sum(u[2] for u in current) + unit[2] > max_tokens:
            emit()
            overlap: list[tuple[int, int, int]] = []
            for prev in reversed(current):
                if sum(u[2] for u in overlap) + prev[2] > overlap_tokens:
                    break
                overlap.insert(0, prev)
            while overlap and sum(u[2] for u in overlap) + unit[2] > max_tokens:
                overlap.pop(0)
            current, fresh = overlap, 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        emit()
    return chunks


def _units(text: str, max_tokens: int, count_tokens: TokenCounter) -> list[tuple[int, int, int]]:
    """Sentences with their token counts; a sentence over max_tokens is cut between words."""
    spans = split_sentences(text)
    counts = count_tokens([text[s:e] for s, e in spans]) if spans else []
    units: list[tuple[int, int, int]] = []
    for (start, end), tokens in zip(spans, counts):
        if tokens <= max_tokens:
            units.append((start, end, tokens))
        else:
            units.extend(_split_long(text, start, end, max_tokens, count_tokens))
    return units


def _split_long(text: str, start: int, end: int, max_tokens: int,
                count_tokens: TokenCounter) -> list[tuple[int, int, int]]:
    """Cut an over-long sentence into pieces of at most max_tokens, at white space where there is any."""
    pieces: list[tuple[int, int, int]] = []
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    # a "word" that alone is over the limit (unspaced Chinese, a URL) is cut into characters
    sizes = count_tokens([text[s:e] for s, e in words])
    words = [piece for (s, e), n in zip(words, sizes)
             for piece in ([(s, e)] if n <= max_tokens else [(i, i + 1) for i in range(s, e)])]
    i = 0
    while i < len(words):
        lo, hi = 1, len(words) - i
        # the longest run of words from i that fits, by binary search on the real token count
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count_tokens([text[words[i][0]:words[i + mid - 1][1]]])[0] <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        s, e = words[i][0], words[i + lo - 1][1]
        pieces.append((s, e, count_tokens([text[s:e]])[0]))
        i += lo
    return pieces
