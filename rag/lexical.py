"""The lexical side of an index: what FTS5 sees of a text and a question, BM25 search, and term_df.

FTS5 scores every chunk that holds any query term, so a common word ("2021", "government") in a big index
costs tens of milliseconds per 100k chunks holding it. term_df (chunks holding each term, refreshed at
indexing) lets a search keep the rarest question words within a postings budget.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from .languages import foreign_stopwords
from .words import STOPWORDS

TOKENIZE = "porter unicode61 remove_diacritics 2"  # chunks_fts's tokenizer (builder.py's schema)

_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")


def fts_text(text: str) -> str:
    """Text as FTS5 should see it: CJK characters spaced apart, since they are written without spaces."""
    return _CJK.sub(r" \1 ", text)


def fts_terms(question: str) -> list[str]:
    """The question's content words, lower-cased, each once, in order."""
    seen: list[str] = []
    for w in re.findall(r"\w+", fts_text(question).lower()):
        if w not in STOPWORDS and w not in foreign_stopwords() and w not in seen and (
                len(w) > 1 or _CJK.match(w) or w.isdigit()):
            seen.append(w)
    return seen


def bm25_search(db: sqlite3.Connection, terms: Sequence[str], top_n: int,
                allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """(chunk rowid, BM25 score, higher is better) of the chunks holding any of terms, optionally only
    among `allowed` rowids."""
    match = " OR ".join(f'"{w}"' for w in terms)
    sql = "SELECT rowid, bm25(chunks_fts, 0.5, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
    args: list[Any] = [match]
    if allowed is not None:
        # One JSON parameter, not one per rowid (SQLite allows 32766), and `+rowid` so that FTS5 runs the
        # MATCH once and SQLite checks each hit against the list, not one MATCH per allowed rowid: with 300
        # allowed chunks of 200k holding a common word, 2.3 s that way, 35 ms this way.
        sql += " AND +rowid IN (SELECT value FROM json_each(?))"
        args.append(json.dumps([int(r) for r in allowed]))
    sql += " ORDER BY s LIMIT ?"
    args.append(top_n)
    return [(int(r), -float(s)) for r, s in db.execute(sql, args)]


def affordable_terms(terms: list[str], freq: dict[str, int], budget: int) -> list[str]:
    """The rarest terms whose document frequencies add up to at most budget (at least one term)."""
    if sum(freq.values()) <= budget:
        return terms
    kept: list[str] = []
    total = 0
    for term in sorted(terms, key=lambda t: freq[t]):
        if kept and total + freq[term] > budget:
            break
        kept.append(term)
        total += freq[term]
    return kept


def stemmer() -> sqlite3.Connection:
    """The same tokenizer in a throwaway in-memory table: tells how FTS5 stems each word."""
    scratch = sqlite3.connect(":memory:", check_same_thread=False)
    scratch.executescript(
        f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize='{TOKENIZE}');"
        "CREATE VIRTUAL TABLE words_vocab USING fts5vocab(words, instance);")
    return scratch


def term_frequencies(db: sqlite3.Connection, scratch: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each term (as FTS5's porter tokenizer stems it, in scratch: see stemmer());
    cheap b-tree lookups in term_df."""
    with scratch:
        scratch.execute("DELETE FROM words")
        scratch.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", enumerate(terms))
        stems: dict[str, str] = {terms[doc]: term for term, doc in scratch.execute("SELECT term, doc FROM words_vocab")}
    if not stems:
        return dict.fromkeys(terms, 0)
    found = dict(db.execute(f"SELECT term, df FROM term_df WHERE term IN ({','.join('?' * len(stems))})",
                            list(stems.values())))
    return {word: int(found.get(stems.get(word, ""), 0)) for word in terms}


def count_terms(db: sqlite3.Connection) -> None:
    """Refresh term_df (chunks holding each indexed term) from FTS5. fts5vocab counts by walking the
    postings, ~4 ms per common term at 1M chunks: too slow per query, ~3 s per indexing run at 1M."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")
    db.execute("DELETE FROM term_df")
    db.execute("INSERT INTO term_df SELECT term, doc FROM temp.chunks_vocab")
