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
from importlib import resources
from pathlib import Path
from typing import Any

from rag import MissingDependencyError, Pipeline, RagError, Settings, index_info

from .chat import Step, chat_turn
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


def build_app(pipeline: Pipeline) -> Any:
    """The Gradio Blocks app around one Pipeline (launch it with .queue(...).launch(css=load_css()))."""
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
    parser = argparse.ArgumentParser(prog="rag chat", description=TITLE)
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
    demo.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port, css=load_css(),
                                                   theme=theme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
