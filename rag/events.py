"""Which of a passage's dates is the one asked about. "When did the ship arrive in Santos?" over "The ship left
Rotterdam on 3 June and arrived in Santos on 21 June" is 21 June, though a small model often copies the first date
it meets. The date asked about is the one date written in the same clause as the question's own verb, as the
passage writes it in the past ("arrived" for "arrive", "released" for "released"). Nothing is moved when that is
not plain:
- the question asks of the future ("When will…"), or asks no date;
- the passage does not write the question's verb in -ed (it says "touched down" for "land", "left" for "leave"),
  or the verb's clause holds no date or two ("On Tuesday the firm released its results for 2023");
- the question's verb has different dates in different clauses;
- the clause of the draft's date has no verb of its own: it shares the question's verb ("The film was released
  in Elbonia on 3 May and in Freedonia on 10 May": 10 May answers "When was it released in Freedonia?").
What it cannot see: a verb of the question's used of another thing than the one asked about ("Pellam Motors
started production in 2019 and began deliveries on 5 June 2020" moves 5 June 2020 to 2019 for "When did Pellam
start deliveries?"). Counting the question's other words in each clause would stop that, but it stops more right
moves: "X was appointed minister in 2019 and resigned in 2023" names the office in the first clause only.
A year alone counts as a date only after "in", "since", "by", "from", "until" or "of" ("in 2019"), so an amount
("$2020", "2000 tonnes") or a time ("at 2000 GMT") is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .dates import EN_MONTHS, month_number
from .text import split_sentences

# A question asking for the date of a past event: "When did…", "When was…", "On what date…", "In which year…".
_ASKS_WHEN = re.compile(r"\bwhen\s+(?:did|was|were|has|have|had)\b|\b(?:what|which)\s+(?:date|day|year|month)\b",
                        re.I)
_FUTURE = re.compile(r"\b(?:will|shall|going to|due to|set to|expected to|scheduled|planned|upcoming|next)\b", re.I)
# capitalised ("may" is a verb); a full stop only after a short form ("Sept. 12"), not the one that ends a sentence
# ("May." ends a sentence: only months longer than their three-letter form have one)
_MONTH = (rf"(?:(?:{'|'.join(m.capitalize() for m in EN_MONTHS)})(?![a-z])"
          rf"|(?:{'|'.join([m[:3].capitalize() for m in EN_MONTHS if len(m) > 3] + ['Sept'])})(?![a-z])\.?)")
_YEAR = r"(?:19|20)\d\d(?![\d]|s\b|\s?[-–/]\s?\d)"  # not "1990s", nor a span or a season ("2019-23")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_AFTER = "".join(rf"(?<=\b{w} )|" for w in ("in", "In", "by", "of", "since", "Since", "from", "until"))[:-1]
_DATE = re.compile(rf"(?<![\w.,$€£¥₹])(?:{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?|{_MONTH}\s+{_DAY}(?![\d])"
                   rf"(?:,?\s+{_YEAR})?|{_MONTH}\s+{_YEAR}|(?:{_AFTER}){_YEAR})")
# past forms not in -ed, for telling whether a clause has a verb of its own (_own_verb)
_IRREGULAR = frozenset("""arose ate beat became began bent bet bit bled blew bore broke brought built burnt bought
caught chose clung came cost crept cut dealt did dove drew drank drove dug fed felt fell fled flew fought forbade
forgot forgave found froze gave got grew had heard held hid hit hung hurt kept knelt knew laid led leapt left lent
let lay lit lost made meant met paid put quit ran rang read rode rose said sat saw sang sank sent set shook shone
shot shut slept slid sold sought spent spoke split spread sprang stood stole struck stuck stung swam swept swore
swung taught tore thought threw told took understood went woke won wore wove wrote""".split())
# where one clause of a sentence ends and another begins: a comma before a space that is not a date's ("May 4,
# 2021"; a number's has none, "1,000"), a semicolon, a colon, a dash, and the words that start a clause
_CLAUSE = re.compile(r",(?=\s)(?!\s*(?:19|20)\d\d)|[;:—–]|\s(?=(?:and|but|while|whereas|after|before|who|which|"
                     r"although|though|then|when|since|until)\s)")


@dataclass(frozen=True)
class _Date:
    text: str
    day: tuple[int | None, int | None, int | None]  # year, month, day; None where it is not written


def asks_when(question: str) -> bool:
    """Does the question ask for the date of a past event ("When did…", "In which year…"), not a future one?"""
    return bool(_ASKS_WHEN.search(question)) and not _FUTURE.search(question)


def _parts(text: str) -> tuple[int | None, int | None, int | None] | None:
    """(year, month, day) of a written date ("21 June", "August 17, 2021", "2019"), None where not written; None
    for words that hold no month and no year."""
    year = next((int(y) for y in re.findall(rf"(?<![\d$€£¥₹]){_YEAR}", text)), None)
    month = next((month_number(w) for w in re.findall(_MONTH, text)), None)
    days = [int(d) for d in re.findall(r"(?<![\d$€£¥₹])(\d{1,2})(?:st|nd|rd|th)?(?!\d)", text)]
    day = days[0] if month is not None and days and 1 <= days[0] <= 31 else None
    return None if year is None and month is None else (year, month, day)


def _same(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    """Can two written dates be the same day: every part both write is equal?"""
    return all(x == y for x, y in zip(a, b) if x is not None and y is not None)


def _past_forms(question: str) -> set[str]:
    """The -ed forms of the question's lower-case words ("arrive" -> "arrived", "open" -> "opened", "ratify" ->
    "ratified", "plan" -> "planned"), and those words already in -ed ("released")."""
    forms: set[str] = set()
    for w in re.findall(r"\b[a-z]{3,}\b", question):
        if w.endswith("ed"):
            forms.add(w)
        elif w.endswith("e"):
            forms.add(w + "d")
        elif w.endswith("y"):
            forms |= {w[:-1] + "ied", w + "ed"}
        else:
            forms |= {w + "ed", w + w[-1] + "ed"}
    return forms


def _own_verb(words: set[str], verbs: set[str]) -> bool:
    """Does the clause hold a verb in the past other than the question's ("arrested", "left")?"""
    return any(w not in verbs and (w in _IRREGULAR or (len(w) > 4 and w.endswith("ed"))) for w in words)


def _clauses(sentence: str) -> list[str]:
    cuts = [0, *(m.start() for m in _CLAUSE.finditer(sentence)), len(sentence)]
    return [sentence[a:b] for a, b in zip(cuts, cuts[1:])]


def event_date(phrase: str, text: str, question: str) -> str | None:
    """The words of the date text gives the question's event, when the found phrase is another date, as the
    module's docstring says; None when nothing is to be moved."""
    if not asks_when(question) or (found := _parts(phrase)) is None:
        return None
    verbs = _past_forms(question)
    chosen: list[_Date] = []  # the event's date, in each clause that writes the question's verb
    verbless = False  # a clause writes the found date with no verb of its own
    for part in text.split(" … "):  # (the passage's sentences are shown joined by " … ")
        for start, end in split_sentences(part):
            for clause in _clauses(part[start:end]):
                dates = [_Date(m.group(0), d) for m in _DATE.finditer(clause) if (d := _parts(m.group(0)))]
                words = {re.sub(r"\W+$", "", w.lower()) for w in clause.split()}
                if any(_same(d.day, found) for d in dates) and not words & verbs and not _own_verb(words, verbs):
                    verbless = True
                if not words & verbs or not dates:
                    continue
                if any(not _same(d.day, dates[0].day) for d in dates[1:]):
                    return None  # two dates beside the verb: which is the event's is not plain
                chosen += dates
    if verbless or not chosen or any(not _same(d.day, chosen[0].day) for d in chosen[1:]):
        return None
    best = max(chosen, key=lambda d: sum(x is not None for x in d.day))  # the most fully written
    return None if _same(best.day, found) else best.text
