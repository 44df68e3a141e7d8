"""HTML page → its article's title, date and main text (navigation, scripts and asides dropped)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Elements whose whole subtree is never article text.
_SKIP = {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form",
         "button", "select", "iframe", "figure", "menu", "dialog"}
_BLOCK = {"p", "div", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
          "blockquote", "pre", "table", "tr", "br", "hr", "dd", "dt", "figcaption", "body"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "source", "wbr", "area", "base", "col", "embed", "track"}
# class/id words that mark page furniture rather than the story
_FURNITURE = re.compile(r"(?:^|[\s_-])(?:nav|menu|cookie|banner|share|social|related|promo|advert|ads?|"
                        r"newsletter|subscribe|paywall|comments?|breadcrumbs?|sidebar|footer|header)(?:$|[\s_-])",
                        re.I)
_DATE_META = ("article:published_time", "datePublished", "pubdate", "publishdate", "date", "dc.date",
              "og:published_time", "parsely-pub-date")


@dataclass(frozen=True)
class Page:
    title: str | None
    published: str | None
    text: str


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, skipping)
        self.skip_depth = 0
        self.blocks: dict[str, list[str]] = {"article": [], "main": [], "body": []}
        self.in_article = 0
        self.in_main = 0
        self.title_parts: list[str] = []
        self.in_title = False
        self.h1: list[str] = []
        self.in_h1 = False
        self.meta: dict[str, str] = {}
        self.time_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = a.get("property") or a.get("name") or a.get("itemprop") or ""
            if key and a.get("content"):
                self.meta[key] = a["content"]
            return
        if tag == "time" and a.get("datetime") and self.time_value is None:
            self.time_value = a["datetime"]
        if tag in _VOID:
            if tag == "br":
                self._newline()
            return
        furniture = bool(_FURNITURE.search(f"{a.get('class', '')} {a.get('id', '')} {a.get('role', '')}"))
        skipping = tag in _SKIP or (furniture and tag not in ("article", "main", "body", "html"))
        self.stack.append((tag, skipping))
        if skipping:
            self.skip_depth += 1
        if tag == "article":
            self.in_article += 1
        elif tag == "main":
            self.in_main += 1
        elif tag == "title":
            self.in_title = True
        elif tag == "h1":
            self.in_h1 = True
        if tag in _BLOCK:
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        # pop up to the matching tag; tolerate unclosed children
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                for popped, skipping in self.stack[depth:]:
                    if skipping:
                        self.skip_depth -= 1
                    if popped == "article":
                        self.in_article -= 1
                    elif popped == "main":
                        self.in_main -= 1
                del self.stack[depth:]
                break
        if tag == "title":
            self.in_title = False
        elif tag == "h1":
            self.in_h1 = False
        if tag in _BLOCK:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_depth:
            return
        if self.in_h1:
            self.h1.append(data)
        for key, active in (("article", self.in_article), ("main", self.in_main), ("body", True)):
            if active:
                self.blocks[key].append(data)

    def _newline(self) -> None:
        for parts in self.blocks.values():
            parts.append("\n\n")


def _join(parts: list[str]) -> str:
    text = "".join(parts)
    lines = [re.sub(r"\s+", " ", line).strip() for line in re.split(r"\n\s*\n", text)]
    return "\n\n".join(line for line in lines if line)


def extract_html(html: str) -> Page:
    """Title (h1, else <title> without its " | Site" tail), publication date and main text of a page."""
    parser = _Extractor()
    parser.feed(html)
    parser.close()
    text = next((t for key in ("article", "main", "body") if (t := _join(parser.blocks[key]))), "")
    title = re.sub(r"\s+", " ", "".join(parser.h1)).strip()
    if not title:
        title = re.split(r"\s+[|–—-]\s+", re.sub(r"\s+", " ", "".join(parser.title_parts)).strip())[0]
    published = next((parser.meta[k] for k in _DATE_META if parser.meta.get(k)), None) or parser.time_value
    return Page(title=title or None, published=published, text=text)
