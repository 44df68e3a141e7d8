"""Questions that ask for the latest news on a topic: answered with the newest articles on it, each cited."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Answer, Pipeline, Settings, build_index
from rag.briefing import brief, latest_topic, newest_on
from rag.dates import asks_about_present
from rag.types import Chunk, Hit

from .conftest import scripted_pipeline
from .fakes import HashEmbedder
from .test_time import _dated_corpus


@pytest.mark.parametrize(("question", "topic"), [
    ("What is the latest news about the harbour festival?", "the harbour festival"),
    ("What's the latest on the tram strike?", "the tram strike"),
    ("Any updates on the Lantern Bridge?", "the Lantern Bridge"),
    ("what's new with the ferry service", "the ferry service"),
    ("Quelles sont les dernières nouvelles sur le pont ?", "le pont"),
    ("Quoi de neuf sur la grève des trams ?", "la grève des trams"),
    ("Die neuesten Nachrichten über den Hafen", "den Hafen"),
    ("Las últimas noticias sobre el puerto", "el puerto"),
    ("港口节的最新消息", "港口节"),
    ("¿Cuáles son las últimas noticias sobre la huelga?", "la huelga"),
    ("Was gibt es Neues zum Streik?", "Streik"),
    ("Latest on the tram strike?", "the tram strike"),
    ("Du nouveau sur Notre-Dame ?", "Notre-Dame"),
    ("有关港口节的最新消息", "港口节"),
    ("港口节有什么新消息", "港口节"),
])
def test_questions_asking_for_the_latest_news_name_their_topic(question: str, topic: str) -> None:
    assert latest_topic(question) == topic


@pytest.mark.parametrize("question", [
    "What is the latest model of the Kessel phone?",  # a fact to find: no news word
    "Who is the latest winner of the harbour prize?",
    "What drew crowds to the harbour festival this week?",
    "When did the news about the bridge break?",
    "What is the latest news?",  # no topic
    # a topic that asks a fact of its own: the find step answers it
    "What is the latest on the death toll in the earthquake?",
    "What's the latest on who won the election?",
    "Les dernières informations sur le nombre de morts ?",
    "What is the latest update for iOS?",
])
def test_other_questions_are_not_briefings(question: str) -> None:
    assert latest_topic(question) is None


def _hit(rank: int, article: str, title: str, text: str, published: str | None, start: int = 0,
         dense: float | None = None) -> Hit:
    return Hit(chunk=Chunk(f"{article}-{start}", article, text, start, start + len(text)), score=1.0 / rank,
               rank=rank, title=title, source=f"/news/{article}.txt", published=published, dense_score=dense)


def test_these_questions_ask_about_the_present_so_retrieval_prefers_recent_articles() -> None:
    for question in ("Any updates on the bridge?", "Quoi de neuf sur le pont ?", "Was gibt es Neues zum Hafen?",
                     "¿Hay novedades sobre el puerto?", "港口节有什么新消息"):
        assert asks_about_present(question), question


def test_the_newest_articles_on_the_topic_come_first_each_by_its_lead() -> None:
    hits = [
        _hit(1, "old", "Tram strike ends", "The tram strike ended after two weeks of talks.", "2024-03-01"),
        _hit(2, "new", "Tram strike resumes", "Tram drivers walked out again on Monday.", "2024-05-20", start=300),
        _hit(3, "new", "Tram strike resumes", "Tram drivers resumed their strike over pay.", "2024-05-20"),
        _hit(4, "other", "Harbour festival opens", "Boats and music filled the harbour.", "2024-06-01"),
        _hit(5, "undated", "Tram strike explained", "Why the tram strike matters to the city.", None),
    ]
    newest = newest_on("the tram strike", "What's the latest on the tram strike?", hits)
    assert [h.chunk.article_id for h in newest] == ["new", "old", "undated"]  # not the newer harbour article
    assert newest[0].chunk.start == 0  # the article's earliest retrieved chunk: its lead


def test_one_word_of_the_topic_or_a_function_word_does_not_make_an_article_on_it() -> None:
    hits = [_hit(1, "air", "Airstrike hits depot", "A strike hit the depot at night.", "2024-06-02"),
            _hit(2, "line", "New tram line opens", "The new tram line opened to riders.", "2024-06-01"),
            _hit(3, "fete", "La Fête de la musique", "La fête des voisins et de la musique.", "2024-06-21"),
            _hit(4, "strike", "Tram strike ends", "The tram strike ended after talks.", "2024-03-01"),
            _hit(5, "greve", "Fin de la grève des trams", "La grève des trams a pris fin.", "2024-03-02")]
    assert [h.chunk.article_id for h in newest_on("the tram strike", "Latest on the tram strike?", hits)] == [
        "strike"]
    assert [h.chunk.article_id for h in newest_on("la grève des trams", "Quoi de neuf sur la grève des trams ?",
                                                  hits)] == ["greve"]
    # in an English question "son" is a word of the topic, not Spanish's function word
    family = [_hit(1, "king", "King visits the harbour", "The king visited the harbour.", "2024-06-03"),
              _hit(2, "heir", "King's son opens bridge", "The king's son opened the bridge.", "2024-05-01")]
    assert [h.chunk.article_id for h in newest_on("the king's son", "Any news about the king's son?", family)] == [
        "heir"]


def test_the_briefing_cites_each_article_where_its_text_says_it() -> None:
    hits = [_hit(1, "a", "Lantern Bridge opens to cyclists", "Port Avel ferry times. The Lantern Bridge opened "
                 "to cyclists on Saturday after three years of work.", "2024-05-04", start=120),
            _hit(2, "b", "Lantern Bridge budget approved", "The council approved the Lantern Bridge budget.",
                 "2021-02-10")]
    text, sentences, citations = brief("Any news about the Lantern Bridge?", "the Lantern Bridge", "en",
                                       hits)  # type: ignore[misc]
    assert text == ("The newest articles on this: Lantern Bridge opens to cyclists (4 May 2024) [1]. "
                    "Lantern Bridge budget approved (10 February 2021) [2].")
    assert [s.markers for s in sentences] == [(1,), (2,)] and all(s.supported for s in sentences)
    first = citations[0]
    assert first.quote.startswith("The Lantern Bridge opened") and first.start == 120 + len("Port Avel ferry times. ")
    assert brief("Any news about the Kessel mine?", "the Kessel mine", "en", hits) is None  # nothing on it
    # a headline its article's text does not bear out is shown, but marked unsupported
    odd = [_hit(1, "c", "Lantern Bridge wins a design prize", "Lantern Bridge traffic was light.", "2024-06-01")]
    _, (sentence,), _ = brief("Any news about the Lantern Bridge?", "the Lantern Bridge", "en",  # type: ignore[misc]
                              odd)
    assert not sentence.supported


@pytest.fixture
def dated(tmp_path: Path, settings: Settings) -> Settings:
    build_index(_dated_corpus(tmp_path / "dated"), settings=settings, embedder=HashEmbedder())
    return settings.replace(min_dense_score=0.0)


def test_asked_for_the_latest_news_the_pipeline_lists_the_newest_articles_without_the_model(dated: Settings) -> None:
    pipeline, gen = scripted_pipeline(dated)  # a model call would fail: no reply is scripted
    answer = pipeline.ask("What is the latest news about the harbour festival?", as_of="2024-06-01")
    assert not answer.refused and answer.rejected == ("latest",) and not gen.calls
    assert answer.text.startswith(
        "The newest articles on this: Harbour festival draws crowds once more (29 May 2024) [1].")
    assert "record crowds" not in answer.text  # published after the as-of date
    assert [Path(c.source).name for c in answer.citations][:2] == ["c_week.txt", "b_month.txt"]
    for c in answer.citations:  # each quote is the article's own text, where the citation says
        article = Path(c.source).read_text(encoding="utf-8")
        assert c.quote in article
        assert c.chunk_id in {h.chunk.id for h in answer.hits}  # and among the answer's hits
    # with fewer hits than the briefing looks at, the answer's hits are still the ones it cites from
    few, _ = scripted_pipeline(dated.replace(top_k=2))
    briefed = few.ask("What is the latest news about the harbour festival?", as_of="2024-06-01")
    assert len(briefed.citations) == 3 and {c.chunk_id for c in briefed.citations} <= {h.chunk.id for h in briefed.hits}
    # the stream gives the same words as its text, then the answer
    events = list(Pipeline(dated, embedder=HashEmbedder(), generator=gen).stream(
        "Quoi de neuf sur le harbour festival ?", as_of="2024-06-01"))
    words, last = events[1], events[-1]
    assert isinstance(words, str) and words.startswith("Les articles les plus récents à ce sujet :")
    assert "(2024-05-29) [1]" in words and isinstance(last, Answer) and last.text == words
