"""One question in the chat: the screens it goes through, the plain-text history for follow-ups, the filters."""

from __future__ import annotations

import html
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, NamedTuple

from rag import REDRAFT, REVISED, Answer, Filters, Pipeline, QueryError, RagError, given_day

from .render import (
    CURSOR,
    SOURCES_PLACEHOLDER,
    esc,
    passage_count,
    render_answer,
    render_error,
    render_hits,
    render_partial,
    render_sources,
    render_status,
    render_stopped,
)

_TAG = re.compile(r"<[^>]*>")

History = Sequence[Any]  # (question, answer) pairs, or Gradio chat messages {"role", "content"}
Step = tuple[str, list[Any], str, list[tuple[str, str]]]  # question box, chat messages, sources panel, turns
Scope = dict[str, str]  # the article picked in the list of articles: {"id", "title"}


class View(NamedTuple):
    """One state of the screen while a question is answered."""

    answer: str  # HTML of the assistant message
    sources: str  # HTML of the sources panel
    text: str = ""  # the final answer as plain text, kept for follow-ups ("" while streaming or on error)


def respond(message: str, history: History | None, pipeline: Pipeline, filters: Filters | None = None,
            as_of: str | None = None) -> Iterator[View]:
    """Streams one answer: the retrieved passages at once, then the text as generated, then the cited answer.

    Errors from the library (no index, model missing, empty question, ...) become one readable line. Closing
    this generator (the Stop button) closes the Pipeline's stream, which frees the model at the next token.
    """
    hits_html = ""
    pieces: list[str] = []
    try:
        for event in pipeline.stream(message or "", history=plain_history(history) or None, filters=filters,
                                     as_of=as_of or None):
            if isinstance(event, Answer):
                yield View(render_answer(event), render_sources(event), event.text)
            elif event == REDRAFT:  # a rejected draft: the next one replaces it on the screen
                pieces.clear()
                yield View(render_status("Checking the answer… trying once more"), hits_html)
            elif event == REVISED:  # checked words in place of the draft's, which follow at once
                pieces.clear()
                yield View(render_status("Checking the answer… correcting it"), hits_html)
            elif isinstance(event, str):
                pieces.append(event)
                yield View(render_partial("".join(pieces)), hits_html)
            else:
                hits_html = render_hits(event, as_of or date.today().isoformat())
                status = f"Searching… {passage_count(len(event))} found; writing the answer…"
                yield View(render_status(status), hits_html)
    except RagError as exc:
        yield View(render_error(str(exc)), SOURCES_PLACEHOLDER)
    except Exception as exc:  # a bug must not take the chat down: one line here, the traceback in the log
        traceback.print_exc(file=sys.stderr)
        message = f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"
        yield View(render_error(message), SOURCES_PLACEHOLDER)


def chat_turn(pipeline: Pipeline, message: str | None, chat: Sequence[Any] | None,
              turns: Sequence[tuple[str, str]] | None, titles: str | None = "", date_from: str | None = "",
              date_to: str | None = "", as_of: str | None = "", article: Scope | None = None) -> Iterator[Step]:
    """One question in the browser: yields (question box, chat messages, sources panel, plain-text turns).

    as_of is the as-of date box (empty: today); article, when one was picked in the list of articles, limits
    the question to it (the title words are then not used)."""
    chat = list(chat or [])
    turns = list(turns or [])
    question = " ".join((message or "").split())
    if question:
        chat.append({"role": "user", "content": f'<div class="rag-question">{esc(question)}</div>'})
    chat.append({"role": "assistant", "content": render_status("Searching the articles…")})
    yield "", chat, SOURCES_PLACEHOLDER, turns
    try:
        filters = parse_filters("" if article else titles, date_from, date_to,
                                article_id=article.get("id") if article else None)
        day = given_day(as_of, "as of")
    except RagError as exc:
        chat[-1] = {"role": "assistant", "content": render_error(str(exc))}
        yield "", chat, SOURCES_PLACEHOLDER, turns
        return
    for view in respond(question, turns, pipeline, filters, as_of=day):
        chat[-1] = {"role": "assistant", "content": view.answer}
        if view.text:
            turns = turns + [(question, view.text)]
        yield "", chat, view.sources, turns


def mark_stopped(chat: Sequence[Any] | None) -> list[Any]:
    """The chat after Stop: the answer being written keeps its text so far, without the cursor, and says it was
    stopped; an answer that had not started says so. A finished answer is left as it is."""
    chat = list(chat or [])
    if not chat or not isinstance(chat[-1], dict) or chat[-1].get("role") != "assistant":
        return chat
    content = _html(chat[-1].get("content"))
    if CURSOR in content:
        text = _plain(content.replace(CURSOR, ""))
        chat[-1] = {"role": "assistant", "content": render_stopped(text)}
    elif 'class="rag-status"' in content:
        chat[-1] = {"role": "assistant", "content": render_stopped("")}
    return chat


def parse_filters(titles: str | None, date_from: str | None, date_to: str | None,
                  article_id: str | None = None) -> Filters | None:
    """Filters from the filter boxes: comma-separated title words and ISO dates, or one article picked in the
    list (None when all are empty)."""
    words = tuple(t.strip() for t in (titles or "").split(",") if t.strip())
    start, end = given_day(date_from, "date from"), given_day(date_to, "date to")
    if start and end and start > end:
        raise QueryError(f"the date range {start} … {end} is empty: 'from' is after 'to'; swap or clear them")
    filters = Filters(article_ids=(article_id,) if article_id else (), titles=words, date_from=start, date_to=end)
    return filters if filters else None


def plain_history(history: History | None) -> list[tuple[str, str]]:
    """Earlier (question, answer) turns as plain text, from pairs or from Gradio chat messages."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for item in history or ():
        if isinstance(item, dict):
            text = _plain(item.get("content"))
            if item.get("role") == "user":
                question = text
            elif item.get("role") == "assistant" and question is not None:
                pairs.append((question, text))
                question = None
        else:
            q, a = item
            pairs.append((_plain(q), _plain(a)))
    return [(q, a) for q, a in pairs if q.strip() and a.strip()]


def _html(content: Any) -> str:
    """A chat message's HTML, from a string or Gradio's message parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return _html(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return " ".join(_html(c) for c in content)
    return ""


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return " ".join(html.unescape(_TAG.sub(" ", content)).split())
    if isinstance(content, dict):
        return _plain(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return " ".join(t for t in (_plain(c) for c in content) if t)
    return ""
