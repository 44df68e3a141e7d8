"""Find the answer: its words are found, checked and cited before they count."""

from __future__ import annotations

from rag import NO_ANSWER, Settings
from rag.answer import Draft, absent_name, answer_pieces, check, parse_draft, restates
from rag.context import Passage
from rag.types import Chunk, Hit

from .conftest import scripted_pipeline

QUESTION = "What did the thieves steal from the museum?"


def test_the_two_lines_are_parsed_and_only_the_answer_is_streamed() -> None:
    draft = parse_draft("Source: [2]\nAnswer: 42 Roman gold coins")
    assert draft == Draft(2, "42 Roman gold coins") and draft.text == "42 Roman gold coins [2]."
    assert parse_draft("Source: [1]\nAnswer: none").none
    pieces = ["Sou", "rce: [", "2]\nAns", "wer: 42 Roman", " gold coins"]
    assert "".join(answer_pieces(pieces)) == "42 Roman gold coins"
    assert "".join(answer_pieces(["The indexed ", "articles do not answer this question."])) == NO_ANSWER
    assert parse_draft("Just a sentence [1].").number is None


def test_words_that_only_repeat_the_question_are_rejected() -> None:
    assert restates("the museum", QUESTION) and restates("the thieves of the museum", QUESTION)
    assert not restates("gold coins", QUESTION)


def _passage(number: int, text: str, title: str = "Museum news") -> Passage:
    hit = Hit(chunk=Chunk(f"a{number}-000", f"a{number}", text, 0, len(text)), score=1.0, rank=number,
              title=title, source=f"a{number}.txt")
    return Passage(number, hit, ((0, len(text)),))


def test_the_words_are_pointed_at_the_passage_that_holds_them() -> None:
    passages = [_passage(1, "The museum reopened on Friday after the theft."),
                _passage(2, "Thieves stole 42 Roman gold coins from the museum, police said.")]
    draft, reason = check(Draft(1, "42 Roman gold coins"), passages, QUESTION)
    assert reason is None and draft.number == 2
    assert check(Draft(1, "a silver crown"), passages, QUESTION)[1] == "absent"
    assert check(Draft(2, "the museum"), passages, QUESTION)[1] == "restates"
    # the words stand where the passage speaks of something else: not where the question's words are
    reopened = [_passage(1, "The museum reopened on Friday, 42 days after the theft.")]
    assert check(Draft(1, "42 days"), reopened, "What did thieves steal from the museum?")[1] == "unsupported"


def test_a_question_naming_what_no_passage_mentions_is_refused(indexed: Settings) -> None:
    passages = [_passage(1, "The central bank cut its main rate to 4.75% on Wednesday.", "Rate cut")]
    assert absent_name("What rate did the Bank of Elbonia set?", passages)
    assert not absent_name("What rate did the central bank set?", passages)
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: 42 coins")
    answer = pipeline.ask("What did the thieves steal from the Grand Elbonian Museum?")
    assert answer.refused and not gen.calls  # the model is not asked


def test_a_rejected_draft_is_tried_again_with_the_reason(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: the museum",
                                      "Source: [1]\nAnswer: 42 Roman gold coins")
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and answer.text.startswith("42 Roman gold coins [") and answer.citations
    assert "42 Roman gold coins" in answer.citations[0].quote
    assert answer.timings["retries"] == 1
    retry = gen.calls[1]
    assert retry[:2] == gen.calls[0][:2]  # the same conversation goes on: the passages are not read again
    assert retry[-2]["role"] == "assistant" and "repeats the question" in retry[-1]["content"]


def test_two_rejected_drafts_end_in_a_refusal(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: the museum",
                                      "Source: [1]\nAnswer: a silver crown")
    answer = pipeline.ask(QUESTION)
    assert answer.refused and answer.text == NO_ANSWER and not answer.citations
    assert len(gen.calls) == 2


def test_the_model_saying_none_is_final(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: none")
    assert pipeline.ask("Which chess player became world champion in 1850?").refused and len(gen.calls) == 1
