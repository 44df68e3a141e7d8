"""The chat's article tools, without Gradio: adding files or pasted text (with progress), the list of indexed
articles, picking one to ask about, removing one. app.py wires these to the page."""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from rag import ArticleInfo, Pipeline, RagError, UploadReport, add_articles, list_articles, remove_article

from .render import esc, file_name, render_error

LIST_LIMIT = 500  # rows in the list of articles; the title search reaches the rest
HEADERS = ["Title", "Date", "Source", "Lang.", "Chunks"]
TICK_S = 0.5  # how often the upload's progress line is redrawn while a step runs
Rows = list[list[Any]]


class Listing(NamedTuple):
    """The list of articles as shown: its rows, the article id of each row, and a line about it."""

    rows: Rows
    ids: list[str]
    note: str


def list_rows(pipeline: Pipeline, title: str | None = "") -> Listing:
    """The indexed articles whose title contains `title`, newest first."""
    try:
        articles = list_articles(pipeline.settings, title=title or "", limit=LIST_LIMIT + 1)
    except RagError as exc:
        return Listing([], [], render_error(str(exc)))
    shown = articles[:LIST_LIMIT]
    rows = [[a.title or "(untitled)", a.published or "undated", _source(a), a.language or "?", a.chunks]
            for a in shown]
    if not shown:
        note = "No article's title contains that." if title else "The index holds no articles yet."
    elif len(articles) > LIST_LIMIT:
        note = f"The newest {LIST_LIMIT} shown; search the titles to find others."
    else:
        note = f"{len(shown)} article{'' if len(shown) == 1 else 's'}" + (" match." if title else ".")
    hint = " Click an article to ask about it alone, or to remove it." if shown else ""
    return Listing(rows, [a.id for a in shown], f'<div class="rag-list-note">{esc(note + hint)}</div>')


def _source(article: ArticleInfo) -> str:
    name = file_name(article.source)
    return f"{name} (added here)" if article.uploaded else name


def pick(ids: Sequence[str], rows: Rows, row: int) -> dict[str, str] | None:
    """The article of a clicked row, as the chat's scope {"id", "title", "chunks"}."""
    if not 0 <= row < len(ids) or row >= len(rows):
        return None
    return {"id": ids[row], "title": str(rows[row][0]), "chunks": str(rows[row][4])}


def scope_html(scope: dict[str, str] | None) -> str:
    if not scope:
        return ""
    return (f'<div class="rag-scope">Asking only about <b>{esc(scope["title"])}</b>'
            f' <span class="rag-scope-hint">(the title filter is not used meanwhile)</span></div>')


def confirm_html(scope: dict[str, str] | None) -> str:
    if not scope:
        return ""
    chunks = scope.get("chunks", "?")
    return (f'<div class="rag-confirm">Remove <b>{esc(scope["title"])}</b> and its {esc(chunks)} '
            f'chunk{"" if chunks == "1" else "s"} from the index? Questions will no longer use it. An article '
            'added here is deleted; one from the indexed folder stays out until its file changes.</div>')


def remove(pipeline: Pipeline, scope: dict[str, str] | None) -> str:
    """Removes the picked article; returns the line saying what happened."""
    if not scope:
        return render_error("no article is picked; click one in the list first")
    try:
        gone = remove_article(scope["id"], settings=pipeline.settings)
    except RagError as exc:
        return render_error(str(exc))
    return (f'<div class="rag-done">Removed <b>{esc(gone.title)}</b> ({gone.chunks} '
            f'chunk{"" if gone.chunks == 1 else "s"}) from the index.</div>')


class Progress(NamedTuple):
    html: str
    done: bool  # the last step: the index is written (or nothing could be)
    pasted_taken: bool = False  # the pasted article went in (its boxes can be cleared)


def upload_steps(pipeline: Pipeline, files: Sequence[str | Path] | None, text: str | None = "",
                 title: str | None = "", published: str | None = "", embedder: Any = None) -> Iterator[Progress]:
    """Adds the files and the pasted article to the index on a thread of its own, yielding the progress line
    every TICK_S, then the result. Neither the Pipeline's lock nor its embedder is used (embedder: one of the
    indexing's own; default, the library's): questions are answered from the live index meanwhile, and from the
    new one as soon as it is swapped in."""
    files = [Path(str(getattr(f, "name", f))) for f in files or ()]
    text, title, published = text or "", title or "", published or ""
    if not files and not (text.strip() or title.strip() or published.strip()):
        yield Progress(render_error("nothing to add: choose files, or paste an article's text"), True)
        return
    messages: queue.Queue[str] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["report"] = add_articles(files, text=text, title=title, published=published,
                                             settings=pipeline.settings, embedder=embedder,
                                             log=messages.put)
        except RagError as exc:
            outcome["error"] = str(exc)
        except Exception as exc:  # a bug must not take the chat down: one line here, the traceback in the log
            traceback.print_exc(file=sys.stderr)
            outcome["error"] = f"unexpected error ({type(exc).__name__}: {exc}); the server log has the details"

    worker = threading.Thread(target=work, name="rag-upload", daemon=True)
    started = time.monotonic()
    worker.start()
    step = "starting"
    while worker.is_alive() or not messages.empty():
        try:
            step = messages.get(timeout=TICK_S)
        except queue.Empty:
            pass
        yield Progress(render_progress(step, time.monotonic() - started), False)
    if "error" in outcome:
        yield Progress(render_error(outcome["error"]), True)
        return
    report: UploadReport = outcome["report"]
    yield Progress(render_upload(report), True, not any(r.source == "pasted text" for r in report.rejected))


def render_progress(step: str, seconds: float) -> str:
    """The upload's current step ("embedded 20/50 chunks (…)") with a bar when it says how far it is."""
    words = step.split()
    bar = ""
    if words and words[0] == "embedded" and len(words) > 1 and "/" in words[1]:
        done, _, total = words[1].partition("/")
        if done.isdigit() and total.isdigit():
            bar = f'<progress value="{done}" max="{total}"></progress>'
    return (f'<div class="rag-progress"><span class="rag-status">{esc(step[:1].upper() + step[1:])}…</span> '
            f'<span class="rag-elapsed">{seconds:.0f} s</span>{bar}</div>')


def render_upload(report: UploadReport) -> str:
    """What an upload did: the articles now answerable, and each rejected file with its reason."""
    parts = []
    if report.articles:
        items = "".join(f'<li><b>{esc(a.title) or "(untitled)"}</b> · {esc(a.published or "undated")} · '
                        f'{a.chunks} chunk{"" if a.chunks == 1 else "s"}</li>' for a in report.articles)
        n = len(report.articles)
        new = report.index.articles_added if report.index else 0
        known = f" ({n - new} of them already indexed)" if 0 < n - new < n else ""
        head = (f'Added {n} article{"" if n == 1 else "s"}{known} in {report.seconds:.1f} s; the next question '
                f'can use {"it" if n == 1 else "them"}.') if new else \
            f'{"It is" if n == 1 else "They are"} already in the index; nothing new to embed.'
        parts.append(f'<div class="rag-done">{esc(head)}</div><ul class="rag-added">{items}</ul>')
    elif not report.rejected:
        parts.append('<div class="rag-done">Nothing new to add.</div>')
    if report.rejected:
        items = "".join(f'<li><b>{esc(r.source)}</b>: {esc(r.reason)}</li>' for r in report.rejected)
        parts.append(f'<div class="rag-rejected"><div class="rag-warn">Rejected ({len(report.rejected)}):</div>'
                     f'<ul>{items}</ul></div>')
    if report.notes:
        items = "".join(f'<li><b>{esc(n.source)}</b>: {esc(n.reason)}</li>' for n in report.notes)
        parts.append(f'<div class="rag-rejected"><div class="rag-warn">Added, but check:</div><ul>{items}</ul></div>')
    return f'<div class="rag-upload">{"".join(parts)}</div>'
