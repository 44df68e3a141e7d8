"""What kind of answer a question wants (a date, a quantity, or names) and how well a passage offers it."""

from __future__ import annotations

import re

from .dates import has_full_date, strip_dateline
from .text import STOPWORDS, words_of

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
        body = strip_dateline(passage)
        if self.kind == "date":
            return 1.0 if has_full_date(body) else 0.0
        if self.kind == "quantity":
            return 1.0 if any(w not in self.asked for w in re.findall(r"\d[\d,.]*", body)) else 0.0
        names = {w.lower() for w in re.findall(r"\b[A-Z][\w'-]+", body)} - self.asked - STOPWORDS
        return min(1.0, len(names) / 3)
