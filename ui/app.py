"""Browser chat: one Pipeline at start-up, streamed cited answers, the cited passages with quotes highlighted.

    rag chat [--index-dir DIR] [--host 127.0.0.1] [--port 7860]
    python -m ui.app --index-dir DIR     # from the repository; installed, the package is rag_ui

The Gradio wiring only: render.py draws the HTML, chat.py runs a turn, style.css is read from this package.
Imports only names in rag.__all__. Gradio is imported inside build_app() and main(), so `import ui.app` stays
light and chat.respond() can be tested with the fakes and no browser.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from rag import MissingDependencyError, Pipeline, RagError, Settings, index_info

from .articles import HEADERS, confirm_html, list_rows, pick, scope_html, upload_steps
from .articles import remove as remove_picked
from .chat import Scope, Step, chat_turn, mark_stopped
from .render import SOURCES_PLACEHOLDER, esc

TITLE = "News Q&A — cited answers from your articles"


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


def load_css() -> str:
    """style.css from this package, wherever it is installed (ui in the repository, rag_ui installed)."""
    assert __package__, "run the app as a module: python -m ui.app"
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


# ---------------------------------------------------------------- Gradio


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError:
        raise MissingDependencyError("gradio is not installed. Run: pip install -e '.[ui]'") from None
    return gr


def build_app(pipeline: Pipeline, *, index_embedder: Any = None) -> Any:
    """The Gradio Blocks app around one Pipeline (launch it with .queue(...).launch(css=load_css())).

    index_embedder embeds uploaded articles (default: the library's own for indexing, not the Pipeline's)."""
    gr = _gradio()
    first = list_rows(pipeline)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.HTML(f'<h1 class="rag-h1">{esc(TITLE)}</h1>')
        info = gr.HTML(header_html(pipeline))
        turns, scope, ids = gr.State([]), gr.State(None), gr.State(first.ids)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(label="Chat", height=560, latex_delimiters=[], feedback_options=None,
                                     buttons=["copy"], elem_id="chat",
                                     placeholder="Ask a question about the indexed news articles. Every "
                                                 "claim in the answer cites the passage it comes from.")
                with gr.Row(visible=False, elem_id="scope-row") as scope_row:
                    scope_info = gr.HTML()
                    unscope = gr.Button("Ask about all articles", size="sm", scale=0, min_width=170)
                with gr.Row(elem_id="ask-row"):
                    box = gr.Textbox(show_label=False, placeholder="Ask about the articles (Enter sends, "
                                     "Shift+Enter for a new line)", scale=6, lines=1, max_lines=6,
                                     autofocus=True, elem_id="question")
                    ask = gr.Button("Ask", variant="primary", scale=0, min_width=80, elem_id="ask")
                    stop = gr.Button("Stop", variant="secondary", scale=0, min_width=80, elem_id="stop")
                with gr.Accordion("Filters", open=False, elem_id="filters"):
                    title_box = gr.Textbox(label="Only articles whose title contains (comma separated)",
                                           placeholder="e.g. SenseTime, museum")
                    with gr.Row():
                        from_box = gr.Textbox(label="Published from (YYYY-MM-DD)", placeholder="2021-01-01",
                                              min_width=140)
                        to_box = gr.Textbox(label="Published until (YYYY-MM-DD)", placeholder="2021-12-31",
                                            min_width=140)
                        as_of_box = gr.Textbox(label="As of (YYYY-MM-DD)", value=lambda: date.today().isoformat(),
                                               min_width=140, elem_id="as-of",
                                               info="Nothing published later is used; default today")
                new = gr.Button("New conversation", size="sm", variant="secondary")
            with gr.Column(scale=2, min_width=280):
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources-panel")
        with gr.Accordion("Articles in the index", open=False, elem_id="articles-panel"):
            search = gr.Textbox(show_label=False, placeholder="Search the titles…", elem_id="article-search")
            list_note = gr.HTML(first.note)
            table = gr.Dataframe(value=first.rows, headers=HEADERS, type="array", interactive=False, wrap=True,
                                 max_height=420, elem_id="articles", column_widths=["46%", "14%", "20%", "10%", "10%"])
            with gr.Row(visible=False) as picked_row:
                remove = gr.Button("Remove from the index…", variant="stop", size="sm", scale=0, min_width=200,
                                   elem_id="remove")
            with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
                confirm_info = gr.HTML()
                confirm = gr.Button("Yes, remove it", variant="stop", size="sm", scale=0, min_width=130,
                                    elem_id="confirm-remove")
                cancel = gr.Button("Cancel", size="sm", scale=0, min_width=90)
            removed = gr.HTML(elem_id="remove-status")
        with gr.Accordion("Add articles", open=False, elem_id="add-panel"):
            files = gr.File(label="Files: .txt .md .html .jsonl, or a .zip of them", file_count="multiple",
                            elem_id="upload-files")
            with gr.Accordion("…or paste an article", open=False, elem_id="paste"):
                with gr.Row():
                    paste_title = gr.Textbox(label="Title (optional)", scale=3, min_width=200)
                    paste_date = gr.Textbox(label="Date (YYYY-MM-DD, optional)", scale=1, min_width=140)
                paste_text = gr.Textbox(label="Article text", lines=6, max_lines=20, elem_id="paste-text")
            add = gr.Button("Add to the index", variant="primary", elem_id="add")
            upload_status = gr.HTML(elem_id="upload-status")

        def on_ask(question: str, chat: list[Any], history: list[tuple[str, str]], titles: str,
                   date_from: str, date_to: str, as_of: str, article: Scope | None) -> Iterator[Step]:
            yield from chat_turn(pipeline, question, chat, history, titles, date_from, date_to, as_of, article)

        def reset() -> tuple[list[Any], str, list[tuple[str, str]]]:
            return [], SOURCES_PLACEHOLDER, []

        def refreshed(query: str) -> tuple[Any, ...]:
            listing = list_rows(pipeline, query)
            return header_html(pipeline), listing.rows, listing.ids, listing.note

        def on_pick(shown: list[str], rows: list[list[Any]], evt: Any) -> tuple[Any, ...]:
            article = pick(shown, rows, evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index)
            return (article, gr.update(visible=bool(article)), scope_html(article), gr.update(visible=bool(article)),
                    gr.update(visible=False), "")

        on_pick.__annotations__["evt"] = gr.SelectData  # how Gradio knows to pass the click (gradio loads late)

        def on_remove(article: Scope | None, query: str) -> tuple[Any, ...]:
            return (remove_picked(pipeline, article), *refreshed(query), None, gr.update(visible=False),
                    gr.update(visible=False), gr.update(visible=False))

        def on_upload(paths: list[Any] | None, text: str, title: str, published: str,
                      query: str) -> Iterator[tuple[Any, ...]]:
            for step in upload_steps(pipeline, paths, text, title, published, index_embedder):
                if not step.done:
                    yield (step.html, *[gr.skip()] * 8)
                    continue
                forget_temporary(paths)
                clear = "" if step.pasted_taken else gr.skip()
                yield step.html, *refreshed(query), None, clear, clear, clear

        chat_in = [box, chatbot, turns, title_box, from_box, to_box, as_of_box, scope]
        chat_out = [box, chatbot, sources, turns]
        at_once = pipeline.answers_at_once  # one for a local model; several when a model server writes
        asked = [box.submit(on_ask, chat_in, chat_out, api_name="ask", concurrency_id="answer",
                            concurrency_limit=at_once, show_progress="minimal"),
                 ask.click(on_ask, chat_in, chat_out, api_visibility="private", concurrency_id="answer",
                           concurrency_limit=at_once, show_progress="minimal")]
        # Stop cancels the answer's event: Gradio closes its generator, which closes Pipeline.stream, and the
        # model is free again at its next token; the text so far stays, marked as stopped.
        stop.click(mark_stopped, chatbot, chatbot, cancels=asked, queue=False, api_visibility="private")
        new.click(reset, None, [chatbot, sources, turns], api_visibility="private", queue=False)
        chatbot.clear(reset, None, [chatbot, sources, turns], api_visibility="private", queue=False)
        scoped = [scope, scope_row, scope_info, picked_row, confirm_row, removed]
        table.select(on_pick, [ids, table], scoped, api_visibility="private", queue=False).then(
            None, js="() => document.querySelector('#question textarea')?.focus()")
        unscope.click(lambda: (None, gr.update(visible=False), "", gr.update(visible=False),
                               gr.update(visible=False), ""), None, scoped, api_visibility="private", queue=False)
        search.change(lambda query: tuple(list_rows(pipeline, query)), search, [table, ids, list_note],
                      api_visibility="private", trigger_mode="always_last")
        remove.click(lambda a: (gr.update(visible=True), confirm_html(a)), scope, [confirm_row, confirm_info],
                     api_visibility="private", queue=False)
        cancel.click(lambda: gr.update(visible=False), None, confirm_row, api_visibility="private", queue=False)
        confirm.click(on_remove, [scope, search],
                      [removed, info, table, ids, list_note, scope, scope_row, picked_row, confirm_row],
                      api_name="remove_article", concurrency_id="index")
        add.click(on_upload, [files, paste_text, paste_title, paste_date, search],
                  [upload_status, info, table, ids, list_note, files, paste_text, paste_title, paste_date],
                  api_name="add_articles", concurrency_id="index")
        demo.load(refreshed, search, [info, table, ids, list_note], api_visibility="private", queue=False)
    return demo


def forget_temporary(paths: list[Any] | None) -> None:
    """Delete Gradio's copies of uploaded files once they are indexed (the index keeps its own copy)."""
    for item in paths or ():
        path = Path(str(getattr(item, "name", item)))
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()  # Gradio puts each upload in a folder of its own
        except OSError:
            pass


def warm(pipeline: Pipeline) -> None:
    """Load the models and read the model's instructions once, now, so the first question is as quick as the
    next; a failure waits in the chat, where the question that meets it explains it, instead of a crash."""
    try:
        pipeline.warm()
    except RagError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag chat", description=TITLE)
    parser.add_argument("--index-dir", type=Path, default=None,
                        help="the index to answer from (default: RAG_INDEX_DIR, else index/default)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: 7860)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        settings = Settings.from_env(index_dir=args.index_dir)
        # Gradio's copies of uploaded files go inside the index folder too (hidden: never indexed), and are
        # deleted once indexed: adding articles writes nothing outside the index folder.
        os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(settings.index_dir).resolve() / ".incoming"))
        pipeline = Pipeline(settings)
        gr = _gradio()
        warm(pipeline)
        demo = build_app(pipeline)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])  # system fonts: no font download
    demo.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, css=load_css(),
                                                   theme=theme, max_file_size=settings.max_upload_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
