"""Hand-written dates and sentence spans against maintained libraries, on real corpora.

Dates: rag.dates.parse_date (what an article without metadata gets as its publication date: the first date in
its first 600 characters) against dateparser.search.search_dates and dateutil.parser.parse(fuzzy=True), on
the same 600 characters: how many articles get the same date, a different one, or none; and the time taken.
Sentences: rag.text.split_sentences against pysbd and syntok: agreement of the sentence ends (character
offsets) and characters per second. The libraries split each line alone, since split_sentences also ends a
sentence at most line breaks (headings, datelines), which the libraries would join to the next line.

Measured (dateparser 1.5.0 with absolute dates only, python-dateutil 4.0.0, pysbd 0.3.4, syntok 1.4.4; 2 busy cores):
  dates, same / different / only ours / only theirs:  sample (14): dateparser 14/0/0/0, dateutil 8/5/1/0;
  rgb_en (968 snippets, 677 dated by parse_date): dateparser 673/2/2/9, dateutil 266/8/403/63;
  rtqa_dev (826): dateparser 826/0/0/0, dateutil 771/55/0/0. dateparser took 41-300 ms an article, parse_date
  0.1 ms. Of dateparser's differences on rgb_en, both "different" are its misreadings ("Sun 7 Jul 2013 12.41
  EDT" → 12 July) and its 9 extras are dates in the text (US "10/27/2017", "August 2014" read as the 1st);
  dateutil's fuzzy parse joins unrelated numbers ("2020 By the Markets Desk · September 18, 2024" → 2020-01-01).
  sentence ends shared with split_sentences (share of ours / of theirs), speed (ours 1.1-3.3 M chars/s):
  pysbd 100/98.2%, 97.2/95.4%, 94.4/98.0% (sample, rgb_en, rtqa_dev) at 0.02-0.12 M chars/s; syntok 95.6/99.6%,
  97.5/94.0%, 98.8/97.8% at 0.18-0.21 M chars/s. Most of their extra cuts fall after abbreviations ("1 p.m. |
  ET", "Rep. | Devin Nunes", "Gov. | Andy Beshear"); syntok does not cut Chinese at 。. So rag keeps its own.

The libraries are not dependencies of rag; install them beside it, not into the project's environment:
    pip install --target /tmp/textlibs dateparser pysbd syntok python-dateutil
    PYTHONPATH=/tmp/textlibs .venv/bin/python bench/compare_text_libs.py CORPUS [CORPUS ...] [--show 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.dates import parse_date  # noqa: E402
from rag.ingest import load_articles  # noqa: E402
from rag.text import split_sentences  # noqa: E402

Finder = Callable[[str], "str | None"]


def by_dateparser() -> Finder:
    from dateparser.search import search_dates

    # the languages parse_date knows; without them dateparser tries every language it has, ~0.8 s an article
    # absolute dates only: a publication date is never "a year late" or "two months after"
    settings = {"REQUIRE_PARTS": ["day", "month", "year"], "RETURN_AS_TIMEZONE_AWARE": False,
                "PARSERS": ["timestamp", "custom-formats", "absolute-time"]}

    def find(text: str) -> str | None:
        found = search_dates(text, languages=["en", "fr", "zh"], settings=settings)  # type: ignore[arg-type]
        return found[0][1].date().isoformat() if found else None
    return find


def by_dateutil() -> Finder:
    from dateutil import parser

    far = dt.datetime(1, 1, 1)

    def find(text: str) -> str | None:
        for line in text.split("\n"):  # fuzzy parsing of a whole article joins every number in it
            if not any(ch.isdigit() for ch in line):
                continue
            try:
                got = parser.parse(line, fuzzy=True, default=far)
            except (ValueError, OverflowError):
                continue
            if 1900 <= got.year <= 2099 and got.date() != far.date():
                return got.date().isoformat()
        return None
    return find


def compare_dates(texts: list[str], show: int) -> None:
    heads = [t[:600] for t in texts]
    started = time.perf_counter()
    ours = [parse_date(h) for h in heads]
    print(f"  parse_date: {sum(d is not None for d in ours)}/{len(heads)} dated, "
          f"{1000 * (time.perf_counter() - started) / len(heads):.3f} ms/article")
    for name, make in (("dateparser", by_dateparser), ("dateutil", by_dateutil)):
        try:
            find = make()
        except ImportError:
            print(f"  {name}: not installed")
            continue
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = [find(h) for h in heads]
        ms = 1000 * (time.perf_counter() - started) / len(heads)
        same = sum(a == b and a is not None for a, b in zip(ours, theirs))
        differ = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a and b and a != b]
        only_ours = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a and not b]
        only_theirs = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if b and not a]
        neither = sum(a is None and b is None for a, b in zip(ours, theirs))
        print(f"  {name}: same {same}, different {len(differ)}, only parse_date {len(only_ours)}, only {name} "
              f"{len(only_theirs)}, neither {neither}; {ms:.3f} ms/article")
        for label, rows in (("different", differ), (f"only {name}", only_theirs), ("only parse_date", only_ours)):
            for i, a, b in random.Random(0).sample(rows, min(show, len(rows))):
                line = " ".join(heads[i].split())[:150]
                print(f"    {label}: ours {a} / {name} {b} | {line}")


def ends_ours(text: str) -> set[int]:
    return {e for _, e in split_sentences(text)}


def _per_line(text: str, split: Callable[[str], list[int]]) -> set[int]:
    ends: set[int] = set()
    start = 0
    for line in text.split("\n"):
        if line.strip():
            ends.update(start + e for e in split(line))
        start += len(line) + 1
    return ends


def ends_pysbd() -> Callable[[str], set[int]]:
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return lambda text: _per_line(text, lambda line: [s.start + len(s.sent.rstrip()) for s in seg.segment(line)])


def ends_syntok() -> Callable[[str], set[int]]:
    from syntok import segmenter

    def split(line: str) -> list[int]:
        return [s[-1].offset + len(s[-1].value) for p in segmenter.analyze(line) for s in p if s]
    return lambda text: _per_line(text, split)


def compare_sentences(texts: list[str], show: int) -> None:
    total = sum(len(t) for t in texts)
    started = time.perf_counter()
    ours = [ends_ours(t) for t in texts]
    secs = time.perf_counter() - started
    print(f"  split_sentences: {sum(map(len, ours))} sentence ends, {total / secs / 1e6:.2f} M chars/s")
    for name, make in (("pysbd", ends_pysbd), ("syntok", ends_syntok)):
        try:
            ends = make()
        except ImportError:
            print(f"  {name}: not installed")
            continue
        started = time.perf_counter()
        theirs = [ends(t) for t in texts]
        secs = time.perf_counter() - started
        both = sum(len(a & b) for a, b in zip(ours, theirs))
        n_ours, n_theirs = sum(map(len, ours)), sum(map(len, theirs))
        print(f"  {name}: {n_theirs} ends; {both} shared = {both / n_ours:.1%} of ours, {both / n_theirs:.1%} of "
              f"{name}'s; {total / secs / 1e6:.3f} M chars/s")
        rng = random.Random(0)
        for label, pick in (("ours only", lambda a, b: a - b), (f"{name} only", lambda a, b: b - a)):
            rows = [(i, e) for i, (a, b) in enumerate(zip(ours, theirs)) for e in sorted(pick(a, b))]
            for i, e in rng.sample(rows, min(show, len(rows))):
                context = texts[i][max(0, e - 60):e] + " ‖ " + texts[i][e:e + 40]
                print(f"    {label}: {' '.join(context.split())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpora", nargs="+", type=Path)
    parser.add_argument("--show", type=int, default=0, help="print this many disagreements of each kind")
    args = parser.parse_args()
    for corpus in args.corpora:
        articles, _ = load_articles(corpus)
        texts = [a.text for a in articles]
        print(f"{corpus}: {len(texts)} articles, {sum(map(len, texts)):,} characters")
        compare_dates(texts, args.show)
        compare_sentences(texts, args.show)


if __name__ == "__main__":
    main()
