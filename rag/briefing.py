"""Questions that ask for the latest news on a topic ("What's the latest news about the Moon?", "Quoi de neuf sur
Notre-Dame ?", "月球的最新消息"). They name no fact to find: the find step looks for the few words that answer and,
finding none, refuses, although the articles hold the news asked for. They are answered instead with the newest
articles on the topic among the retrieved ones (retrieval already prefers recent articles for "latest"): each
article's headline and date, cited by the sentence of it that best supports the headline. No model is called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .cite import best_support
from .crosscheck import foreign
from .dates import Date, format_day, iso_date
from .embed import Embedder
from .text import content_words
from .types import Citation, Hit, Sentence

# "latest news about X", "any updates on X", "what's new with X", in the languages of the sample corpus and a few
# more. The topic is what follows; a question with a fact to find ("What is the latest iPhone?", "Who is the
# latest winner?") has no news word and is not one of these.
_NEWS = r"(?:news|updates?|developments?|headlines|reports?|stories|articles)"
_ABOUT = r"(?:on|about|from|regarding|concerning|with|for|in)"
_ASKS_LATEST = [
    re.compile(rf"^(?:what(?:'s|’s| is| are)|any|give me|tell me|show me)?\s*(?:the|some)?\s*(?:latest|newest|"
               rf"most recent|recent|last)\s+{_NEWS}\s+{_ABOUT}\s+(?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(rf"^(?:is there |are there )?any (?:new )?{_NEWS} {_ABOUT} (?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(r"^what(?:'s|’s| is) new (?:with|about|on|in) (?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(r"^(?:what(?:'s|’s| is) )?the (?:latest|newest) (?:on|about|with|regarding) (?P<topic>.+?)[\s?.!]*$",
               re.I),
    re.compile(r"^(?:quelles sont )?(?:les )?(?:dernières|plus récentes) (?:nouvelles|informations|actualités|"
               r"infos) (?:sur|concernant|à propos de|de|du|des) (?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(r"^quoi de neuf (?:sur|avec|concernant|du côté de) (?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(r"^(?:was gibt es )?(?:die )?(?:neuesten|letzten) (?:nachrichten|neuigkeiten|meldungen) "
               r"(?:über|zu|zum|zur|von) (?P<topic>.+?)[\s?.!]*$", re.I),
    re.compile(r"^(?:cuáles son )?(?:las )?(?:últimas|más recientes) (?:noticias|novedades) "
               r"(?:sobre|de|del|acerca de) (?P<topic>.+?)[\s?.!¿]*$", re.I),
    re.compile(r"^(?:关于)?(?P<topic>.+?)的?(?:最新|最近的?)(?:消息|新闻|进展|动态|报道)(?:是什么|有哪些|有什么)?[？?。]*$"),
]

MAX_ARTICLES = 3
# An article in another language than the question shares no word with its topic: it counts as on the topic when
# the multilingual embedder puts it nearly as close to the question as the closest hit that does share a word.
# For "What is the latest news about the Moon?" over the sample corpus, its Chinese Moon article's chunks are at
# cosine 0.29 and 0.29, the best English chunk at 0.33 (the whole question is compared, not its topic alone).
# With no hit in the question's language on the topic ("Any news about Mars?"), none in another language counts.
FOREIGN_SHARE = 0.8
_INTRO = {"en": "The newest articles on this:", "fr": "Les articles les plus récents à ce sujet :",
          "de": "Die neuesten Artikel dazu:", "es": "Los artículos más recientes sobre esto:",
          "zh": "关于此事的最新文章："}


def latest_topic(question: str) -> str | None:
    """The topic of a question asking for the latest news on it, or None for any other question."""
    text = " ".join(question.split())
    for pattern in _ASKS_LATEST:
        if (match := pattern.match(text)) and content_words(match.group("topic")):
            return match.group("topic")
    return None


def newest_on(topic: str, question: str, hits: Sequence[Hit], embedder: Embedder | None = None) -> list[Hit]:
    """The earliest retrieved chunk (its lead, where retrieved) of each of the newest articles on the topic (up to
    MAX_ARTICLES), newest first, undated ones last. An article is on the topic when a hit's headline or text holds
    one of the topic's words, or, for a hit in another language than the question (multilingual embedder), when
    its dense cosine is at least FOREIGN_SHARE of the best such hit's."""
    words = set(content_words(topic))
    other = foreign(question, [(h.rank, h.chunk.text) for h in hits], embedder)
    sharing = [h for h in hits if words & set(content_words(f"{h.title} {h.chunk.text}"))]
    closest = max((h.dense_score or 0.0 for h in sharing), default=0.0)
    on_topic = sharing + [h for h in hits if h.rank in other and h not in sharing and closest > 0
                          and (h.dense_score or 0.0) >= FOREIGN_SHARE * closest]
    lead: dict[str, Hit] = {}
    for hit in on_topic:
        if hit.chunk.article_id not in lead or hit.chunk.start < lead[hit.chunk.article_id].chunk.start:
            lead[hit.chunk.article_id] = hit
    def newest(hit: Hit) -> tuple[bool, Date]:
        day = iso_date(hit.published)
        return day is not None, day or Date.min

    return sorted(lead.values(), key=newest, reverse=True)[:MAX_ARTICLES]


def brief(question: str, language: str, hits: Sequence[Hit], embedder: Embedder | None = None
          ) -> tuple[str, tuple[Sentence, ...], tuple[Citation, ...]] | None:
    """(answer text, sentences, citations) listing the newest articles on the question's topic, or None when the
    question does not ask for the latest news or no retrieved article is on its topic."""
    topic = latest_topic(question)
    if topic is None:
        return None
    articles = newest_on(topic, question, hits, embedder)
    if not articles:
        return None
    quoted = [(hit, " ".join(hit.title.split()) or hit.chunk.text[:80]) for hit in articles]
    # (a chunk that is all orders to the assistant has no window: it is not quoted)
    windows = [(hit, headline, best_support(headline, hit)) for hit, headline in quoted]
    sentences, citations = [], []
    for marker, (hit, headline, (support, start, end)) in enumerate(
            [w for w in windows if w[2][2] > w[2][1]], 1):
        day = iso_date(hit.published)
        when = (format_day(day) if language == "en" else day.isoformat()) if day else ""  # (format_day writes English)
        claim = f"{headline} ({when})" if when else headline
        sentences.append(Sentence(text=f"{claim} [{marker}].", markers=(marker,), supported=True,
                                  support=round(support, 4)))
        citations.append(Citation(marker=marker, chunk_id=hit.chunk.id, article_id=hit.chunk.article_id,
                                  title=hit.title, source=hit.source, start=hit.chunk.start + start,
                                  end=hit.chunk.start + end, quote=hit.chunk.text[start:end],
                                  support=round(support, 4), published=hit.published))
    if not sentences:
        return None
    intro = _INTRO.get(language, _INTRO["en"])
    return " ".join([intro, *(s.text for s in sentences)]), tuple(sentences), tuple(citations)
