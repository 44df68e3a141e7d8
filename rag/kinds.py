"""What kind of answer a question asks for, where found words can be checked against it: a question asking what
something costs ("How much does a ticket cost?", "Combien a coûté le pont ?", "票价是多少？") is answered by an
amount of money, not by the number of seats the passage gives beside it.

Only money is checked. A "how many" answer always held a number in the stored runs, right or wrong, so a number
check would catch nothing; a price question answered with a count of something else is the one mistake of this
kind seen (an unanswerable ticket price answered with a ferry's seats and bicycle places).
"""

from __future__ import annotations

import re

from .crosscheck import numbers

# A question asks for an amount of money when it asks how much (in its language) about paying, or names a price.
# (Not "combien de", "wie viele", "cuántos": those ask how many.)
_HOW_MUCH = r"\bhow much\b|\bcombien\b(?!\s+d(?:e\b|'|’))|\bwie ?viel\b|\bcu[aá]nto\b|多少|幾|几"
_PAYING = (r"\b(?:cost(?:s|ed|ing)?|price[ds]?|pa(?:y|id|ys)|fined?|spen[dt]|fees?|fares?|salary|worth|"
           r"money|co[uû]t(?:e|é|ent|ait|er)?|prix|pay[ée]e?s?|payer|d[ée]pens[ée]e?s?|amende|"
           r"kost(?:et|en|ete|eten)|preis|bezahlt|zahl(?:t|en|te)|geb[uü]hr|strafe|"
           r"cuesta|cuestan|cost[oó]|precio|pag[oó]|pagar|multa|dinero)\b"
           r"|钱|錢|价格|價格|票价|票價|造价|造價|耗资|耗資|花费|花費|费用|費用|罚款|罰款|售价|售價|成本|投资|投資")
_NAMES_PRICE = r"\bwhat (?:is|was|are|were|does|did|do|will) [^?]*\b(?:cost|price|fare|fee)s?\b"
# A question about a change ("How much did the cost of living rise?") is answered by a share or a difference.
_CHANGE = re.compile(r"\b(?:ris(?:e|es|en)|rose|fall(?:s|en)?|fell|drop(?:s|ped)?|increased?|decreased?|grow|grew|"
                     r"climb(?:ed)?|jump(?:ed)?|surged?|plunged?|shr[ai]nk|cut|percent|share|rate|augment\w*|baiss\w*|"
                     r"hausse|stieg|steig\w*|sank|gesunken|aument\w*|baj[oó]|subi[oó])\b|上涨|下降|增长|减少|下跌|上升|百分",
                     re.I)
_ASKS = re.compile(rf"(?:{_HOW_MUCH}).*(?:{_PAYING})|(?:{_PAYING}).*(?:{_HOW_MUCH})|{_NAMES_PRICE}", re.I | re.S)

# An amount of money: a currency sign, code or name, in the languages of the sample corpus, or "free".
_MONEY = re.compile(
    r"[$€£¥₹₩₽元円圆块塊]|(?<![A-Za-z])(?:USD|EUR|GBP|CNY|RMB|JPY|INR|CHF|HKD|AUD|CAD|SGD)(?![A-Za-z])"
    r"|\b(?:dollars?|d[oó]lar(?:es)?|euros?|pounds?|sterling|pence|cents?|centimes?|yuan|renminbi|yen|rupees?|"
    r"francs?|pesos?|reais|kron(?:e|er|or|a)|won|rubles?|roubles?|lira|lire|shekels?|rand|dirhams?|riyals?|"
    r"free|gratuit(?:e|s|es)?|gratis|kostenlos|umsonst|gratuito|gratuita)\b|免费|免費", re.I)


_DIGITS = re.compile(r"\d+(?:[.,\s]\d+)*")


def asks_money(question: str) -> bool:
    """Does the question ask for an amount of money (a cost, price, fare, fine or payment)?"""
    return bool(_ASKS.search(question)) and not _CHANGE.search(question)


def names_money(text: str) -> bool:
    """Does the text name an amount of money: a currency's sign, code or name, or "free"?"""
    return bool(_MONEY.search(text))


def money_around(phrase: str, text: str, *, after: int = 24) -> bool:
    """Is there an amount of money in the passage text where the found words stand: the words themselves with what
    stands just before and after them ("72 million" then "pounds"), or, for words the passage does not hold as
    they are (another language, another way of writing the number), each place the passage states their number
    ("3,200,000 yuan" for "3,2 Millionen Euro")? A currency the words add and the passage lacks ("48 euros"
    where it says "48 Sitze") is not one."""
    spots = [(m.start(), m.end()) for m in re.finditer(re.escape(phrase.strip()), text)] if phrase.strip() else []
    if not spots:
        wanted = set(numbers(phrase, claim=True))
        spots = [(m.start(), m.end()) for m in _DIGITS.finditer(text)
                 if wanted & set(numbers(text[m.start():m.end() + 16]))]
    return any(names_money(text[max(0, start - 4):end + after]) for start, end in spots)
