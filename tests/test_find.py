"""Find the answer: its words are found, checked and cited before they count."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from rag import NO_ANSWER, Answer, Pipeline, Settings
from rag.answer import (
    REDRAFT,
    REVISED,
    SECOND_READ_GRAMMAR,
    SECOND_READ_PREFIX,
    SECOND_READ_WORDS,
    Draft,
    absent_name,
    answer_pieces,
    answer_steps,
    check,
    number_grammar,
    parse_draft,
    phrase_grammar,
    relation_words,
    restates,
    same_answer,
    widen,
)
from rag.api import build_index
from rag.cite import cite
from rag.context import Passage
from rag.errors import ConfigError
from rag.types import Chunk, Hit

from .conftest import scripted_pipeline
from .fakes import HashEmbedder, PrefillingGenerator, ScriptedGenerator

QUESTION = "What did the thieves steal from the museum?"


def test_the_two_lines_are_parsed_and_only_the_answer_is_streamed() -> None:
    draft = parse_draft("Source: [2]\nAnswer: 42 Roman gold coins")
    assert draft == Draft(2, "42 Roman gold coins") and draft.text == "42 Roman gold coins [2]."
    assert parse_draft("Source: [1]\nAnswer: none").none
    pieces = ["Sou", "rce: [", "2]\nAns", "wer: 42 Roman", " gold coins"]
    assert "".join(answer_pieces(pieces)) == "42 Roman gold coins"
    assert "".join(answer_pieces(["The indexed ", "articles do not answer this question."])) == NO_ANSWER
    # a carriage return the model writes never reaches the reader as the pipeline's REVISED marker
    assert list(answer_pieces(["Source: [1]\nAnswer: 42", REVISED, " coins\r"])) == ["42", "", " coins"]
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


def test_words_only_a_headline_holds_are_pointed_at_the_sentence_that_states_them() -> None:
    """The model reads a headline's first few words; a passage whose full headline happens to hold the words
    does not keep the draft when another passage's sentence states them."""
    head = "Cup final ends in a shoot-out, won by the Harbour City Gulls after extra time"
    passages = [_passage(1, "The cup final was a night to remember for the whole town.", head),
                _passage(2, "Won by the Harbour City Gulls, the final went to penalties.", head)]
    question = "Who won the cup final?"
    assert check(Draft(1, "Harbour City Gulls"), passages, question)[0].number == 2
    assert check(Draft(2, "Harbour City Gulls"), passages, question)[0].number == 2
    alone = [passages[0]]  # no sentence states it: the headline still counts
    assert check(Draft(1, "Harbour City Gulls"), alone, question) == (Draft(1, "Harbour City Gulls"), None)
    # words the model did read, in the headline's first words, keep the passage it named
    seen = [_passage(1, "Fans celebrated in the streets all night.", "Harbour City Gulls win cup final"),
            _passage(2, "Harbour City hosted the cup final, which was won on penalties.", "Final")]
    assert check(Draft(1, "Harbour City Gulls"), seen, question) == (Draft(1, "Harbour City Gulls"), None)


def test_of_the_passages_holding_the_words_one_that_speaks_of_what_is_asked_is_cited() -> None:
    question = "Who founded the Harbour Trust?"
    passages = [_passage(1, "Maria Olsen opened the new pier on Friday.", "Pier"),
                _passage(2, "Maria Olsen, the founder of the Harbour Trust, thanked the town.", "Trust"),
                _passage(3, "The Harbour Trust was founded to look after the old docks.", "Trust")]
    assert check(Draft(3, "Maria Olsen"), passages, question)[0].number == 2
    both = [replace(passages[2], number=1), _passage(2, "Maria Olsen founded the Harbour Trust in 1990.", "Trust"),
            replace(passages[1], number=3)]
    assert check(Draft(1, "Maria Olsen"), both, question)[0].number == 2  # two speak of it: the first


def test_a_passage_that_says_nothing_of_what_is_asked_does_not_answer_it() -> None:
    chair = [_passage(1, "Maria Olsen, who chairs the Harbour Trust, opened the new pier on Friday.", "Pier")]
    assert relation_words("Who founded the Harbour Trust this week?") == ["found"]  # names and time words left out
    assert check(Draft(1, "Maria Olsen"), chair, "Who founded the Harbour Trust?")[1] == "unrelated"
    founder = [_passage(1, "Maria Olsen, the founder of the Harbour Trust, opened the new pier on Friday.", "Pier")]
    assert check(Draft(1, "Maria Olsen"), founder, "Who founded the Harbour Trust?")[1] is None  # founder ~ founded
    assert check(Draft(1, "Maria Olsen"), chair, "Who opened the pier?")[1] is None


def test_widening_keeps_names_that_read_like_another_languages_month() -> None:
    assert widen("Clinic", "Doctors at the Mayo Clinic said so.") == "Mayo Clinic"
    assert widen("Iglesias", "The singer Julio Iglesias sang.") == "Julio Iglesias"


def test_a_second_read_of_the_passage_alone_must_find_an_answer(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0),
                                      "Source: [1]\nAnswer: 42 Roman gold coins", "Answer: none",
                                      "Source: [1]\nAnswer: none")
    answer = pipeline.ask(QUESTION)
    assert answer.refused and answer.text == NO_ANSWER and len(gen.calls) == 3
    second = gen.calls[1]
    assert len(second) == 1 and QUESTION in second[0]["content"] and "gold coins" in second[0]["content"]
    assert "[1]" not in second[0]["content"]  # one passage, no numbers to confuse it
    assert gen.grammars[1] == SECOND_READ_GRAMMAR
    # the retry asks afresh over the other passages: the one the second read found nothing in is gone
    first, again = gen.calls[0][-1]["content"], gen.calls[2][-1]["content"]
    assert [m["role"] for m in gen.calls[2]] == ["system", "user"]
    rejected = next(line for line in first.splitlines() if line.startswith("[1] "))[4:]
    assert again.count("\n[") == first.count("\n[") - 1 and rejected not in again
    confirmed, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0),
                                       "Source: [1]\nAnswer: 42 Roman gold coins", "Answer: 42 gold coins")
    assert not confirmed.ask(QUESTION).refused and len(gen.calls) == 2
    unread, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0, second_read="off"),
                                    "Source: [1]\nAnswer: 42 Roman gold coins")
    assert not unread.ask(QUESTION).refused and len(gen.calls) == 1


def test_with_agree_the_second_read_must_name_the_same_thing(indexed: Settings) -> None:
    settings = indexed.replace(min_dense_score=0.0, second_read="agree")
    pipeline, gen = scripted_pipeline(settings, "Source: [1]\nAnswer: 42 Roman gold coins", "Answer: a silver crown",
                                      "Source: [1]\nAnswer: none")
    assert pipeline.ask(QUESTION).refused and [m["role"] for m in gen.calls[2]] == ["system", "user"]
    pipeline, gen = scripted_pipeline(settings, "Source: [1]\nAnswer: 42 Roman gold coins", "Answer: gold coins")
    assert not pipeline.ask(QUESTION).refused
    assert same_answer("the United Kingdom", "Answer: UK", "Which country?")
    assert not same_answer("2 million", "1.5 million", "How many were recalled?")  # a shared word, not a number
    assert same_answer("HK$263", "263 Hong Kong dollars", "At what price?")


def test_the_second_read_setting_is_checked() -> None:
    assert Settings.from_env({"RAG_SECOND_READ": "agree"}).second_read == "agree"
    with pytest.raises(ConfigError, match="second_read"):
        Settings.from_env({"RAG_SECOND_READ": "maybe"})


def test_a_question_naming_what_no_passage_mentions_is_refused(indexed: Settings) -> None:
    passages = [_passage(1, "The central bank cut its main rate to 4.75% on Wednesday.", "Rate cut")]
    assert absent_name("What rate did the Bank of Elbonia set?", passages)
    assert not absent_name("What rate did the central bank set?", passages)
    # "US" is "U.S." in the article; a name in the passage's chunk counts even where the shown sentence lacks it
    text = "Harbour Bank was fined 3 million dollars by U.S. regulators. The fine was announced on Monday."
    hit = Hit(chunk=Chunk("b1-000", "b1", text, 0, len(text)), score=1.0, rank=1, title="Fines", source="b1.txt")
    shown_second = [Passage(1, hit, ((text.index("The fine"), len(text)),))]
    assert not absent_name("How much did US regulators fine Harbour Bank?", shown_second)
    assert absent_name("How much did US regulators fine Elbonia Bank?", shown_second)
    # an abbreviation is often spelt out, and "-funded" or "-based" is not part of a name
    base = [_passage(1, "The governor opened a European Space Agency observatory in Elbonia on Friday.", "Parks")]
    assert not absent_name("Which ESA-funded observatory did the governor open in Elbonia?", base)
    assert not absent_name("Which Elbonia-based governor opened the observatory?", base)
    assert absent_name("Which ESA-funded observatory did the governor open in Freedonia?", base)
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: 42 coins")
    answer = pipeline.ask("What did the thieves steal from the Grand Elbonian Museum?")
    assert answer.refused and not gen.calls and answer.rejected == ("absent-name",)  # the model is not asked


def test_a_rejected_draft_is_tried_again_with_the_reason(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: the museum",
                                      "Source: [1]\nAnswer: 42 Roman gold coins")
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and answer.text.startswith("42 Roman gold coins [") and answer.citations
    assert "42 Roman gold coins" in answer.citations[0].quote
    assert answer.timings["retries"] == 1 and answer.to_dict()["rejected"] == ["restates"]
    retry = gen.calls[1]
    assert retry[:2] == gen.calls[0][:2]  # the same conversation goes on: the passages are not read again
    assert retry[-2]["role"] == "assistant" and "repeats the question" in retry[-1]["content"]


def test_two_rejected_drafts_end_in_a_refusal(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0), "Source: [1]\nAnswer: the museum",
                                      "Source: [1]\nAnswer: a silver crown")
    answer = pipeline.ask(QUESTION)
    assert answer.refused and answer.text == NO_ANSWER and not answer.citations
    assert len(gen.calls) == 2 and answer.rejected == ("restates", "absent")


def test_the_model_saying_none_is_final(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0, rescue_reads=0),
                                      "Source: [1]\nAnswer: none")
    assert pipeline.ask("Which chess player became world champion in 1850?").refused and len(gen.calls) == 1


def test_none_is_checked_by_reading_the_best_passages_alone(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0, rescue_reads=2),
                                      "Source: [1]\nAnswer: none", "Answer: 42 Roman gold coins")
    answer = pipeline.ask(QUESTION)
    assert not answer.refused and answer.text.startswith("42 Roman gold coins [") and answer.rejected == ("none",)
    assert "42 Roman gold coins" in answer.citations[0].quote
    alone = gen.calls[1]
    assert len(alone) == 1 and QUESTION in alone[0]["content"] and "[1]" not in alone[0]["content"]
    # words the passage read alone does not hold are checked like any draft, and the next best one is read
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.0, rescue_reads=2),
                                      "Source: [1]\nAnswer: none", "Answer: a silver crown", "Answer: none")
    answer = pipeline.ask(QUESTION)
    assert answer.refused and answer.text == NO_ANSWER and len(gen.calls) == 3


def test_found_words_are_widened_to_the_whole_name_or_amount() -> None:
    text = ("The Harbour City Gulls beat Elbonia's Port Rovers 3-1. After Gulls scored, ticket sales raised "
            "$4.2 million from 4 sponsors, 12% more than in March. The town's Mayor Ana Ruiz said 2,000 seats would "
            "be added.")
    assert widen("Gulls", text) == "Harbour City Gulls"  # the first "Gulls"; "The" is no part of the name
    assert widen("Rovers", text) == "Port Rovers"  # a possessive names another thing: "Elbonia's" stays out
    assert widen("Ruiz", text) == "Mayor Ana Ruiz" and widen("2,000", text) == "2,000"
    assert widen("4.2", text) == "$4.2 million" and widen("12", text) == "12%"
    assert widen("4", text) == "4"  # "4 sponsors", not the 4 of "$4.2"
    assert widen("2", "Seats cost $2,000 for 2 people.") == "2" and widen("7.5", "was 7.5 percent") == "7.5 percent"
    # never on to the right, where the next capitals are often another name
    assert widen("Harbour City", text) == "Harbour City"
    assert widen("Elbonia", "in Elbonia Mayor Ana Ruiz said") == "Elbonia"
    # a quote or bracket opens the name; a day, or a word opening a sentence, is no part of it
    assert widen("Gulls", "Fans said “Harbour City Gulls” won") == "Harbour City Gulls"
    assert widen("Gulls", "(Harbour City Gulls) won") == "Harbour City Gulls"
    assert widen("Gulls", "On Tuesday Gulls won the cup.") == "Gulls"
    assert widen("Ruiz", "Ana Ruiz spoke. She said so.") == "Ruiz"  # "Ana" opens the sentence
    assert widen("Martin", "Selon Éric Martin, le pont est fermé.") == "Éric Martin"
    # words that do not stand in the text as they are come back unchanged, and so does lowercase
    assert widen("Gull", text) == "Gull" and widen("the crowd", text) == "the crowd"


def test_a_year_or_a_day_found_alone_is_widened_to_the_whole_date_written_around_it() -> None:
    text = ("The bridge opened in June 2019, two years late. The ferry restarted on May 4, 2021 and the tram on "
            "12 March 2022. Elle a rouvert le 4 mai 2023. Fares may 2024 rise, they may.")
    assert widen("2019", text) == "June 2019" and widen("2021", text) == "May 4, 2021"
    assert widen("2022", text) == "12 March 2022" and widen("2023", text) == "4 mai 2023"
    assert widen("May 4", text) == "May 4, 2021" and widen("12 March", text) == "12 March 2022"
    assert widen("June", text) == "June 2019"
    # "may" is a verb when it is not capitalised; a year with no month before it stays as it is
    assert widen("2024", text) == "2024" and widen("2025", "Work ends in 2025.") == "2025"
    assert widen("Mars", "The probe reached Mars, 2021 was its year.") == "Mars"  # the planet, not "mars"
    assert widen("May", "Fares may 2024 rise.") == "May"  # a month as the passage writes it, not as the model did
    # not across a sentence's end, not a season, not a name ending in a month's name, not day 45
    assert widen("2019", "It shut in March. 2019 was quiet.") == "2019"
    assert widen("March", "It opened in March 2019-20 season.") == "March"
    assert widen("Ana May", "The singer Ana May, 2016 winner, sang.") == "Ana May"
    assert widen("March 45", "It was March 45, 2019 in the game.") == "March 45"
    assert widen("2019", "It opened on Sept. 4, 2019.") == "Sept. 4, 2019"
    assert widen("March 4", "It opened on March 4, 20215 times") == "March 4"  # no year, but a longer number


def test_the_answer_names_the_whole_name_the_passage_gives(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed.replace(min_dense_score=0.0, second_read="off"),
                                    "Source: [1]\nAnswer: Nepomniachtchi")
    answer = pipeline.ask("Whom did the new chess champion beat in the tiebreak games?")
    assert not answer.refused and answer.text.startswith("Ian Nepomniachtchi [")
    assert "Ian Nepomniachtchi" in answer.citations[0].quote


def test_a_model_that_writes_on_from_a_prefix_writes_only_the_number_and_the_words(indexed: Settings) -> None:
    """The fixed words of the reply are given to the local model, not written by it token by token."""
    gen = PrefillingGenerator(["Source: [1]\nAnswer: the museum", "Source: [1]\nAnswer: 42 Roman gold coins"])
    pipeline = Pipeline(indexed.replace(min_dense_score=0.0, second_read="off"), embedder=HashEmbedder(),
                        generator=gen)
    events = list(pipeline.stream(QUESTION))
    answer = events[-1]
    assert isinstance(answer, Answer) and not answer.refused
    assert answer.text.startswith("42 Roman gold coins [1]")  # after one retry
    assert gen.prefixes == ["Source: [", "Source: [1]\nAnswer:"] * 2
    n = len(re.findall(r"^\[\d+\]", gen.calls[0][-1]["content"], flags=re.M))
    assert gen.grammars == [number_grammar(n), phrase_grammar()] * 2 and n > 0
    shown = "".join(e for e in events if isinstance(e, str))
    assert "Source" not in shown and "42 Roman gold coins" in shown  # the reader sees the words only
    retry = gen.calls[1]
    assert retry[-2] == {"role": "assistant", "content": "Source: [1]\nAnswer: the museum"}


def test_a_model_that_writes_on_from_a_prefix_is_handed_the_second_reads_answer_word(indexed: Settings) -> None:
    """The second read's "Answer:" is given too; its "none" still refuses, and its words still confirm."""
    settings = indexed.replace(min_dense_score=0.0)
    gen = PrefillingGenerator(["Source: [1]\nAnswer: 42 Roman gold coins", "Answer: none",
                               "Source: [1]\nAnswer: none"])
    pipeline = Pipeline(settings, embedder=HashEmbedder(), generator=gen)
    assert pipeline.ask(QUESTION).refused
    assert gen.prefixes[2] == SECOND_READ_PREFIX and gen.grammars[2] == SECOND_READ_WORDS
    assert len(gen.calls[1]) == 1 and "gold coins" in gen.calls[1][0]["content"]  # the passage alone
    gen = PrefillingGenerator(["Source: [1]\nAnswer: 42 Roman gold coins", "Answer: gold coins"])
    pipeline = Pipeline(settings.replace(second_read="agree"), embedder=HashEmbedder(), generator=gen)
    assert not pipeline.ask(QUESTION).refused and gen.prefixes == ["Source: [", "Source: [1]\nAnswer:", "Answer:"]


def _dated(number: int, text: str, published: str) -> Passage:
    hit = Hit(chunk=Chunk(f"b{number}-000", f"b{number}", text, 0, len(text)), score=1.0, rank=number,
              title="Music news", source=f"b{number}.txt", published=published)
    return Passage(number, hit, ((0, len(text)),))


BANDS = [_dated(1, "The band Harbour Lights announced a reunion tour and a new single on Tuesday.", "2024-05-29"),
         _dated(2, "The band Quay Rovers announced a reunion tour in a video.", "2019-11-11")]
ASKED_ON = dt.date(2024, 6, 1)


def test_an_answer_about_the_present_from_an_old_article_is_stale_when_a_recent_one_is_shown() -> None:
    question = "Which band announced a reunion tour this week?"
    assert check(Draft(2, "Quay Rovers"), BANDS, question, as_of=ASKED_ON)[1] == "stale"
    assert check(Draft(1, "Harbour Lights"), BANDS, question, as_of=ASKED_ON)[1] is None
    assert check(Draft(2, "Quay Rovers"), BANDS, question, as_of=ASKED_ON, window_days=5000)[1] is None
    # a question that names its year, or does not speak of the present: an old article may answer it
    assert check(Draft(2, "Quay Rovers"), BANDS, "Which band announced a reunion tour this week in 2019?",
                 as_of=ASKED_ON)[1] is None
    assert check(Draft(2, "Quay Rovers"), BANDS, "Which band announced a reunion tour in a video?",
                 as_of=ASKED_ON)[1] is None
    # nothing recent shown (an old corpus asked about "this week"): the old article is all there is
    assert check(Draft(2, "Quay Rovers"), BANDS[1:], question, as_of=ASKED_ON)[1] is None
    # and a recent passage on another topic does not count as one
    flood = _dated(3, "The river flooded the harbour road on Thursday.", "2024-05-31")
    assert check(Draft(2, "Quay Rovers"), [BANDS[1], flood], question, as_of=ASKED_ON)[1] is None


def test_a_stale_draft_is_tried_again_with_the_dates() -> None:
    question = "Which band announced a reunion tour this week?"
    gen = ScriptedGenerator(["Source: [2]\nAnswer: Quay Rovers", "Source: [1]\nAnswer: Harbour Lights"])
    steps = answer_steps(gen, [{"role": "user", "content": question}], BANDS, question, no_answer=NO_ANSWER,
                         max_tokens=40, min_support=0.5, as_of=ASKED_ON)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            outcome = done.value
            break
    assert outcome.text.startswith("Harbour Lights [1]") and outcome.rejected == ("stale",)
    hint = gen.calls[1][-1]["content"]
    assert "[2]" in hint and "11 November 2019" in hint and "1 June 2024" in hint


def test_a_name_is_found_in_its_initials() -> None:
    passages = [_passage(1, "Ana Ruiz becomes the F.S.E.'s new prime minister after the vote.")]
    question = "Ana Ruiz became the new prime minister of which country this week?"
    draft, reason = check(Draft(1, "the Federated States of Elbonia"), passages, question)
    assert reason is None and draft.number == 1
    _, _, citations, refused = cite("The Federated States of Elbonia [1].", passages, question=question,
                                    found=True)
    assert not refused and "F.S.E." in citations[0].quote
    assert check(Draft(1, "the Free State of Freedonia"), passages, question)[1] == "absent"
    # bare capitals are too often something else: "AI" holds no "Amy Irving", "AR-15" no "Ana Ruiz"
    lab = [_passage(1, "The AI lab named a new chief after police seized an AR-15 rifle at the museum.")]
    assert check(Draft(1, "Amy Irving"), lab, "Who did the lab name as its chief?")[1] == "absent"
    assert cite("Ana Ruiz [1].", lab, question="Who bought the rifle?", found=True)[3]


def test_a_statement_s_source_need_not_be_in_the_articles() -> None:
    passages = [_passage(1, "Updated boosters will be ready next month, the health adviser said.")]
    assert not absent_name("The Harbour Council said new boosters are coming. When will they be ready?", passages)
    assert not absent_name("The Bank of Elbonia said boosters are coming. When will they be ready?", passages)
    # a name in the question proper is what it asks about, whatever the verb
    assert absent_name("When will the Harbour Council's new boosters be ready?", passages)
    assert absent_name("When will boosters be ready, according to the Harbour Council?", passages)
    assert absent_name("How many boosters has the Harbour Council reported this week?", passages)


def test_a_copied_sentence_is_not_an_answer() -> None:
    passages = [_passage(1, "Police said thieves stole 42 Roman gold coins from the museum in a night raid on "
                            "Tuesday, using a ladder and a van.")]
    sentence = "Thieves stole 42 Roman gold coins from the museum in a night raid on Tuesday"
    assert check(Draft(1, sentence), passages, QUESTION)[1] == "long"
    assert check(Draft(1, "42 Roman gold coins"), passages, QUESTION)[1] is None


def _outcome(steps):  # type: ignore[no-untyped-def]
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _shown(passages: Sequence[Passage]) -> list[dict[str, str]]:
    from rag.context import format_passages

    return [{"role": "user", "content": format_passages(passages)}]


def test_a_draft_whose_passage_fails_is_asked_afresh_without_that_passage() -> None:
    question = "Which band announced a reunion tour?"
    passages = [*BANDS, _dated(3, "The band Pier Nine announced a reunion tour on Monday.", "2024-05-27")]
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Harbour Lights", "Answer: none",
                             "Source: [2]\nAnswer: Pier Nine", "Answer: Pier Nine"])
    outcome = _outcome(answer_steps(gen, _shown(passages), passages, question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, second_read=lambda p: _shown([p]), reask=_shown))
    assert outcome.rejected == ("unconfirmed",) and outcome.text.startswith("Pier Nine [2]")
    assert gen.calls[3] == _shown([replace(passages[2], number=2)])  # the retried draft's passage, read alone
    again = gen.calls[2]
    assert len(again) == 1 and "Harbour Lights" not in again[0]["content"]  # a fresh ask, not a conversation
    assert "[1] The band Quay Rovers" in again[0]["content"] and "[2] The band Pier Nine" in again[0]["content"]
    assert outcome.citations[0].quote.startswith("The band Pier Nine")  # cited by the new numbers
    # asked afresh, the draft must name what the second read names: found elsewhere is not enough
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Harbour Lights", "Answer: none",
                             "Source: [2]\nAnswer: Pier Nine", "Answer: a farewell concert"])
    outcome = _outcome(answer_steps(gen, _shown(passages), passages, question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, second_read=lambda p: _shown([p]), reask=_shown))
    assert outcome.refused and outcome.rejected == ("unconfirmed", "unconfirmed")
    # the same draft, rejected for its words rather than its passage, is coached in the same conversation
    gen = ScriptedGenerator(["Source: [1]\nAnswer: the band", "Source: [1]\nAnswer: Harbour Lights"])
    outcome = _outcome(answer_steps(gen, _shown(passages), passages, question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, reask=_shown))
    assert outcome.rejected == ("restates",) and "only repeats the question" in gen.calls[1][-1]["content"]


def test_a_stale_draft_is_asked_afresh_over_the_recent_passages_only() -> None:
    question = "Which band announced a reunion tour this week?"
    passages = [*BANDS, _dated(3, "The band Pier Nine announced a reunion tour in 2015.", "2015-03-02")]
    gen = ScriptedGenerator(["Source: [2]\nAnswer: Quay Rovers", "Source: [1]\nAnswer: Harbour Lights"])
    outcome = _outcome(answer_steps(gen, _shown(passages), passages, question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, as_of=ASKED_ON, reask=_shown))
    assert outcome.rejected == ("stale",) and outcome.text.startswith("Harbour Lights [1]")
    again = gen.calls[1][0]["content"]
    assert "Harbour Lights" in again and "Quay Rovers" not in again and "Pier Nine" not in again
    # nothing left to ask over: refused without another call
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Harbour Lights", "Answer: none"])
    outcome = _outcome(answer_steps(gen, _shown(BANDS[:1]), BANDS[:1], question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, second_read=lambda p: _shown([p]), reask=_shown))
    assert outcome.refused and outcome.rejected == ("unconfirmed",) and len(gen.calls) == 2


FERRY = [_passage(1, "The Gullwing, the harbour's new ferry, seats 48 riders and has 12 cycle racks.", "Ferry news"),
         _passage(2, "A single crossing on the Gullwing costs 3.40 euros; children ride free.", "Ferry news")]


@pytest.mark.parametrize("question, money", [
    ("How much does a single crossing on the Gullwing cost?", True),
    ("What is the price of a day pass for the Gullwing?", True),
    ("How much was the ferry company fined?", True),
    ("Combien coûte la traversée du Gullwing ?", True),
    ("Wie viel kostet eine Fahrt mit der Gullwing?", True),
    ("¿Cuánto cuesta un viaje en el Gullwing?", True),
    ("Gullwing渡轮的票价是多少？", True),
    ("How many passengers does the Gullwing carry?", False),
    ("Combien de passagers le Gullwing transporte-t-il ?", False),
    ("Wie viele Fahrgäste passen auf die Gullwing?", False),
    ("¿Cuántos pasajeros lleva el Gullwing?", False),
    ("Which company paid for the Gullwing?", False),
    ("How much did ferry fares rise this year?", False),  # a change: a share or a difference answers it
])
def test_a_question_asking_what_something_costs_is_told_apart(question: str, money: bool) -> None:
    from rag.kinds import asks_money

    assert asks_money(question) is money


def test_a_price_question_wants_an_amount_of_money_not_another_number() -> None:
    question = "How much does a single crossing on the Gullwing cost?"
    assert check(Draft(1, "48 riders and 12 cycle racks"), FERRY, question)[1] == "kind"
    assert check(Draft(1, "48"), FERRY, question)[1] == "kind"
    assert check(Draft(1, "48 euros"), FERRY, question)[1] == "kind"  # a currency the passage does not give
    assert check(Draft(2, "3.40"), FERRY, question)[1] is None  # the currency stands just after the words
    assert check(Draft(2, "3.40 euros"), FERRY, question)[1] is None
    assert check(Draft(1, "48"), FERRY, "How many riders does the Gullwing seat?")[1] is None
    faehre = [_passage(1, "Die Gullwing hat 48 Sitze und 12 Radstellplätze.", "Fähre"),
              _passage(2, "Eine Fahrt mit der Gullwing kostet 3,40 Euro.", "Fähre")]  # another language
    assert check(Draft(1, "48 Sitze"), faehre, question, foreign={1, 2})[1] == "kind"
    assert check(Draft(2, "3,40"), faehre, question, foreign={1, 2})[1] is None
    assert check(Draft(2, "3.40 euros"), faehre, question, foreign={1, 2})[1] is None  # written another way
    assert check(Draft(1, "48 euros"), faehre, question, foreign={1, 2})[1] == "kind"
    # rejected, the words are coached in the same conversation, and a "none" then refuses
    gen = ScriptedGenerator(["Source: [1]\nAnswer: 48 riders", "Source: [1]\nAnswer: none"])
    outcome = _outcome(answer_steps(gen, _shown(FERRY[:1]), FERRY[:1], question, no_answer=NO_ANSWER,
                                    max_tokens=40, min_support=0.5, reask=_shown))
    assert outcome.refused and outcome.rejected == ("kind",)
    assert "not an amount of money" in gen.calls[1][-1]["content"]
    gen = ScriptedGenerator(["Source: [1]\nAnswer: 48 riders", "Source: [2]\nAnswer: 3.40 euros"])
    outcome = _outcome(answer_steps(gen, _shown(FERRY), FERRY, question, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5))
    assert not outcome.refused and outcome.text.startswith("3.40 euros [2]")


FILMS = [_passage(1, "Mara Quill played the lead role in the film Harbour Nights, which opened in May.", "Film news"),
         _passage(2, "Harbour Nights star Mara Quill thanked the crew at the premiere of the film.", "Film news"),
         _passage(3, "Ivo Penn played the lead role in the film Dock Lights, a thriller.", "Film news")]
FILM_QUESTION = "Who played the lead role in the film Harbour Nights?"


def _film_steps(gen: ScriptedGenerator, top_read: str = "held"):  # type: ignore[no-untyped-def]
    return answer_steps(gen, _shown(FILMS), FILMS, FILM_QUESTION, no_answer=NO_ANSWER, max_tokens=40,
                        min_support=0.5, second_read=lambda p: _shown([p]), top_read=top_read)


def test_an_answer_from_a_lower_ranked_article_is_checked_against_the_best_ranked_one_read_alone() -> None:
    # the model picks the right words of the wrong film; its own passage, read alone, confirms them
    replies = ["Source: [3]\nAnswer: Ivo Penn", "Answer: Ivo Penn", "Answer: Mara Quill"]
    gen = ScriptedGenerator(replies)
    pieces = list(_film_steps(gen))
    outcome = _outcome(_film_steps(ScriptedGenerator(replies)))
    assert outcome.text.startswith("Mara Quill [1]") and not outcome.refused
    assert outcome.citations[0].quote.startswith("Mara Quill played") and outcome.rejected == ("outread",)
    assert gen.calls[2] == _shown([FILMS[0]])  # the best-ranked article's passage, read alone
    assert REVISED in pieces and REDRAFT not in pieces  # the reader sees it corrected, with no second try
    assert "".join(pieces).endswith("Mara Quill [1].")


@pytest.mark.parametrize("top", ["Answer: none", "Answer: Ivo Penn"])
def test_the_answer_stays_when_the_best_ranked_article_finds_nothing_else(top: str) -> None:
    gen = ScriptedGenerator(["Source: [3]\nAnswer: Ivo Penn", "Answer: Ivo Penn", top])
    outcome = _outcome(_film_steps(gen))
    assert outcome.text.startswith("Ivo Penn [3]") and outcome.rejected == () and len(gen.calls) == 3
    # off: no third read
    gen = ScriptedGenerator(["Source: [3]\nAnswer: Ivo Penn", "Answer: Ivo Penn"])
    assert _outcome(_film_steps(gen, "off")).text.startswith("Ivo Penn [3]") and len(gen.calls) == 2


def test_an_answer_from_the_best_ranked_article_is_not_read_again() -> None:
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Mara Quill", "Answer: Mara Quill"])
    outcome = _outcome(_film_steps(gen))
    assert outcome.text.startswith("Mara Quill [1]") and len(gen.calls) == 2


def test_an_answer_from_the_best_ranked_articles_lower_ranked_chunk_is_not_read_again() -> None:
    # the lead article's extra chunk ranks below the other articles, but it is the best-ranked article's own
    extra = replace(FILMS[2], hit=replace(FILMS[2].hit, chunk=replace(FILMS[2].hit.chunk, article_id="a1"),
                                          rank=6))
    passages = [FILMS[0], FILMS[1], extra]
    gen = ScriptedGenerator(["Source: [3]\nAnswer: Ivo Penn", "Answer: Ivo Penn"])
    outcome = _outcome(answer_steps(gen, _shown(passages), passages, FILM_QUESTION, no_answer=NO_ANSWER,
                                    max_tokens=40, min_support=0.5, second_read=lambda p: _shown([p]),
                                    top_read="held"))
    assert outcome.text.startswith("Ivo Penn [3]") and len(gen.calls) == 2


def test_a_reply_not_in_the_two_line_form_gets_no_top_read() -> None:
    gen = ScriptedGenerator(["Ivo Penn played the lead role in the film Dock Lights [3]."])
    outcome = _outcome(_film_steps(gen))
    assert len(gen.calls) == 1 and outcome.text.startswith("Ivo Penn played")


def test_the_best_ranked_articles_answer_must_be_held_by_more_articles_than_the_drafts() -> None:
    two = [FILMS[0], replace(FILMS[2], number=2)]  # one article for each answer: no more support for either
    gen = ScriptedGenerator(["Source: [2]\nAnswer: Ivo Penn", "Answer: Ivo Penn", "Answer: Mara Quill"])
    outcome = _outcome(answer_steps(gen, _shown(two), two, FILM_QUESTION, no_answer=NO_ANSWER, max_tokens=40,
                                    min_support=0.5, second_read=lambda p: _shown([p]), top_read="held"))
    assert outcome.text.startswith("Ivo Penn [2]") and len(gen.calls) == 3


def test_the_top_read_setting_is_checked() -> None:
    assert Settings().top_read == "held" and Settings.from_env({"RAG_TOP_READ": "off"}).top_read == "off"
    with pytest.raises(ConfigError, match="top_read"):
        Settings(top_read="vote")


CAST = [_passage(1, "Dock Lights star Ivo Penn will play the ferry captain in the sequel, Harbour Nights.", "Casting"),
        _passage(2, "The sequel Harbour Nights starts filming in the spring.", "Casting"),
        _passage(3, "Ivo Penn said the ferry captain was the part he had waited for.", "Interview")]
CAST_QUESTION = "Who will play the ferry captain in Harbour Nights?"


def _cast_steps(gen: ScriptedGenerator, *, held: bool = True, passages: Sequence[Passage] = CAST
                ):  # type: ignore[no-untyped-def]
    return answer_steps(gen, _shown(passages), passages, CAST_QUESTION, no_answer=NO_ANSWER, max_tokens=40,
                        min_support=0.5, second_read=lambda p: _shown([p]), held=held)


def test_with_held_the_second_reads_other_answer_replaces_the_drafts_words_more_articles_hold() -> None:
    # the model copies the first capitalised words (another film's title); read alone, the passage gives the
    # actor, whom two articles name where one names the film
    replies = ["Source: [1]\nAnswer: Dock Lights", "Answer: Ivo Penn"]
    pieces = list(_cast_steps(ScriptedGenerator(replies)))
    gen = ScriptedGenerator(replies)
    outcome = _outcome(_cast_steps(gen))
    assert outcome.text.startswith("Ivo Penn [1]") and not outcome.refused and outcome.rejected == ("reread",)
    assert outcome.citations[0].quote.startswith("Dock Lights star Ivo Penn") and len(gen.calls) == 2
    assert REVISED in pieces and REDRAFT not in pieces  # the reader sees it corrected, with no second try
    assert "".join(pieces).endswith("Ivo Penn [1].")
    # without held ("found"), a second read that finds some answer keeps the draft's words
    assert _outcome(_cast_steps(ScriptedGenerator(replies), held=False)).text.startswith("Dock Lights [1]")


def test_with_held_the_draft_stays_when_no_more_articles_hold_the_second_reads_words() -> None:
    # one article each (the read may name the final's loser where the draft named the winner): the draft stays
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Dock Lights", "Answer: Ivo Penn"])
    outcome = _outcome(_cast_steps(gen, passages=CAST[:2]))
    assert outcome.text.startswith("Dock Lights [1]") and outcome.rejected == () and len(gen.calls) == 2


@pytest.mark.parametrize("again", ["Answer: Tova Lind", "Answer: Harbour Nights", "Answer: Ivo Penn, Dock Lights star"])
def test_with_held_the_draft_stays_when_the_second_reads_words_fail_the_checks(again: str) -> None:
    # words no passage holds, words that only repeat the question; and words the draft already names agree
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Dock Lights", again])
    outcome = _outcome(_cast_steps(gen))
    assert outcome.text.startswith("Dock Lights [1]") and outcome.rejected == () and len(gen.calls) == 2


def test_the_held_setting_is_the_default_and_reaches_the_answer_step(articles_dir: Path, settings: Settings) -> None:
    (articles_dir / "006_coins.txt").write_text(
        "Coin collectors mourn the museum hoard\n\nCollectors said the 42 Roman gold coins the thieves took from "
        "the museum were the pride of the town.", encoding="utf-8")
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    assert Settings().second_read == "held"
    for mode, rejected in (("held", ("reread",)), ("found", ())):
        pipeline, gen = scripted_pipeline(settings.replace(min_dense_score=0.0, second_read=mode),
                                          "Source: [1]\nAnswer: the regional history museum",
                                          "Answer: 42 Roman gold coins")
        answer = pipeline.ask(QUESTION)
        assert answer.rejected == rejected and not answer.refused
        assert answer.text.startswith("42 Roman gold coins [" if rejected else "The regional history museum [")
        assert "retries" not in answer.timings  # the read's words took the place of a draft that passed: no retry


CUP = [_passage(1, "Tova Lind won the Harbour Cup in 2023, beating Ivo Penn in the final.", "Harbour Cup 2023"),
       _passage(2, "Mara Quill won the Harbour Cup on Sunday, her first title.", "Quill takes the Harbour Cup")]


def test_a_passage_naming_only_other_years_than_the_one_asked_about_does_not_answer_it() -> None:
    question = "Who won the Harbour Cup in 2024?"
    assert check(Draft(1, "Tova Lind"), CUP, question, years=True)[1] == "year"  # last year's final
    assert check(Draft(1, "Tova Lind"), CUP, "Who won the Harbour Cup in 2023?", years=True)[1] is None
    assert check(Draft(1, "Tova Lind"), CUP, "Who won the Harbour Cup?", years=True)[1] is None  # no year asked
    assert check(Draft(2, "Mara Quill"), CUP, question, years=True)[1] is None  # names no year: it may be this one's
    # an article published in the year asked about tells of it, whatever years it also names
    dated = [replace(CUP[0], hit=replace(CUP[0].hit, published="2024-05-02"))]
    assert check(Draft(1, "Tova Lind"), dated, question, years=True)[1] is None
    # two years asked (a season "2022-23" names both): no rule
    assert check(Draft(1, "Tova Lind"), CUP, "Who won the Harbour Cup in 2022 and in 2024?", years=True)[1] is None
    assert check(Draft(1, "Tova Lind"), CUP, "Who won the 2022-23 Harbour Cup?", years=True)[1] is None


def test_years_are_read_as_written_in_figures_in_any_script() -> None:
    from rag.answer import asked_years, named_years

    assert named_years("the 2024 final, and 2023年的决赛") == {2024, 2023}
    assert named_years("Q3 2019 revenue") == {2019}
    assert named_years("the 2019-20 season, the 1999/2000 one") == {2019, 2020, 1999, 2000}
    assert named_years("every year from 2019-2022") == {2019, 2020, 2021, 2022}
    assert named_years("published 2021-05-02, or 2010-11-05") == {2021, 2010}
    assert named_years("1,999 seats, A2021 road, 20245 fans, 12.2019, $2000") == set()
    # a year that ends a name is no time asked about: the Harbour Games 2020 may be held in 2021
    assert asked_years("How many medals did the hosts win at the Harbour Games 2020?") == set()
    assert asked_years("Who won the Harbour Cup in September 2024?") == {2024}
    assert asked_years("In 2023, who won the 2023 Harbour Cup?") == {2023}


def test_a_passage_of_another_year_still_answers_when_it_tells_of_the_year_asked() -> None:
    question = "Who won the Harbour Cup in 2023?"
    def dated(text: str, published: str) -> list[Passage]:
        passage = _passage(1, text, "Harbour Cup")
        return [replace(passage, hit=replace(passage.hit, published=published))]

    assert check(Draft(1, "Tova Lind"), dated("Tova Lind won every Harbour Cup from 2019-2024.", "2025-01-02"),
                 question, years=True)[1] is None  # a span names every year in it
    last = "Tova Lind, who won the Harbour Cup last year, opened the 2024 season."
    assert check(Draft(1, "Tova Lind"), dated(last, "2024-03-01"), question, years=True)[1] is None
    assert check(Draft(1, "Tova Lind"), dated(last, "2025-03-01"), question, years=True)[1] == "year"  # 2024
    ahead = "Tova Lind, who won the Harbour Cup trials, will race next year, the club said in its 2022 report."
    assert check(Draft(1, "Tova Lind"), dated(ahead, "2022-11-30"), question, years=True)[1] is None
    cut = [_passage(1, "Harbour Steel cut 2,000 jobs in 2023, the union said.", "Jobs")]
    assert check(Draft(1, "Harbour Steel"), cut, "Which company cut 2000 jobs?", years=True)[1] is None
    assert check(Draft(1, "Harbour Steel"), cut, "Which company cut 500 jobs in 2021?", years=True)[1] == "year"


def test_a_draft_from_another_years_passage_is_asked_afresh_without_it() -> None:
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Tova Lind", "Source: [1]\nAnswer: Mara Quill"])
    outcome = _outcome(answer_steps(gen, _shown(CUP), CUP, "Who won the Harbour Cup in 2024?", no_answer=NO_ANSWER,
                                    max_tokens=40, min_support=0.5, reask=_shown, years=True))
    assert outcome.text.startswith("Mara Quill [1]") and outcome.rejected == ("year",)
    assert "Tova Lind" not in gen.calls[1][-1]["content"]  # the passage of 2023 is gone
    # every passage of another year goes, not only the one the draft came from
    more = [*CUP, _passage(3, "Ivo Penn won the Harbour Cup in 2022 at home.", "Harbour Cup 2022")]
    gen = ScriptedGenerator(["Source: [1]\nAnswer: Tova Lind", "Source: [1]\nAnswer: Mara Quill"])
    _outcome(answer_steps(gen, _shown(more), more, "Who won the Harbour Cup in 2024?", no_answer=NO_ANSWER,
                          max_tokens=40, min_support=0.5, reask=_shown, years=True))
    assert "Ivo Penn" not in gen.calls[1][-1]["content"] and "Mara Quill" in gen.calls[1][-1]["content"]


def test_the_year_check_is_off_unless_set() -> None:
    assert Settings().year_check == "off" and Settings.from_env({"RAG_YEAR_CHECK": "reject"}).year_check == "reject"
    with pytest.raises(ConfigError, match="year_check"):
        Settings(year_check="strict")
    assert check(Draft(1, "Tova Lind"), CUP, "Who won the Harbour Cup in 2024?")[1] is None  # off: not checked
