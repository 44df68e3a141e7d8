"""What kind of answer a question wants (a date, a quantity, or names) and how well a passage offers it."""

from __future__ import annotations

import re

from .text import STOPWORDS, words_of

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_FULL_DATE = re.compile(rf"{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}|\d{{4}}-\d\d-\d\d"
                        r"|\d{4}年\d{1,2}月", re.I)
_DATELINE = re.compile(rf"^\s*(?:{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|\d{{4}}-\d\d-\d\d)\s*(?:\.\.\.|[-—:·])?\s*", re.I)
_QUANTITY_Q = re.compile(r"^(?:how (?:much|many|long|far|old|big|tall)|what (?:is|was|were|are) .*\b(?:revenue|price|"
                         r"cost|number|population|score|rate|amount|value|capitali[sz]ation|percentage|age)\b)", re.I)
_DATE_Q = re.compile(r"^(?:when\b|what (?:date|day|year|month)\b|on what date|in (?:what|which) year)", re.I)


class AnswerSignals:
    """What rescoring asks of every candidate passage about one question, with the question's side worked
    out once: its numbers, its words, and the kind of answer it wants (a date, a quantity, or names)."""

    def __init__(self, question: str) -> None:
        question = question.strip()
        words = words_of(question)
        self.numbers = [w for w in words if any(ch.isdigit() for ch in w)]
        self.asked = set(words)
        self.kind = "date" if _DATE_Q.match(question) else "quantity" if _QUANTITY_Q.match(question) else "name"

    def number_match(self, passage: str) -> float:
        """Share of the question's numbers (years, quarters, amounts) that the passage also has."""
        if not self.numbers:
            return 0.0
        have = set(words_of(passage))
        return sum(n in have for n in self.numbers) / len(self.numbers)

    def answer_prior(self, passage: str) -> float:
        """0..1: does the passage hold something of the kind the question asks for (a date for "when", a
        quantity for "how much", otherwise names not already in the question)? A dateline does not count."""
        body = _DATELINE.sub("", passage, count=1)
        if self.kind == "date":
            return 1.0 if _FULL_DATE.search(body) else 0.0
        if self.kind == "quantity":
            return 1.0 if any(w not in self.asked for w in re.findall(r"\d[\d,.]*", body)) else 0.0
        names = {w.lower() for w in re.findall(r"\b[A-Z][\w'-]+", body)} - self.asked - STOPWORDS
        return min(1.0, len(names) / 3)
