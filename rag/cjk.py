"""Chinese and Japanese text, which is written without spaces between words: what BM25 and the support check
see of it.

BM25 reads CJK chunks through a second FTS5 table, `chunks_fts_cjk`, with SQLite's trigram tokenizer, and a
question that holds CJK is matched by the trigrams of its CJK runs (no segmenter: a word is found wherever its
characters are). The support check compares character bigrams, the usual unit of Chinese retrieval.
Measured in the README ("Languages"): Chinese questions in lexical-only mode over tests/data/crosslingual.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

# Han (with extension A and compatibility ideographs), kana, Hangul syllables
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
TRIGRAM_TABLE = "chunks_fts_cjk"
TRIGRAM_SCHEMA = f"CREATE VIRTUAL TABLE IF NOT EXISTS {TRIGRAM_TABLE} USING fts5(title, body, tokenize='trigram');"
_LATIN = re.compile(r"[^\W\d_]{3,}|\d[\d.,]*\d|\d{3,}")  # words and numbers of 3+ characters, for trigram search


def has_cjk(text: str) -> bool:
    return CJK_RUN.search(text) is not None


def bigrams(run: str) -> list[str]:
    """The overlapping character pairs of a CJK run ("月球样品" → 月球 球样 样品); a lone character is kept."""
    return [run[i:i + 2] for i in range(len(run) - 1)] or [run]


def split_bigrams(text: str) -> tuple[list[str], str]:
    """(the character bigrams of the text's CJK runs, the text with those runs blanked out)."""
    grams = [g for run in CJK_RUN.findall(text) for g in bigrams(run)]
    return grams, CJK_RUN.sub(" ", text) if grams else text


def trigram_terms(question: str) -> list[str]:
    """What a question asks of the trigram table, each once: the overlapping three-character pieces of its CJK
    runs, and its Latin words and numbers of three or more characters (FTS5's trigram index matches nothing
    shorter, so a run of one or two characters is left to the dense side)."""
    terms: list[str] = []
    for run in CJK_RUN.findall(question):
        pieces = [run[i:i + 3] for i in range(len(run) - 2)]
        terms.extend(pieces)
    terms.extend(w.lower() for w in _LATIN.findall(CJK_RUN.sub(" ", question)))
    return list(dict.fromkeys(t for t in terms if len(t) >= 3))


def without_cjk(text: str) -> str:
    return CJK_RUN.sub(" ", text)


def merge(first: list[tuple[int, float]], second: list[tuple[int, float]], top_n: int) -> list[tuple[int, float]]:
    """Two BM25 lists of different tables as one: each score over its list's best, summed, best first."""
    scores: dict[int, float] = {}
    for hits in (first, second):
        top = max((s for _, s in hits), default=0.0) or 1.0
        for rowid, score in hits:
            scores[rowid] = scores.get(rowid, 0.0) + score / top
    return sorted(scores.items(), key=lambda item: -item[1])[:top_n]


def bm25_search_cjk(db: sqlite3.Connection, question: str, top_n: int,
                    allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """(chunk rowid, BM25 score, higher is better) of the CJK chunks sharing trigrams with the question."""
    terms = trigram_terms(question)
    if not terms:
        return []
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    sql = f"SELECT rowid, bm25({TRIGRAM_TABLE}, 0.5, 1.0) AS s FROM {TRIGRAM_TABLE} WHERE {TRIGRAM_TABLE} MATCH ?"
    args: list[Any] = [match]
    if allowed is not None:  # as in lexical.bm25_search: one JSON parameter, checked per hit
        sql += " AND +rowid IN (SELECT value FROM json_each(?))"
        args.append(json.dumps([int(r) for r in allowed]))
    sql += " ORDER BY s LIMIT ?"
    args.append(top_n)
    return [(int(r), -float(s)) for r, s in db.execute(sql, args)]
