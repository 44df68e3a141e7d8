"""The lexical side of an index: what FTS5 sees of a text and a question, BM25 search, and term_df.

FTS5 scores every chunk that holds any query term, so a common word ("2021", "government") in a big index
costs tens of milliseconds per 100k chunks holding it. term_df (chunks holding each term, refreshed at
indexing) lets a search keep the rarest question words within a postings budget.

Chinese and Japanese, written without spaces between words, are also read through a second FTS5 table,
`chunks_fts_cjk`, with SQLite's trigram tokenizer: a question that holds CJK is matched by the trigrams of its
CJK runs (no segmenter: a word is found wherever its characters are), its names and numbers in chunks_fts.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from .languages import without_foreign_stopwords
from .text import CJK, CJK_RUN, STOPWORDS

TOKENIZE = "porter unicode61 remove_diacritics 2"  # chunks_fts's tokenizer (builder.py's schema)
UNSTEMMED = "unicode61 remove_diacritics 2"  # the same without porter: the words a MATCH phrase stems again
TRIGRAM_TABLE = "chunks_fts_cjk"  # the Chinese and Japanese chunks again, by trigrams (index format 2)
TRIGRAM_SCHEMA = f"CREATE VIRTUAL TABLE IF NOT EXISTS {TRIGRAM_TABLE} USING fts5(title, body, tokenize='trigram');"
_LATIN = re.compile(r"[^\W\d_]{3,}|\d[\d.,]*\d|\d{3,}")  # words and numbers of 3+ characters, for trigram search


def fts_text(text: str) -> str:
    """Text as FTS5 should see it: CJK characters spaced apart, since they are written without spaces."""
    return CJK.sub(r" \1 ", text)


def fts_terms(question: str) -> list[str]:
    """The question's content words as FTS5 cuts the indexed text (unicode61, unstemmed: "İstanbul" →
    "istanbul", "C++" → "c"), each once, in order. A letter cut out of a longer word ("u" and "s" of "U.S.",
    the "s" of "Acme's") is left out; a word that is one letter to FTS5 ("C#", "X") is kept. From a question
    not in English, function words of French, German, Spanish, Portuguese and Italian go too, matched with
    their accents before FTS5 drops them ("für" goes, "Uber" stays): a German question's "die" and "wie" would
    rank every German article first."""
    pieces = fts_text(without_foreign_stopwords(question)).split()
    seen: list[str] = []
    for tokens in _tokenize(pieces):
        for w in tokens:
            if w not in STOPWORDS and w not in seen and (len(w) > 1 or len(tokens) == 1 or w.isdigit()):
                seen.append(w)
    return seen


def _tokenize(pieces: Sequence[str]) -> list[list[str]]:
    """The tokens of each piece of text, by FTS5's unicode61 tokenizer in the thread's scratch table."""
    scratch = _scratch()
    with scratch:
        scratch.execute("DELETE FROM plain")
        scratch.executemany("INSERT INTO plain(rowid, w) VALUES (?, ?)", enumerate(pieces))
        rows = scratch.execute("SELECT doc, term FROM plain_vocab ORDER BY doc, offset").fetchall()
    tokens: list[list[str]] = [[] for _ in pieces]
    for doc, term in rows:
        tokens[doc].append(term)
    return tokens


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


def trigram_terms(question: str) -> list[str]:
    """What a question asks of the trigram table, each once: the overlapping three-character pieces of its CJK
    runs, and its Latin words and numbers of three or more characters (FTS5's trigram index matches nothing
    shorter, so a run of one or two characters is left to the dense side)."""
    terms = [run[i:i + 3] for run in CJK_RUN.findall(question) for i in range(len(run) - 2)]
    terms.extend(w.lower() for w in _LATIN.findall(CJK_RUN.sub(" ", question)))
    return list(dict.fromkeys(t for t in terms if len(t) >= 3))


def bm25_search_cjk(db: sqlite3.Connection, question: str, top_n: int,
                    allowed: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """(chunk rowid, BM25 score, higher is better) of the CJK chunks sharing trigrams with the question."""
    terms = trigram_terms(question)
    if not terms:
        return []
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    sql = f"SELECT rowid, bm25({TRIGRAM_TABLE}, 0.5, 1.0) AS s FROM {TRIGRAM_TABLE} WHERE {TRIGRAM_TABLE} MATCH ?"
    args: list[Any] = [match]
    if allowed is not None:  # as in bm25_search: one JSON parameter, checked per hit
        sql += " AND +rowid IN (SELECT value FROM json_each(?))"
        args.append(json.dumps([int(r) for r in allowed]))
    sql += " ORDER BY s LIMIT ?"
    args.append(top_n)
    return [(int(r), -float(s)) for r, s in db.execute(sql, args)]


def merge_bm25(first: list[tuple[int, float]], second: list[tuple[int, float]],
               top_n: int) -> list[tuple[int, float]]:
    """Two BM25 lists of different tables as one: each score over its list's best, summed, best first."""
    scores: dict[int, float] = {}
    for hits in (first, second):
        top = max((s for _, s in hits), default=0.0) or 1.0
        for rowid, score in hits:
            scores[rowid] = scores.get(rowid, 0.0) + score / top
    return sorted(scores.items(), key=lambda item: -item[1])[:top_n]


def affordable_terms(terms: list[str], freq: dict[str, int], budget: int) -> list[str]:
    """The rarest terms whose document frequencies add up to at most budget; none when even the rarest is
    in more chunks than that."""
    if sum(freq.values()) <= budget:
        return terms
    kept: list[str] = []
    total = 0
    for term in sorted(terms, key=lambda t: freq[t]):
        if total + freq[term] > budget:
            break
        kept.append(term)
        total += freq[term]
    return kept


_local = threading.local()


def _scratch() -> sqlite3.Connection:
    """This thread's in-memory tables with the index's tokenizer, porter-stemmed (words) and not (plain): they
    tell how FTS5 cuts and stems a question's words. One per thread, since a connection is not shared safely."""
    scratch: sqlite3.Connection | None = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = sqlite3.connect(":memory:")
        scratch.executescript(
            f"CREATE VIRTUAL TABLE words USING fts5(w, tokenize='{TOKENIZE}');"
            "CREATE VIRTUAL TABLE words_vocab USING fts5vocab(words, instance);"
            f"CREATE VIRTUAL TABLE plain USING fts5(w, tokenize='{UNSTEMMED}');"
            "CREATE VIRTUAL TABLE plain_vocab USING fts5vocab(plain, instance);")
    return scratch


def term_frequencies(db: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many chunks hold each term (as FTS5's porter tokenizer stems it); cheap b-tree lookups in term_df."""
    scratch = _scratch()
    with scratch:
        scratch.execute("DELETE FROM words")
        scratch.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", enumerate(terms))
        stems: dict[str, str] = {terms[doc]: term for term, doc in scratch.execute("SELECT term, doc FROM words_vocab")}
    if not stems:
        return dict.fromkeys(terms, 0)
    found = dict(db.execute(f"SELECT term, df FROM term_df WHERE term IN ({','.join('?' * len(stems))})",
                            list(stems.values())))
    return {word: int(found.get(stems.get(word, ""), 0)) for word in terms}


CHANGED_TABLES = ("added", "removed")  # temp FTS5 tables of the chunks one build adds and removes


def track_changes(db: sqlite3.Connection) -> None:
    """Temp FTS5 tables, tokenized as chunks_fts is, that receive what a build adds to and removes from it, so
    that term_df is brought up to date from the changed chunks alone (update_terms)."""
    for name in CHANGED_TABLES:
        db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name}_fts USING fts5(title, body, content='', "
                   f"detail=none, tokenize='{TOKENIZE}')")  # terms only: ~1.5 KB a chunk in the temp file
        db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{name}_vocab USING fts5vocab(temp, {name}_fts, row)")


def update_terms(db: sqlite3.Connection) -> None:
    """term_df plus the chunks added, minus those removed (the rows track_changes' tables received): work in
    proportion to the change, where count_terms walks the whole index. A chunk added and removed in one build
    counts in both and cancels out."""
    db.execute("INSERT INTO term_df(term, df) SELECT term, doc FROM temp.added_vocab WHERE true "
               "ON CONFLICT(term) DO UPDATE SET df = df + excluded.df")
    db.execute("UPDATE term_df SET df = df - (SELECT doc FROM temp.removed_vocab r WHERE r.term = term_df.term) "
               "WHERE term IN (SELECT term FROM temp.removed_vocab)")
    db.execute("DELETE FROM term_df WHERE term IN (SELECT term FROM temp.removed_vocab) AND df <= 0")


def count_terms(db: sqlite3.Connection) -> None:
    """Refresh term_df (chunks holding each indexed term) from FTS5. fts5vocab counts by walking the
    postings, ~4 ms per common term at 1M chunks: too slow per query, ~3 s per indexing run at 1M."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")
    db.execute("DELETE FROM term_df")
    db.execute("INSERT INTO term_df SELECT term, doc FROM temp.chunks_vocab")
