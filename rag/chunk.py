"""Article → Chunks: whole sentences packed up to a token budget, with overlap, keeping char offsets."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .text import count_words, split_sentences
from .types import Article, Chunk

TokenCounter = Callable[[Sequence[str]], list[int]]

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
