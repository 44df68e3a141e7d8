"""Dates: an article's publication date, dates and datelines in its text, the as-of date of a question, what
time a question asks about, and relative dates in articles.

News text says "on Tuesday", "yesterday", "last week"; a question says "this week" or "recently". Both mean
something only against a date: the article's publication date for the first, the as-of date for the second.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import QueryError

Date = dt.date

# ---------------------------------------------------------------- month names

EN_MONTHS = "january february march april may june july august september october november december".split()
_FR_MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()
_DE_MONTHS = "januar februar märz april mai juni juli august september oktober november dezember".split()
_ES_MONTHS = "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split()

# ---------------------------------------------------------------- as-of


_ISO_DAY = re.compile(r"\d{4}-\d\d-\d\d")


def given_day(value: object, what: str, error: type[Exception] = QueryError) -> str | None:
    """A day a user gave (a filter's bound, an as-of date, a pasted article's date) as "YYYY-MM-DD", or None when
    blank. Any other form (2024/05/31, 20240531, 31.05.2024) and a day that does not exist (2023-02-30) is
    `error`, one line naming `what` and the form to use: compared as text, such a date filtered wrongly."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise error(f"{what} {text!r} is not a date like 2024-05-31; give YYYY-MM-DD") from None


def parse_as_of(value: str | Date | None) -> Date:
    """The as-of date: a date, "YYYY-MM-DD", or None (or blank) for today."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    day = given_day(value, "as-of date")
    return dt.date.fromisoformat(day) if day else dt.date.today()


def iso_date(value: str | None) -> Date | None:
    """An article's "YYYY-MM-DD" (or longer ISO) date, or None when it has none or it is malformed."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


# ---------------------------------------------------------------- dates written in articles

_MONTHS = {m: i + 1 for i, m in enumerate(EN_MONTHS)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS.update({"sept": 9})
_ALL_MONTHS = {**_MONTHS, **{m: i + 1 for i, m in enumerate(_FR_MONTHS)}}
_MONTH_RE = "|".join(sorted(_ALL_MONTHS, key=len, reverse=True))
# months of the languages the answers are checked across (crosscheck.numbers); dates are parsed in English and French
_FR_SHORT_MONTHS = {"janv": 1, "févr": 2, "avr": 4, "juil": 7, "déc": 12}
_WORLD_MONTHS = {**_ALL_MONTHS, **{m: i + 1 for months in (_DE_MONTHS, _ES_MONTHS) for i, m in enumerate(months)},
                 **_FR_SHORT_MONTHS, "okt": 10, "dez": 12, "ene": 1, "dic": 12}
WORLD_MONTH_RE = "|".join(sorted(_WORLD_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = (
    (re.compile(r"\b((?:19|20)\d\d)-(\d{1,2})-(\d{1,2})"), ("y", "m", "d")),
    (re.compile(r"\b((?:19|20)\d\d)/(\d{1,2})/(\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"), ("y", "m", "d")),
    (re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+((?:19|20)\d\d)\b", re.I), ("M", "d", "y")),
    (re.compile(rf"\b(\d{{1,2}})(?:er|st|nd|rd|th)?\s+({_MONTH_RE})\.?,?\s+((?:19|20)\d\d)\b", re.I), ("d", "M", "y")),
)


def parse_date(text: str) -> str | None:
    """The first date in text as "YYYY-MM-DD", or None."""
    best: tuple[int, str] | None = None
    for pattern, order in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            if best is not None and match.start() >= best[0]:
                break
            parts = dict(zip(order, match.groups()))
            try:
                month = int(parts["m"]) if "m" in parts else _ALL_MONTHS[parts["M"].lower().rstrip(".")]
                date = dt.date(int(parts["y"]), month, int(parts["d"]))  # not 2023-02-30, nor month 13
            except (KeyError, ValueError):
                continue
            best = (match.start(), date.isoformat())
            break
    return best[1] if best else None


# an English month, whole or cut short ("Jan", "Sept."), in the dates that rescoring and datelines look for
_MONTH_WORD = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_FULL_DATE = re.compile(rf"{_MONTH_WORD}\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH_WORD}\s+\d{{4}}|\d{{4}}-\d\d-\d\d"
                        r"|\d{4}年\d{1,2}月", re.I)
_DATELINE = re.compile(rf"^\s*(?:{_MONTH_WORD}\s+\d{{1,2}},?\s+\d{{4}}|\d{{4}}-\d\d-\d\d)\s*(?:\.\.\.|[-—:·])?\s*",
                       re.I)
# "Jan 28, 2020 ...", "2024年6月28日": the year is bounded by non-digits, not \b, since 年 is a word character
_DATE_LINE = re.compile(r"[^.!?。]{0,40}(?<!\d)\d{4}(?!\d)[^.!?。]{0,15}(?:\s*(?:\.\.\.|…))?|.{0,2}", re.S)


def has_full_date(text: str) -> bool:
    """Does text state a day or a month with its year ("May 15, 2012", "15 May 2012", "2012-05-15", "2012年5月")?"""
    return bool(_FULL_DATE.search(text))


def strip_dateline(text: str) -> str:
    """text without the date that opens it ("Nov 8, 2019 ... ", "2024-03-03 - "): a snippet's date, not its news."""
    return _DATELINE.sub("", text, count=1)


_DATE_WORDS = frozenset("am pm gmt utc et mon tue wed thu fri sat sun published updated 日".split())


def is_only_date(text: str) -> bool:
    """Does text say nothing but a full date ("August 10, 2022", "Mon, 3 Oct 2022 10:00"), as the title of a
    scraped page often does? "World Cup 2022 final" says more."""
    if not has_full_date(text):
        return False
    rest = re.findall(r"[^\W\d_]+", _FULL_DATE.sub(" ", text))
    return all(is_calendar_word(w) or w.lower() in _DATE_WORDS for w in rest)


def is_date_line(sentence: str) -> bool:
    """Is the sentence only a date line ("Published: 2024-05-06", "By the Markets Desk · September 18, 2024")?
    No answer is in these lines."""
    return bool(_DATE_LINE.fullmatch(sentence))


# ---------------------------------------------------------------- what time a question asks about

# Words that put a question in the present (relative to the as-of date), in the sample corpus's languages.
# A general rule about time words: none of them names a topic.
_PRESENT = re.compile(
    r"\b(?:this (?:week|month|weekend|year|morning|season)|these days|recent(?:ly)?|lately|now|nowadays|"
    r"currently|current|latest|newest|so far|to date|today|tonight|yesterday|last (?:week|weekend|night)|"
    r"past (?:week|few days|days)|ongoing|upcoming|just (?:been|announced|named|won)|"
    r"what(?:'s|’s| is) new|any (?:new )?(?:news|updates?)|updates? on)\b"
    r"|\b(?:cette (?:semaine|année)|ce mois|récemment|dernièrement|actuel(?:le)?(?:ment)?|maintenant|"
    r"en ce moment|jusqu'à présent|aujourd'hui|hier|la semaine dernière|derni(?:er|ère)s?|quoi de neuf|"
    r"du nouveau)\b"
    r"|\b(?:neueste[nrs]?|neues|neuigkeiten|aktuelle[nrs]?|últim[oa]s|novedades)\b"
    r"|本周|这周|这个星期|最近|近日|近期|目前|现在|当前|如今|最新|迄今|至今|今天|昨天|上周|今年|新消息",
    re.I)
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_MONTH_NAMES = EN_MONTHS + _FR_MONTHS  # full names only: "may" alone is no date
_EXPLICIT_DAY = re.compile(
    r"\b(?:" + "|".join(_MONTH_NAMES) + r")\s+\d{1,2}\b|\b\d{1,2}(?:er)?\s+(?:" + "|".join(_MONTH_NAMES) + r")\b"
    r"|\d{4}-\d\d-\d\d|\d{1,2}月\d{1,2}日", re.I)


def without_present_words(question: str) -> str:
    """The question with its present-time words ("this week", "recently") blanked: what is left is its topic."""
    return _PRESENT.sub(" ", question)


def asks_about_present(question: str) -> bool:
    """Does the question ask about the time around its as-of date ("this week", "recently", "now")?"""
    return bool(_PRESENT.search(question))


def names_past_time(question: str, as_of: Date) -> bool:
    """Does the question pin itself to an explicit date or a year before the as-of year ("in 2019")?"""
    if _EXPLICIT_DAY.search(question):
        return True
    return any(int(y) < as_of.year for y in _YEAR.findall(question))


def wants_recent(question: str, as_of: Date) -> bool:
    """Recency helps this question: it speaks of the present and names no past date of its own."""
    return asks_about_present(question) and not names_past_time(question, as_of)


# ---------------------------------------------------------------- relative dates in article text

_WEEKDAYS = {name: i for i, name in enumerate("monday tuesday wednesday thursday friday saturday sunday".split())}
_WEEKDAYS.update({name: i for i, name in enumerate("lundi mardi mercredi jeudi vendredi samedi dimanche".split())})
_WEEKDAY_RE = "|".join(_WEEKDAYS)
_RELATIVE = re.compile(
    rf"\b(?P<on>(?:on|last|this|ce|le|dernier)\s+)?(?P<weekday>{_WEEKDAY_RE})"
    r"(?P<after>\s+(?:dernier|soir|matin|morning|afternoon|evening|night))?\b"
    r"|\b(?P<yesterday>yesterday|hier)\b|\b(?P<today>today|aujourd'hui)\b"
    r"|\b(?P<lastweek>last week|la semaine dernière)\b|\b(?P<earlier>earlier this month|plus tôt ce mois-ci)\b"
    r"|(?P<zh_yesterday>昨天|昨日)|(?P<zh_today>今天|今日)|(?P<zh_weekday>(?:周|星期)[一二三四五六日天])",
    re.I)


# a weekday's own date written beside it ("Tuesday, March 4", "Saturday evening, Oct.3", "mardi 4 mars",
# "samedi 3 oct."): resolved against the article's date the weekday alone would name another day (an article of
# winter on an opening in spring), so the written date is given its year instead. A number followed by a unit
# is a distance or an amount, not a day ("on Sunday, March 3 km of road").
_DAY_MONTH_RE = "|".join(sorted({**_ALL_MONTHS, **_FR_SHORT_MONTHS}, key=len, reverse=True))
_UNIT_AFTER = (r"(?!\s*(?:%|km|kilomet|kilomèt|miles?\b|mi\b|m\b|metres?|meters?|mètres?|kg|tons?|tonnes?"
               r"|per\s?cent|pour\s?cent))")
_DATE_AFTER = re.compile(rf",?\s*(?:the\s+)?(?:(?P<m1>{_DAY_MONTH_RE})\.?\s*(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?(?!\w)"
                         rf"{_UNIT_AFTER}|(?P<d2>\d{{1,2}})(?:st|nd|rd|th|er)?\s+(?:of\s+)?(?P<m2>{_DAY_MONTH_RE})\b\.?)"
                         r"(?P<year>,?\s*(?:19|20)\d\d(?!\d))?", re.I)


def _written_day(match: re.Match[str], weekday: int, published: Date) -> Date | None:
    """The day a weekday's written date names: of the years around the article's date, the nearest one in which
    that date falls on that weekday (a date that falls on it in none of them is left alone rather than guessed)."""
    month = month_number(match.group("m1") or match.group("m2"))
    assert month is not None  # _DAY_MONTH_RE holds only names month_number knows
    day_of_month = int(match.group("d1") or match.group("d2"))
    candidates = []
    for year in (published.year - 1, published.year, published.year + 1):
        try:
            day = dt.date(year, month, day_of_month)
        except ValueError:
            continue
        if day.weekday() == weekday:
            candidates.append(day)
    return min(candidates, key=lambda day: abs((day - published).days), default=None)


# A year or a day found alone, made the whole date the text writes around it: "2019" in "…opened in June 2019" is
# "June 2019", "March 4" in "…on March 4, 2021" is "March 4, 2021". A short model copies the fewest words, and a
# bare year answers "when?" less well than the date the article gives.
_MONTH_WORD_RE = rf"(?:{_DAY_MONTH_RE})\.?"
_ORDINAL = r"(?:st|nd|rd|th|er)?"
_BEFORE_YEAR = re.compile(rf"(?:(?<![\w.,])\d{{1,2}}{_ORDINAL}\s+(?:of\s+)?)?(?<!\w){_MONTH_WORD_RE}"
                          rf"(?:\s+\d{{1,2}}{_ORDINAL},?)?\s+$", re.I)
_DAY_OR_MONTH = re.compile(rf"{_MONTH_WORD_RE}(?:\s+\d{{1,2}}{_ORDINAL})?|\d{{1,2}}{_ORDINAL}\s+(?:of\s+)?"
                           rf"{_MONTH_WORD_RE}", re.I)
_YEAR_NEXT = re.compile(r",?[ \t]+(?:19|20)\d\d(?![\w.,]?\d)(?!\s?[-–/]\s?\d)")  # not a season ("2019-20")


def whole_date(phrase: str, before: str, after: str) -> str:
    """The phrase widened to the whole date around it in the text (before and after: the text each side of it),
    or the phrase unchanged: a bare year gets the month and day written before it ("June 2019", "May 4, 2019",
    "4 mai 2019"), a date of a day and a month, or a month alone, the year written after it on the same line.
    Not across a sentence's end ("…in March. 2019 saw…"), not a season ("2019-20"), not a name that ends in
    a month's name ("Brian May"), and only a day of 1 to 31."""
    if (re.fullmatch(r"(?:19|20)\d\d", phrase) and not re.match(r"\s?[-–/]\s?\d", after)
            and (match := _BEFORE_YEAR.search(before)) and _a_date(match.group(0))):
        return f"{' '.join(match.group(0).split())} {phrase}"
    if _DAY_OR_MONTH.fullmatch(phrase) and _a_date(phrase) and (year := _YEAR_NEXT.match(after)):
        return phrase + re.sub(r"\s+", " ", year.group(0))
    return phrase


def _a_date(date: str) -> bool:
    """Is this a date as its language writes it: an English month capitalised ("may" is a verb, "May" a month),
    a French one in lower case ("Mars" is the planet), a full month name with no full stop after it (one ends
    the sentence), and days of 1 to 31?"""
    word = next(w.rstrip(",") for w in date.split() if w[0].isalpha() and w.lower() != "of")
    if word.endswith(".") and word[:-1].lower() in EN_MONTHS + _FR_MONTHS:  # "March." ends a sentence; "Sept." not
        return False
    english = len(word.rstrip(".")) >= 3 and any(m.startswith(word.rstrip(".").lower()) for m in EN_MONTHS)
    if not (word[0].isupper() if english else word[0].islower()):
        return False
    return all(1 <= int(day) <= 31 for day in re.findall(r"\d+", date))


def is_calendar_word(word: str) -> bool:
    """A day or month name in English or French ("Tuesday", "mars"): a date's word, never part of a name beside it.
    (German and Spanish months are left out: "Mayo Clinic", "Julio Iglesias".)"""
    return word.lower() in _WEEKDAYS or word.lower() in _ALL_MONTHS


def month_number(word: str) -> int | None:
    """1-12 for a month's name in English, French, German or Spanish, or its abbreviation ("Sept.", "déc.")."""
    return _WORLD_MONTHS.get(word.lower().rstrip("."))


_ZH_WEEKDAYS = {ch: i for i, ch in enumerate("一二三四五六日")} | {"天": 6}


def resolve_relative(text: str, published: Date) -> list[tuple[int, int, str]]:
    """(start, end, resolved) for each relative date in text, against the article's publication date.

    "on Tuesday" in an article of Friday 14 June 2024 is the Tuesday before it: "11 June 2024". A
    weekday is the latest such day on or before publication (news reports the past), unless its own date is
    written beside it ("Tuesday, March 4"): then that date gets the year nearest the article's date in which it
    falls on that weekday ("4 March 2025"), and is left alone if there is none. "last week" and "earlier this
    month" resolve to a span, given as the week or the month.
    """
    found: list[tuple[int, int, str]] = []
    for m in _RELATIVE.finditer(text):
        day: Date | None = None
        label = ""
        written = _DATE_AFTER.match(text, m.end()) if m.group("weekday") else None
        if written:  # its date is written beside it: give that date its year (unless it has one), after the date
            day = None if written.group("year") else _written_day(written, _WEEKDAYS[m.group("weekday").lower()],
                                                                  published)
            if day is not None:
                found.append((m.start(), written.end(), format_day(day)))
            continue
        if m.group("weekday") or m.group("zh_weekday"):
            target = (_WEEKDAYS[m.group("weekday").lower()] if m.group("weekday")
                      else _ZH_WEEKDAYS[m.group("zh_weekday")[-1]])
            day = published - dt.timedelta(days=(published.weekday() - target) % 7)
        elif m.group("yesterday") or m.group("zh_yesterday"):
            day = published - dt.timedelta(days=1)
        elif m.group("today") or m.group("zh_today"):
            day = published
        elif m.group("lastweek"):
            monday = published - dt.timedelta(days=published.weekday() + 7)
            label = f"the week of {format_day(monday)}"
        elif m.group("earlier"):
            label = published.strftime("%B %Y")
        if day is not None:
            label = format_day(day)
        found.append((m.start(), m.end(), label))
    return found


def format_day(day: Date) -> str:
    """"23 August 2023": unambiguous in any locale, and how news text writes dates."""
    return f"{day.day} {day.strftime('%B %Y')}"


def annotate_relative(text: str, published: Date | None) -> str:
    """text with each relative date followed by what it resolves to: "on Tuesday (11 June 2024)"."""
    if published is None:
        return text
    out, last = [], 0
    for _start, end, label in resolve_relative(text, published):
        out.append(text[last:end] + f" ({label})")
        last = end
    return "".join(out) + text[last:]


def age_days(published: str | None, as_of: Date) -> int | None:
    """Days from publication to the as-of date (None when the article has no date)."""
    day = iso_date(published)
    return None if day is None else (as_of - day).days
