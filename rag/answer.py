"""Find the answer, then write it: the model names its passage and copies the answer's words before it writes the
sentence, so what it found can be checked on its own: it must add something the question does not already say,
and it must be in the passage it names.

The reply has three lines, which a grammar enforces:

    Source: [3]
    Answer: an Ariane 5 rocket
    Sentence: The telescope was carried into space by an Ariane 5 rocket [3].

Only the sentence is shown to the reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .cite import Passage, cite, content_words
from .dates import format_day, iso_date
from .generate import _gbnf_literal, answer_grammar
from .types import Citation, Sentence

SOURCE, ANSWER, SENTENCE = "Source: [", "\nAnswer: ", "\nSentence: "
_DRAFT = re.compile(r"Source: \[(\d{1,3})\]\s*Answer: (.*?)\s*Sentence: (.*)", re.S)


def find_grammar(n_passages: int, no_answer: str, *, max_phrase: int = 100, max_chars: int = 300) -> str:
    """GBNF: NO_ANSWER, or the three lines, the sentence ending in citations of passages 1..n_passages."""
    numbers = " | ".join(_gbnf_literal(str(i)) for i in range(1, n_passages + 1))
    return "\n".join([
        f"root ::= refusal | {_gbnf_literal(SOURCE)} num \"]\" {_gbnf_literal(ANSWER)} phrase "
        f"{_gbnf_literal(SENTENCE)} claim",
        f"refusal ::= {_gbnf_literal(no_answer)}",
        f"phrase ::= [^\\[\\]\\n ] [^\\[\\]\\n]{{0,{max_phrase}}}",
        f"claim ::= [^\\[\\]\\n ] [^\\[\\]\\n]{{1,{max_chars}}} cite cite? \".\"",
        "cite ::= \" [\" num \"]\"",
        f"num ::= {numbers}",
    ])


@dataclass(frozen=True)
class Draft:
    """What the model found and wrote; number is None when the reply is not in the three-line form."""

    number: int | None
    phrase: str
    sentence: str


def parse_draft(text: str) -> Draft:
    match = _DRAFT.match(text.strip())
    if not match:
        return Draft(None, "", " ".join(text.split()))
    return Draft(int(match.group(1)), " ".join(match.group(2).split()), " ".join(match.group(3).split()))


def sentence_pieces(pieces: Iterable[str]) -> Iterator[str]:
    """The streamed reply's pieces from the sentence on: the reader sees the answer, not the finding."""
    seen = ""
    started = False
    for piece in pieces:
        if started:
            yield piece
            continue
        seen += piece
        at = seen.find(SENTENCE)
        if at >= 0:
            started = True
            rest = seen[at + len(SENTENCE):]
            if rest:
                yield rest
        elif not seen.startswith(SOURCE[: len(seen)]) and not seen.startswith("Source"):
            started = True  # not the three-line form (a refusal): pass it through whole
            yield seen


def restates(phrase: str, question: str) -> bool:
    """Does the found phrase only repeat the question ("the rocket" for "What rocket carried…")?"""
    return not set(content_words(phrase)) - set(content_words(question))


def evidence_words(passage: Passage) -> set[str]:
    """Content words of what the model was shown as this passage: its text with dates resolved, its headline
    and its date."""
    day = iso_date(passage.hit.published)
    return set(content_words(f"{passage.hit.title} {passage.shown_text} {format_day(day) if day else ''}"))


def holds(passage: Passage, phrase: str, question: str) -> float:
    """Share of the phrase's own words (those not in the question) that the passage holds."""
    own = set(content_words(phrase)) - set(content_words(question))
    return sum(w in evidence_words(passage) for w in own) / len(own) if own else 0.0


def locate(draft: Draft, passages: Sequence[Passage], question: str, *, min_share: float = 0.5) -> int | None:
    """The passage that holds the found phrase: the one the model named when it does, else the one holding
    most of it (small models name a neighbour's number), else None."""
    by_number = {p.number: p for p in passages}
    if draft.number in by_number and holds(by_number[draft.number], draft.phrase, question) >= min_share:
        return draft.number
    shares = [(holds(p, draft.phrase, question), p.number) for p in passages]
    share, number = max(shares, default=(0.0, 0))
    return number if share >= min_share else None


def without(passages: Sequence[Passage], number: int) -> list[Passage]:
    """The passages less one, numbered 1..n again, for a second try that cannot lean on the rejected one."""
    kept = [p for p in passages if p.number != number]
    return [Passage(number=i, hit=p.hit, spans=p.spans, score=p.score) for i, p in enumerate(kept, 1)]


# ---------------------------------------------------------------- one question: draft, check, one retry

Messages = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Outcome:
    """The checked answer: cite()'s results, and why drafts were rejected on the way."""

    text: str
    sentences: tuple[Sentence, ...]
    citations: tuple[Citation, ...]
    refused: bool
    rejected: tuple[str, ...] = ()  # the reason for each rejected draft, in order


RETRY = {
    "restates": "That only repeats the question. Copy the words of the passages that answer it.",
    "absent": "The passages do not say \"{phrase}\". Copy the answer from the passages.",
    "unsupported": "Passage [{number}] does not state that. Answer only with what a passage states.",
}


def check(draft: Draft, passages: Sequence[Passage], question: str, no_answer: str) -> tuple[Draft, str | None]:
    """The draft pointed at the passage that holds its phrase, and the reason to reject it (None: keep it)."""
    if draft.number is None:  # not the three-line form (a server that ignores grammars): cite() alone decides
        return draft, None
    if restates(draft.phrase, question):
        return draft, "restates"
    number = locate(draft, passages, question)
    if number is None:
        return draft, "absent"
    if number != draft.number:  # the phrase is in another passage: the sentence cites that one
        sentence = re.sub(rf"\[{draft.number}\]", f"[{number}]", draft.sentence)
        draft = Draft(number, draft.phrase, sentence)
    return draft, None


def answer_steps(generator: Any, messages: Messages, passages: Sequence[Passage], question: str, *,
                 no_answer: str, max_tokens: int, min_support: float, tries: int = 2
                 ) -> Generator[str, None, Outcome]:
    """Yields the sentence as the model writes it; returns the checked Outcome. A rejected draft is tried again
    once, with the reason, in the same conversation (the model's cache keeps the passages: no re-reading)."""
    rejected: list[str] = []
    grammar = find_grammar(len(passages), no_answer)
    last: tuple[Sentence, ...] = ()  # the last checked draft's sentences, kept for inspection when refused
    for attempt in range(tries):
        raw: list[str] = []
        yield from sentence_pieces(_recorded(generator.stream(messages, max_tokens=max_tokens, grammar=grammar), raw))
        reply = "".join(raw)
        if " ".join(reply.split()).startswith(no_answer[:-1]):
            return Outcome(no_answer, last, (), True, tuple(rejected))
        draft, reason = check(parse_draft(reply), passages, question, no_answer)
        if reason is None:
            text, last, citations, refused = cite(draft.sentence, passages, min_support=min_support,
                                                  question=question)
            if not refused:
                return Outcome(text, last, citations, False, tuple(rejected))
            reason = "unsupported"
        rejected.append(reason)
        if draft.number is None or attempt + 1 == tries:  # a reply not in the three-line form is not coached
            break
        hint = RETRY[reason].format(phrase=draft.phrase, number=draft.number)
        messages = [*messages, {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"{hint} If they do not answer it, reply exactly: {no_answer}"}]
        yield "\n"  # the reader's draft so far is replaced by the next one
    return Outcome(no_answer, last, (), True, tuple(rejected))


def _recorded(pieces: Iterable[str], into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


def direct_steps(generator: Any, messages: Messages, passages: Sequence[Passage], question: str, *,
                 no_answer: str, max_tokens: int, min_support: float) -> Generator[str, None, Outcome]:
    """The answer written straight away (answer_mode "direct"): one draft, checked by cite() alone."""
    raw: list[str] = []
    yield from _recorded(generator.stream(messages, max_tokens=max_tokens,
                                          grammar=answer_grammar(len(passages), no_answer)), raw)
    text, sentences, citations, refused = cite("".join(raw), passages, min_support=min_support, question=question)
    return Outcome(text, sentences, citations, refused)


def first_piece_timed(steps: Generator[str, None, Outcome], on_first: Callable[[], object]
                      ) -> Generator[str, None, Outcome]:
    """The pieces of steps passed on, on_first() called as the first arrives; returns steps' Outcome."""
    first = True
    while True:
        try:
            piece = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if first:
            on_first()
            first = False
        yield piece
