"""Questions that ask for the latest news on a topic ("What's the latest news about the Moon?", "Quoi de neuf sur
Notre-Dame ?", "月球的最新消息"). They name no fact to find: the find step looks for the few words that answer and,
finding none, refuses, although the articles hold the news asked for. They are answered instead with the newest
articles on the topic among the BRIEF_HITS best retrieved (their news words are present-time words in
rag/dates.py, so retrieval leans on recency for them as for "this week"): each article's headline and date, cited
by the sentence of it that best supports the headline. No model is called.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .cite import best_support
from .crosscheck import foreign
from .dates import Date, format_day, iso_date
from .embed import Embedder
from .languages import question_language, without_foreign_stopwords
from .text import content_words
from .types import Citation, Hit, Sentence

# "latest news about X", "any updates on X", "what's new with X", in the languages of the sample corpus and a few
# more. The topic is what follows; a question with a fact to find ("What is the latest iPhone?", "Who is the
# latest winner?") has no news word and is not one of these, nor is one whose topic asks a question of its own
# ("the latest on how many died", "the latest news on the death toll": _ASKS_FACT).
_NEWS = r"(?:news|updates?|developments?|headlines|reports?|stories|articles)"
_ABOUT = r"(?:on|about|from|regarding|concerning|with regard to|as to|with|in|of)"
_END = r"[\s?.!？。]*$"
_ASKS_LATEST = [
    re.compile(rf"^(?:(?:what(?:'s|’s| is| are)|any|give me|tell me|show me)\s+)?(?:(?:the|some)\s+)?(?:latest|"
               rf"newest|most recent|recent|last)\s+(?:{_NEWS}\s+)?{_ABOUT}\s+(?P<topic>.+?){_END}", re.I),
    re.compile(rf"^(?:(?:is|are) there\s+)?(?:any\s+)?(?:new\s+)?{_NEWS}\s+{_ABOUT}\s+(?P<topic>.+?){_END}", re.I),
    re.compile(rf"^what(?:'s|’s| is)\s+new\s+(?:with|about|on|in)\s+(?P<topic>.+?){_END}", re.I),
    re.compile(r"^(?:quelles sont\s+)?(?:les\s+)?(?:dernières|plus récentes)\s+(?:nouvelles|informations|"
               rf"actualités|infos)\s+(?:sur|concernant|à propos de|de|du|des)\s+(?P<topic>.+?){_END}", re.I),
    re.compile(rf"^(?:quoi de neuf|du nouveau|quelles nouvelles)\s+(?:sur|avec|concernant|du côté de|de)\s+"
               rf"(?P<topic>.+?){_END}", re.I),
    re.compile(r"^(?:(?:was gibt es|gibt es)\s+)?(?:(?:was sind\s+)?die\s+)?(?:neuesten|letzten|aktuellen)?\s*"
               r"(?:nachrichten|neuigkeiten|meldungen|neues)\s+(?:über|zu|zum|zur|von|vom|bei|beim|aus)\s+"
               rf"(?P<topic>.+?){_END}", re.I),
    re.compile(r"^(?:(?:cuáles son|hay)\s+)?(?:las\s+)?(?:últimas\s+|más recientes\s+)?(?:noticias|novedades)\s+"
               rf"(?:sobre|de|del|acerca de)\s+(?P<topic>.+?){_END}", re.I),
    re.compile(rf"^(?:关于|有关)?(?P<topic>.+?)的?(?:最新|最近的?)(?:消息|新闻|进展|动态|报道)(?:是什么|有哪些|有什么)?{_END}"),
    re.compile(rf"^(?:关于|有关)?(?P<topic>.+?)有(?:什么|哪些)(?:新消息|新闻|新进展){_END}"),
]
# A topic that asks for a fact of its own: a question word, or a count or amount ("the death toll").
_ASKS_FACT = re.compile(
    r"^(?:who|whom|whose|what|when|where|which|why|how|qui|que|quoi|quand|où|comment|combien|quel(?:le)?s?|wer|"
    r"was|wann|wo|wie|welche[rsnm]?|warum|quién|quiénes|qué|cuándo|dónde|cómo|cuánto|cuántos|cuál)\b"
    r"|\b(?:toll|number of|how many|how much|count|figures?|nombre de|bilan|número de|cifra|zahl der|anzahl)\b"
    r"|多少|几|幾|谁|誰|什么时候|哪", re.I)
# Of the topic's words, the share a hit must hold to be on it: one word of "the tram strike" is not enough
# ("Airstrike hits depot", "New tram line opens").
MIN_TOPIC_SHARE = 2 / 3
# Hits a briefing looks at: more than an answer reads, so that "newest" is over more than the five best.
BRIEF_HITS = 10

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


def _topic_words(topic: str, question: str) -> set[str]:
    return set(content_words(without_foreign_stopwords(topic, question_language(question))))


def latest_topic(question: str) -> str | None:
    """The topic of a question asking for the latest news on it, or None for any other question."""
    text = " ".join(question.split()).lstrip("¿¡ ")
    for pattern in _ASKS_LATEST:
        if (match := pattern.match(text)) and _topic_words(topic := match.group("topic").strip(), text):
            return None if _ASKS_FACT.search(topic) else topic
    return None


def newest_on(topic: str, question: str, hits: Sequence[Hit], embedder: Embedder | None = None) -> list[Hit]:
    """The earliest retrieved chunk (its lead, where retrieved) of each of the newest articles on the topic (up to
    MAX_ARTICLES), newest first, undated ones last. An article is on the topic when a hit's headline and text hold
    at least MIN_TOPIC_SHARE of the topic's words, or, for a hit in another language than the question
    (multilingual embedder), when its dense cosine is at least FOREIGN_SHARE of the best such hit's."""
    words = _topic_words(topic, question)
    other = foreign(question, [(h.rank, h.chunk.text) for h in hits], embedder)
    sharing = [h for h in hits
               if len(words & set(content_words(f"{h.title} {h.chunk.text}"))) >= MIN_TOPIC_SHARE * len(words)]
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


def brief(question: str, topic: str, language: str, hits: Sequence[Hit], embedder: Embedder | None = None, *,
          min_support: float = 0.5) -> tuple[str, tuple[Sentence, ...], tuple[Citation, ...]] | None:
    """(answer text, sentences, citations) listing the newest articles on the topic of a question asking for the
    latest news on it (latest_topic), or None when no retrieved article is on the topic. A line whose cited
    sentence holds less than min_support of its headline's words is marked unsupported."""
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
        sentences.append(Sentence(text=f"{claim} [{marker}].", markers=(marker,), supported=support >= min_support,
                                  support=round(support, 4)))
        citations.append(Citation(marker=marker, chunk_id=hit.chunk.id, article_id=hit.chunk.article_id,
                                  title=hit.title, source=hit.source, start=hit.chunk.start + start,
                                  end=hit.chunk.start + end, quote=hit.chunk.text[start:end],
                                  support=round(support, 4), published=hit.published))
    if not sentences:
        return None
    intro = _INTRO.get(language, _INTRO["en"])
    return " ".join([intro, *(s.text for s in sentences)]), tuple(sentences), tuple(citations)
