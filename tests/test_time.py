"""Time as an input: the as-of date, no future articles, recency for present-tense questions, resolved dates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from rag import Pipeline, QueryError, Settings, build_index
from rag.cite import best_support
from rag.context import Passage, format_passages, passage_line
from rag.dates import (
    annotate_relative,
    asks_about_present,
    is_date_line,
    is_only_date,
    names_past_time,
    parse_as_of,
    resolve_relative,
    wants_recent,
)
from rag.text import split_sentences
from rag.types import Chunk, Hit

from .conftest import scripted_pipeline
from .fakes import HashEmbedder

D = dt.date


def test_as_of_parsing() -> None:
    assert parse_as_of("2024-03-05") == D(2024, 3, 5)
    assert parse_as_of(None) == dt.date.today()
    assert parse_as_of(D(2020, 1, 2)) == D(2020, 1, 2)
    with pytest.raises(QueryError, match="YYYY-MM-DD"):
        parse_as_of("next tuesday")


@pytest.mark.parametrize("question", [
    "Which team won the regional cup this week?", "Who is the current mayor of the port town?",
    "What did the lighthouse keepers announce recently?", "What is the latest figure for ferry passengers?",
    "Qui a remporté la course cette semaine ?", "Quel est le prix actuel du pain ?", "本周哪家公司发布了新手机？",
    "目前港口的货运量是多少？",
])
def test_present_tense_questions_are_recognised(question: str) -> None:
    assert asks_about_present(question)
    assert wants_recent(question, D(2024, 6, 1))


@pytest.mark.parametrize("question", [
    "Which team won the regional cup in 2019?", "Who opened the bridge on 4 March?",
    "What did the council decide about the harbour?", "Qui a construit le phare ?",
])
def test_other_questions_are_not_pushed_to_recent_articles(question: str) -> None:
    assert not wants_recent(question, D(2024, 6, 1))


def test_a_named_past_year_outweighs_a_time_word() -> None:
    question = "Who was the current champion of the regional cup in 2019?"
    assert asks_about_present(question) and names_past_time(question, D(2024, 6, 1))
    assert not wants_recent(question, D(2024, 6, 1))
    assert not names_past_time("Who won the 2024 cup this week?", D(2024, 6, 1))  # this year is not the past


@pytest.mark.parametrize("line", ["2025年3月9日", "2025年3月9日 08:15", "March 9, 2025", "9 mars 2025", "2025-03-09"])
def test_a_date_alone_is_a_date_line_in_any_script(line: str) -> None:
    assert is_date_line(line)  # no answer is in it, so it is never shown as a passage


@pytest.mark.parametrize("sentence", ["探测器于3月9日在发射场升空。", "In 2019 the old bridge was closed.",
                                      "The order was for 12345 units."])
def test_a_sentence_with_a_date_is_not_a_date_line(sentence: str) -> None:
    assert not is_date_line(sentence)


def test_relative_dates_resolve_against_the_article_date_english() -> None:
    thursday = D(2023, 8, 24)
    text = "The probe touched down on Wednesday. Officials said yesterday that it works, as it did last week."
    labels = [label for _, _, label in resolve_relative(text, thursday)]
    assert labels == ["23 August 2023", "23 August 2023", "the week of 14 August 2023"]
    assert "on Wednesday (23 August 2023)" in annotate_relative(text, thursday)
    # a weekday named on its own publication day is that day
    assert resolve_relative("It landed on Thursday.", thursday)[0][2] == "24 August 2023"
    assert annotate_relative(text, None) == text
    # a weekday with its own date beside it is not resolved against the article's date (that would be another
    # day): the written date gets the year that puts it nearest the article, when it falls on that weekday
    january = D(2025, 1, 14)  # a Tuesday
    dated = "The festival opens on Tuesday, March 4 at 7 p.m., and the last concert is Friday May 9."
    assert annotate_relative(dated, january) == ("The festival opens on Tuesday, March 4 (4 March 2025) at 7 p.m., "
                                                 "and the last concert is Friday May 9 (9 May 2025).")
    assert resolve_relative("It opens on Tuesday the 4th of March.", january)[0][2] == "4 March 2025"
    assert resolve_relative("Tickets went on sale Tuesday, Jan.7.", january)[0][2] == "7 January 2025"
    assert annotate_relative("It ends on Friday May 9th.", january) == "It ends on Friday May 9th (9 May 2025)."
    assert resolve_relative("It ended on Friday, May 10, 2024, at noon.", january) == []  # its year is written
    assert resolve_relative("The gala is on Tuesday evening, Nov. 11, in the old hall.", january)[0][2] == (
        "11 November 2025")  # 11 November 2024, nearer, was a Monday
    assert resolve_relative("Vente le mardi 7 janv. à midi.", january)[0][2] == "7 January 2025"
    # a written date that is not that weekday in any year near the article is left alone, not guessed
    assert resolve_relative("It opens on Thursday, March 4.", january) == []
    # a number with a unit after a month-like word is no date: the weekday is resolved as usual
    assert resolve_relative("On Sunday, march 3 km to the harbour.", january)[0][2] == "12 January 2025"
    assert resolve_relative("On Tuesday, 1,200 fans queued.", january)[0][2] == "14 January 2025"


def test_relative_dates_resolve_against_the_article_date_french_and_chinese() -> None:
    sunday = D(2024, 12, 8)
    fr = "La cathédrale a rouvert samedi soir ; hier, les fidèles étaient nombreux."
    assert [label for _, _, label in resolve_relative(fr, sunday)] == ["7 December 2024", "7 December 2024"]
    assert resolve_relative("Le festival ouvre mardi 4 mars.", sunday)[0][2] == "4 March 2025"
    zh = "探测器昨天返回地球。"
    assert resolve_relative(zh, D(2024, 6, 26))[0][2] == "25 June 2024"


def _dated_corpus(folder: Path) -> Path:
    """Four reports on the same festival over time, and one undated."""
    folder.mkdir()
    reports = {
        "a_old.txt": ("Harbour festival draws crowds", "2021-07-01",
                      "The harbour festival drew crowds to the waterfront with music and boats."),
        "b_month.txt": ("Harbour festival draws crowds again", "2024-05-02",
                        "The harbour festival drew crowds to the waterfront with music and kites."),
        "c_week.txt": ("Harbour festival draws crowds once more", "2024-05-29",
                       "The harbour festival drew crowds to the waterfront with music and lanterns."),
        "d_future.txt": ("Harbour festival draws record crowds", "2024-06-20",
                         "The harbour festival drew record crowds to the waterfront with music and fireworks."),
    }
    for name, (title, date, body) in reports.items():
        (folder / name).write_text(f"{title}\nPublished: {date}\n\n{body}\n", encoding="utf-8")
    (folder / "e_undated.txt").write_text("Harbour festival volunteers\n\nVolunteers at the harbour festival "
                                          "cleaned the waterfront after the music.\n", encoding="utf-8")
    return folder


@pytest.fixture
def dated(tmp_path: Path, settings: Settings) -> Settings:
    build_index(_dated_corpus(tmp_path / "dated"), settings=settings, embedder=HashEmbedder())
    return settings


def _sources(pipeline: Pipeline, question: str, as_of: str) -> list[str]:
    return [Path(h.source).name for h in pipeline.retrieve(question, as_of=as_of, top_k=5)]


def test_articles_published_after_the_as_of_date_are_not_retrieved(dated: Settings) -> None:
    pipeline = Pipeline(dated, embedder=HashEmbedder())
    before = _sources(pipeline, "harbour festival crowds waterfront music", "2024-06-01")
    assert "d_future.txt" not in before and "e_undated.txt" in before  # undated articles stay in
    after = _sources(pipeline, "harbour festival crowds waterfront music", "2024-07-01")
    assert "d_future.txt" in after
    # an article of the as-of day itself already exists; one of the day after does not
    assert "d_future.txt" in _sources(pipeline, "harbour festival crowds waterfront music", "2024-06-20")
    assert "d_future.txt" not in _sources(pipeline, "harbour festival crowds waterfront music", "2024-06-19")
    future = pipeline.store.future_rowids("2024-06-19")
    assert future and future == pipeline.store.future_rowids("2024-06-19T08:00:00")  # a time of day changes nothing
    assert not pipeline.store.future_rowids("2024-06-20")


def test_a_present_tense_question_prefers_the_latest_articles(dated: Settings) -> None:
    pipeline = Pipeline(dated.replace(per_article_cap=1), embedder=HashEmbedder())
    recent = _sources(pipeline, "What drew crowds to the harbour festival this week?", "2024-06-01")
    assert recent[0] == "c_week.txt"
    assert recent.index("b_month.txt") < recent.index("a_old.txt")
    # the same words with a past year named: no push towards the as-of date
    plain = Pipeline(dated.replace(per_article_cap=1, recency_weight=0.0), embedder=HashEmbedder())
    named = "What drew crowds to the harbour festival this week in 2021?"
    assert _sources(pipeline, named, "2024-06-01") == _sources(plain, named, "2024-06-01")


def test_the_answer_records_its_as_of_date_and_the_model_sees_dates(dated: Settings) -> None:
    pipeline, gen = scripted_pipeline(dated.replace(min_dense_score=0.0),
                                      "Lanterns lit the waterfront at the harbour festival [1].")
    answer = pipeline.ask("What lit the harbour festival this week?", as_of="2024-06-01")
    assert answer.as_of == "2024-06-01" and answer.to_dict()["as_of"] == "2024-06-01"
    prompt = gen.last_user_message
    assert "1 June 2024" in prompt  # the day the question is asked on
    assert "29 May 2024" in prompt  # each passage carries its article's date
    assert "20 June 2024" not in prompt and "fireworks" not in prompt
    with pytest.raises(QueryError):
        pipeline.ask("What lit the harbour festival?", as_of="2024-13-45")


def _hit(text: str, published: str | None) -> Hit:
    return Hit(chunk=Chunk("a-000", "a", text, 0, len(text)), score=1.0, rank=1, title="Probe lands near the pole",
               source="a.txt", published=published)


def test_the_article_date_supports_a_when_answer() -> None:
    hit = _hit("The probe touched down on Wednesday, the agency said.", "2023-08-24")
    claim = "The probe touched down on 23 August 2023 [1]."
    assert best_support(claim, hit, "When did the probe touch down?")[0] >= 0.99
    # without the article's date the same claim has nothing to stand on
    assert best_support(claim, _hit(hit.chunk.text, None), "When did the probe touch down?")[0] < 0.5
    shown = format_passages([Passage(1, hit, ((0, len(hit.chunk.text)),))])
    assert "24 August 2023" in shown and "on Wednesday (23 August 2023)" in shown


def test_each_article_is_headed_once_above_its_passages() -> None:
    text = "The ferry restarted on Friday. Tickets cost 4 euros. The mayor rode it."
    ferry = Hit(chunk=Chunk("f-000", "f", text, 0, len(text)), score=1.0, rank=1, title="Island ferry back",
                source="f.txt", published="2024-03-05")
    dated = Hit(chunk=Chunk("d-000", "d", "Rain is due on Sunday.", 0, 22), score=0.5, rank=2,
                title="March 4, 2024", source="d.txt", published="2024-03-04")  # a scraped page titled by its date
    spans = split_sentences(text)
    shown = format_passages([Passage(1, ferry, (spans[0],)), Passage(2, ferry, (spans[2],)),
                             Passage(3, dated, ((0, 22),))])
    assert shown.splitlines() == ["(Island ferry back, 5 March 2024)",
                                  "[1] The ferry restarted on Friday (1 March 2024).", "[2] The mayor rode it.",
                                  "(4 March 2024)", "[3] Rain is due on Sunday (3 March 2024)."]
    assert passage_line(Passage(3, dated, ((0, 22),))) == "(4 March 2024) Rain is due on Sunday (3 March 2024)."
    # an article with nothing to head it is not shown under the article before it; a date-only title with no
    # publication date is the only date there is, so it stays
    bare = Hit(chunk=Chunk("b-000", "b", "The bridge closed.", 0, 18), score=0.4, rank=3, title="", source="b.txt")
    undated = Hit(chunk=Chunk("u-000", "u", "The pier opened.", 0, 16), score=0.3, rank=4, title="March 2, 2024",
                  source="u.txt")
    shown = format_passages([Passage(1, ferry, (spans[0],)), Passage(2, bare, ((0, 18),)),
                             Passage(3, undated, ((0, 16),))])
    assert shown.splitlines()[2:] == ["(undated)", "[2] The bridge closed.", "(March 2, 2024)", "[3] The pier opened."]
    assert is_only_date("Sept. 5, 2022") and is_only_date("Mon, 3 Oct 2022 10:00")
    assert not is_only_date("World Cup 2022 final") and not is_only_date("Budget 2023: what changes")


def test_cli_rejects_a_bad_as_of_date(indexed: Settings) -> None:
    from rag.cli import main

    assert main(["search", "harvest", "--index-dir", str(indexed.index_dir), "--as-of", "soon"]) == 1


def test_eval_rows_carry_as_of_and_gold_docs(tmp_path: Path, dated: Settings) -> None:
    from rag.eval import load_questions, score_retrieval, split_of

    rows = [{"id": f"t{i}", "question": "What drew crowds to the harbour festival this week?",
             "answers": ["lanterns"], "as_of": "2024-06-01", "gold_docs": ["c_week.txt"],
             "evidence": [{"doc": "c_week.txt", "quote": ""}]} for i in range(6)]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    questions = load_questions(path)
    assert questions[0].as_of == "2024-06-01" and questions[0].gold_docs == ("c_week.txt",)
    halves = {split_of(q.id) for q in questions}
    assert halves <= {"dev", "test"}
    assert len(load_questions(path, split="dev")) + len(load_questions(path, split="test")) == 6
    pipeline = Pipeline(dated, embedder=HashEmbedder())
    result = score_retrieval(questions, lambda q: pipeline.retrieve(q.question, as_of=q.as_of, top_k=10))
    s = result.summary
    assert s["doc_hits@1"] == 1.0 and s["doc_mrr@10"] == 1.0
    assert s["scored_for_retrieval"] == 0  # an empty quote never counts as support


@pytest.mark.parametrize("given", ["2024/05/31", "20240531", "31.05.2024", "2023-02-30", "2024-5-31", "yesterday"])
def test_every_day_a_user_gives_is_checked_alike(given: str, tmp_path: Path) -> None:
    """Filters, the as-of date, a pasted article's date and a question set's as_of went through five checks
    that disagreed: 20240531 was a filter bound, 2023-02-30 an as_of."""
    from rag import Filters, IngestError, QueryError, given_day
    from rag.dates import parse_as_of
    from rag.eval import load_questions
    from rag.uploads import save_pasted

    assert given_day(" 2024-05-31 ", "date from") == "2024-05-31" and given_day("  ", "date from") is None
    with pytest.raises(QueryError, match=f"date from '{given}' is not a date like 2024-05-31; give YYYY-MM-DD"):
        Filters(date_from=given)
    with pytest.raises(QueryError, match="as-of date"):
        parse_as_of(given)
    with pytest.raises(IngestError, match="date .* is not a date like"):
        save_pasted("The tram opened.", tmp_path, published=given, max_file_bytes=10_000)
    rows = tmp_path / "qa.jsonl"
    rows.write_text(json.dumps({"id": "q1", "question": "When did the tram open?", "answer": "May",
                                "as_of": given}) + "\n")
    with pytest.raises(IngestError, match=r"qa.jsonl line 1: as_of .* is not a date"):
        load_questions(rows)
