"""Browser chat: one Pipeline at start-up, streamed cited answers, the cited passages with quotes highlighted.

    python ui/app.py --index-dir index/default [--host 127.0.0.1] [--port 7860]

Imports only names in rag.__all__. Gradio is imported inside build_app() and main(), so `import ui.app` stays
light and respond() can be tested with the fakes and no browser.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

if __name__ == "__main__" and not __package__:  # `python ui/app.py`: let `import rag` find the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import (
    NO_ANSWER,
    Answer,
    Citation,
    Filters,
    Hit,
    MissingDependencyError,
    Pipeline,
    QueryError,
    RagError,
    Settings,
    index_info,
)

TITLE = "News Q&A — cited answers from your articles"
CONTEXT_CHARS = 320  # characters of passage shown on each side of a highlighted quote
SNIPPET_CHARS = 220  # characters of each retrieved passage shown while the answer is written
SOURCES_PLACEHOLDER = ('<div class="rag-sources"><div class="rag-empty">The passages an answer cites appear '
                       'here, with the supporting quote highlighted.</div></div>')
NO_SOURCES = ('<div class="rag-sources"><div class="rag-empty">No sources: nothing in the indexed articles '
              'answers this question.</div></div>')
_MARKER = re.compile(r"\[(\d+)\]")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TAG = re.compile(r"<[^>]*>")

History = Sequence[Any]  # (question, answer) pairs, or Gradio chat messages {"role", "content"}
Step = tuple[str, list[Any], str, list[tuple[str, str]]]  # question box, chat messages, sources panel, turns


class View(NamedTuple):
    """One state of the screen while a question is answered."""

    answer: str  # HTML of the assistant message
    sources: str  # HTML of the sources panel
    text: str = ""  # the final answer as plain text, kept for follow-ups ("" while streaming or on error)


# ---------------------------------------------------------------- the pure part: question → successive views


def respond(message: str, history: History | None, pipeline: Pipeline,
            filters: Filters | None = None) -> Iterator[View]:
    """Streams one answer: the retrieved passages at once, then the text as generated, then the cited answer.

    Errors from the library (no index, model missing, empty question, ...) become one readable line.
    """
    hits_html = ""
    pieces: list[str] = []
    try:
        for event in pipeline.stream(message or "", history=plain_history(history) or None, filters=filters):
            if isinstance(event, Answer):
                yield View(render_answer(event), render_sources(event), event.text)
            elif isinstance(event, str):
                pieces.append(event)
                yield View(render_partial("".join(pieces)), hits_html)
            else:
                hits_html = render_hits(event)
                status = f"Searching… {_passages(len(event))} found; writing the answer…"
                yield View(_status(status), hits_html)
    except RagError as exc:
        yield View(render_error(str(exc)), SOURCES_PLACEHOLDER)
    except Exception as exc:  # a bug must not take the chat down: one line here, the traceback in the log
        traceback.print_exc(file=sys.stderr)
        message = f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"
        yield View(render_error(message), SOURCES_PLACEHOLDER)


def chat_turn(pipeline: Pipeline, message: str | None, chat: Sequence[Any] | None,
              turns: Sequence[tuple[str, str]] | None, titles: str | None = "", date_from: str | None = "",
              date_to: str | None = "") -> Iterator[Step]:
    """One question in the browser: yields (question box, chat messages, sources panel, plain-text turns)."""
    chat = list(chat or [])
    turns = list(turns or [])
    question = " ".join((message or "").split())
    if question:
        chat.append({"role": "user", "content": f'<div class="rag-question">{esc(question)}</div>'})
    chat.append({"role": "assistant", "content": _status("Searching the articles…")})
    yield "", chat, SOURCES_PLACEHOLDER, turns
    try:
        filters = parse_filters(titles, date_from, date_to)
    except RagError as exc:
        chat[-1] = {"role": "assistant", "content": render_error(str(exc))}
        yield "", chat, SOURCES_PLACEHOLDER, turns
        return
    for view in respond(question, turns, pipeline, filters):
        chat[-1] = {"role": "assistant", "content": view.answer}
        if view.text:
            turns = turns + [(question, view.text)]
        yield "", chat, view.sources, turns


def parse_filters(titles: str | None, date_from: str | None, date_to: str | None) -> Filters | None:
    """Filters from the filter boxes: comma-separated title words and ISO dates (None when all are empty)."""
    words = tuple(t.strip() for t in (titles or "").split(",") if t.strip())
    start, end = _iso_date("from", date_from), _iso_date("to", date_to)
    if start and end and start > end:
        raise QueryError(f"the date range {start} … {end} is empty: 'from' is after 'to'; swap or clear them")
    filters = Filters(titles=words, date_from=start, date_to=end)
    return filters if filters else None


def _iso_date(which: str, value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise QueryError(f"date {which} {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2021-06-30"
                         ) from None


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


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return " ".join(html.unescape(_TAG.sub(" ", content)).split())
    if isinstance(content, dict):
        return _plain(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return " ".join(t for t in (_plain(c) for c in content) if t)
    return ""


# ---------------------------------------------------------------- rendering (all article text is escaped)


def esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def file_name(source: str) -> str:
    return re.split(r"[\\/]", source or "")[-1] or source


def _passages(n: int) -> str:
    return f"{n} passage{'' if n == 1 else 's'}"


def _status(text: str) -> str:
    return f'<div class="rag-status">{esc(text)}</div>'


def _meta(published: str | None, source: str) -> str:
    return f'<div class="rag-meta">{esc(published or "undated")} · {esc(file_name(source))}</div>'


def render_error(message: str) -> str:
    return f'<div class="rag-error">⚠ {esc(" ".join(message.split()))}</div>'


def render_partial(text: str) -> str:
    return f'<div class="rag-answer">{esc(" ".join(text.split()))}<span class="rag-cursor">▍</span></div>'


def render_hits(hits: Sequence[Hit]) -> str:
    """The retrieved passages, shown while the answer is being written."""
    if not hits:
        return f'<div class="rag-sources">{_status("Searching… no passages found")}</div>'
    items = "".join(
        f'<li class="rag-hit"><div class="rag-title">{esc(h.title) or "(untitled)"}</div>'
        f'{_meta(h.published, h.source)}'
        f'<div class="rag-passage">{esc(_clip(h.chunk.text, SNIPPET_CHARS))}</div></li>'
        for h in hits)
    return (f'<div class="rag-sources">{_status(f"Searching… {_passages(len(hits))} found")}'
            f'<ol class="rag-hits">{items}</ol></div>')


def render_answer(answer: Answer) -> str:
    """The assistant message: sentences with [n] linked to their sources, unsupported ones marked."""
    if answer.refused:
        body = f'<p class="rag-refused">{esc(answer.text or NO_ANSWER)}</p>'
    else:
        cited = {c.marker for c in answer.citations}
        parts = []
        for s in answer.sentences:
            part = _link_markers(esc(s.text), cited)
            if not s.supported:
                part += (' <span class="rag-unverified" title="No cited passage supports this sentence well '
                         'enough">unverified</span>')
            parts.append(part)
        body = f'<p>{" ".join(parts) if parts else _link_markers(esc(answer.text), cited)}</p>'
    note = f'<div class="rag-note">Note: {esc(answer.note)}</div>' if answer.note else ""
    total = answer.timings.get("total_s")
    foot = " · ".join(x for x in (f"{total:.1f} s" if total is not None else "", esc(answer.model)) if x)
    foot_html = f'<div class="rag-foot">{foot}</div>' if foot else ""
    # one line, starting with a block tag: the chat's Markdown renderer passes it through as HTML
    return " ".join(f'<div class="rag-answer">{body}{note}{foot_html}</div>'.split("\n"))


def _link_markers(escaped: str, cited: set[int]) -> str:
    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f'<a class="rag-cite" href="#src-{n}">[{n}]</a>' if n in cited else m.group(0)

    return _MARKER.sub(link, escaped)


def render_sources(answer: Answer) -> str:
    """Only the cited sources, numbered as in the text, each quote highlighted inside its passage."""
    if answer.refused or not answer.citations:
        return NO_SOURCES
    hits = {h.chunk.id: h for h in answer.hits}
    entries = []
    for c in sorted(answer.citations, key=lambda c: c.marker):
        hit = hits.get(c.chunk_id)
        published = c.published or (hit.published if hit else None)
        entries.append(
            f'<div class="rag-source" id="src-{c.marker}">'
            f'<div class="rag-title"><span class="rag-num">[{c.marker}]</span> '
            f'{esc(c.title) or "(untitled)"}</div>'
            f'{_meta(published, c.source)}<div class="rag-passage">{highlight(hit, c)}</div></div>')
    heading = f"Cited source{'' if len(entries) == 1 else 's'} ({len(entries)})"
    return f'<div class="rag-sources">{_status(heading)}{"".join(entries)}</div>'


def highlight(hit: Hit | None, c: Citation) -> str:
    """The hit's passage, escaped, with the citation's quote in <mark> (offsets are into the article)."""
    if hit is None:
        return f"<mark>{esc(c.quote)}</mark>"
    text = hit.chunk.text
    a, b = c.start - hit.chunk.start, c.end - hit.chunk.start
    if not (0 <= a <= b <= len(text)) or text[a:b] != c.quote:
        a = text.find(c.quote) if c.quote else -1
        if a < 0:
            return f"<mark>{esc(c.quote)}</mark>"
        b = a + len(c.quote)
    before, after = text[:a], text[b:]
    if len(before) > CONTEXT_CHARS:
        before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    if len(after) > CONTEXT_CHARS:
        after = after[:CONTEXT_CHARS].rsplit(" ", 1)[0] + "…"
    return f"{esc(before)}<mark>{esc(text[a:b])}</mark>{esc(after)}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def header_html(pipeline: Pipeline) -> str:
    """Index name, article and chunk counts, embedder and model, read fresh from the manifest."""
    settings = pipeline.settings
    parts = [f"index <b>{esc(Path(settings.index_dir).name)}</b>"]
    try:
        info = index_info(settings)
        counts = info.get("counts") or {}
        parts += [f"{counts.get('articles', 0):,} articles", f"{counts.get('chunks', 0):,} chunks",
                  f"embedder <b>{esc(str((info.get('embedder') or {}).get('name', '?')))}</b>"]
    except RagError as exc:
        parts.append(f'<span class="rag-warn">{esc(str(exc))}</span>')
    try:
        parts.append(f"model <b>{esc(pipeline.model_name)}</b>")
    except RagError as exc:
        parts.append(f'<span class="rag-warn">{esc(str(exc))}</span>')
    return f'<div class="rag-info">{" · ".join(parts)}</div>'


CSS = """
.rag-h1 { font-size: 1.6rem; font-weight: 650; margin: 0.2rem 0 0; }
.rag-info { color: var(--body-text-color-subdued); font-size: 0.92rem; margin-bottom: 0.3rem; }
.rag-info b { color: var(--body-text-color); font-weight: 600; }
.rag-warn, .rag-error { color: #b42318; }
.rag-status { color: var(--body-text-color-subdued); font-style: italic; }
.rag-answer p { margin: 0; line-height: 1.55; }
.rag-cite { text-decoration: none; font-weight: 600; color: var(--color-accent); }
.rag-unverified { font-size: 0.75em; color: #9a3412; background: #ffedd5; border: 1px solid #fdba74;
                  border-radius: 4px; padding: 0 4px; white-space: nowrap; }
.rag-note { font-size: 0.85em; color: #854d0e; margin-top: 0.4rem; }
.rag-foot { font-size: 0.78em; color: var(--body-text-color-subdued); margin-top: 0.4rem; }
.rag-cursor { opacity: 0.6; }
.rag-sources { font-size: 0.93rem; }
.rag-sources .rag-status { margin-bottom: 0.5rem; font-style: normal; font-weight: 600;
                          color: var(--body-text-color); }
.rag-empty { color: var(--body-text-color-subdued); padding: 0.6rem 0; }
.rag-hits { padding-left: 1.2rem; margin: 0; }
.rag-hit, .rag-source { margin-bottom: 0.8rem; }
.rag-source { border-left: 3px solid var(--color-accent); padding: 0.2rem 0 0.2rem 0.7rem;
              scroll-margin-top: 1rem; }
.rag-source:target { background: var(--background-fill-secondary); }
.rag-title { font-weight: 600; }
.rag-num { color: var(--color-accent); }
.rag-meta { color: var(--body-text-color-subdued); font-size: 0.85em; margin: 0.1rem 0 0.3rem; }
.rag-passage { white-space: pre-line; line-height: 1.5; }
.rag-passage mark { background: #fde68a; color: inherit; padding: 0 1px; border-radius: 2px; }
#sources-panel { max-height: 640px; overflow-y: auto; }
"""


# ---------------------------------------------------------------- Gradio


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependencyError("gradio is not installed. Run: pip install -e '.[ui]'") from None
    return gr


def build_app(pipeline: Pipeline) -> Any:
    """The Gradio Blocks app around one Pipeline (launch it with .queue(...).launch(css=CSS))."""
    gr = _gradio()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.HTML(f'<h1 class="rag-h1">{esc(TITLE)}</h1>')
        info = gr.HTML(header_html(pipeline))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(label="Chat", height=560, latex_delimiters=[], feedback_options=None,
                                     buttons=["copy"], elem_id="chat",
                                     placeholder="Ask a question about the indexed news articles. Every "
                                                 "claim in the answer cites the passage it comes from.")
                with gr.Row():
                    box = gr.Textbox(show_label=False, placeholder="Ask about the articles…", scale=6,
                                     lines=1, max_lines=4, autofocus=True, elem_id="question")
                    ask = gr.Button("Ask", variant="primary", scale=1, min_width=90, elem_id="ask")
                with gr.Accordion("Filters", open=False):
                    title_box = gr.Textbox(label="Only articles whose title contains (comma separated)",
                                           placeholder="e.g. SenseTime, museum")
                    with gr.Row():
                        from_box = gr.Textbox(label="Published from (YYYY-MM-DD)", placeholder="2021-01-01")
                        to_box = gr.Textbox(label="Published until (YYYY-MM-DD)", placeholder="2021-12-31")
                new = gr.Button("New conversation", size="sm", variant="secondary")
            with gr.Column(scale=2, min_width=320):
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources-panel")
        turns = gr.State([])

        def on_ask(question: str, chat: list[Any], history: list[tuple[str, str]], titles: str,
                   date_from: str, date_to: str) -> Iterator[Step]:
            yield from chat_turn(pipeline, question, chat, history, titles, date_from, date_to)

        def reset() -> tuple[list[Any], str, list[tuple[str, str]]]:
            return [], SOURCES_PLACEHOLDER, []

        inputs = [box, chatbot, turns, title_box, from_box, to_box]
        outputs = [box, chatbot, sources, turns]
        box.submit(on_ask, inputs, outputs, api_name="ask", concurrency_id="answer", show_progress="minimal")
        ask.click(on_ask, inputs, outputs, api_visibility="private", concurrency_id="answer",
                  show_progress="minimal")
        new.click(reset, None, [chatbot, sources, turns], api_visibility="private", queue=False)
        chatbot.clear(reset, None, [chatbot, sources, turns], api_visibility="private", queue=False)
        demo.load(lambda: header_html(pipeline), None, info, api_visibility="private", queue=False)
    return demo


def warm(pipeline: Pipeline) -> None:
    """Load the models and read the model's instructions once, now, so the first question is as quick as the
    next; a failure waits in the chat, where the question that meets it explains it, instead of a crash."""
    try:
        pipeline.warm()
    except RagError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python ui/app.py", description=TITLE)
    parser.add_argument("--index-dir", type=Path, default=None,
                        help="the index to answer from (default: RAG_INDEX_DIR, else index/default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        pipeline = Pipeline(Settings.from_env(index_dir=args.index_dir))
        gr = _gradio()
        warm(pipeline)
        demo = build_app(pipeline)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])  # system fonts: no font download
    demo.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, css=CSS,
                                                   theme=theme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
