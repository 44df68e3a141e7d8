"""The chat's HTML, as pure functions of the library's types; every piece of article text is escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import date

from rag import NO_ANSWER, Answer, Citation, Hit

CONTEXT_CHARS = 320  # characters of passage shown on each side of a highlighted quote
SNIPPET_CHARS = 220  # characters of each retrieved passage shown while the answer is written
SOURCES_PLACEHOLDER = ('<div class="rag-sources"><div class="rag-empty">The passages an answer cites appear '
                       'here, with the supporting quote highlighted.</div></div>')
NO_SOURCES = ('<div class="rag-sources"><div class="rag-empty">No sources: nothing in the indexed articles '
              'answers this question.</div></div>')
_MARKER = re.compile(r"\[(\d+)\]")


def esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def file_name(source: str) -> str:
    return re.split(r"[\\/]", source or "")[-1] or source


def passage_count(n: int) -> str:
    return f"{n} passage{'' if n == 1 else 's'}"


def render_status(text: str) -> str:
    return f'<div class="rag-status">{esc(text)}</div>'


def age_phrase(published: str | None, as_of: str | None) -> str:
    """How old an article was on the as-of date: "3 days before the as-of date" ("" when either is unknown)."""
    try:
        days = (date.fromisoformat((as_of or "")[:10]) - date.fromisoformat((published or "")[:10])).days
    except ValueError:
        return ""
    if days == 0:
        return "published on the as-of date"
    n, unit = (days, "day") if abs(days) < 14 else (days // 7, "week") if abs(days) < 61 else \
        (days // 30, "month") if abs(days) < 730 else (days // 365, "year")
    count = f"{abs(n)} {unit}{'' if abs(n) == 1 else 's'}"
    return f"{count} before the as-of date" if days > 0 else f"{count} after the as-of date"


def _meta(published: str | None, source: str, as_of: str | None = None) -> str:
    age = age_phrase(published, as_of)
    age_html = f' · <span class="rag-age">{esc(age)}</span>' if age else ""
    return f'<div class="rag-meta">{esc(published or "undated")}{age_html} · {esc(file_name(source))}</div>'


def render_error(message: str) -> str:
    return f'<div class="rag-error">⚠ {esc(" ".join(message.split()))}</div>'


CURSOR = '<span class="rag-cursor">▍</span>'


def render_partial(text: str) -> str:
    return f'<div class="rag-answer">{esc(" ".join(text.split()))}{CURSOR}</div>'


def render_stopped(text: str) -> str:
    """An answer stopped while it was written: the text so far (not checked against the sources), marked."""
    note = "Stopped: the rest of this answer was not written and its citations were not checked." if text else \
        "Stopped before the answer began."
    body = f"<p>{esc(' '.join(text.split()))}</p>" if text else ""
    return f'<div class="rag-answer rag-stopped">{body}<div class="rag-note">{esc(note)}</div></div>'


def render_hits(hits: Sequence[Hit], as_of: str | None = None) -> str:
    """The retrieved passages, shown while the answer is being written."""
    if not hits:
        return f'<div class="rag-sources">{render_status("Searching… no passages found")}</div>'
    items = "".join(
        f'<li class="rag-hit"><div class="rag-title">{esc(h.title) or "(untitled)"}</div>'
        f'{_meta(h.published, h.source, as_of)}'
        f'<div class="rag-passage">{esc(_clip(h.chunk.text, SNIPPET_CHARS))}</div></li>'
        for h in hits)
    return (f'<div class="rag-sources">{render_status(f"Searching… {passage_count(len(hits))} found")}'
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
            f'{_meta(published, c.source, answer.as_of)}<div class="rag-passage">{highlight(hit, c)}</div></div>')
    heading = f"Cited source{'' if len(entries) == 1 else 's'} ({len(entries)})"
    return f'<div class="rag-sources">{render_status(heading)}{"".join(entries)}</div>'


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
