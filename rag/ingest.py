"""Folder → Articles: read every supported file, detect its encoding, strip web boilerplate."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .dates import parse_date
from .errors import IngestError
from .files import decode_bytes, iter_files, read_bytes
from .htmltext import extract_html
from .types import Article

RULES_PATH = Path(__file__).with_name("data") / "boilerplate.json"

_SENTENCE_END = tuple(".!?。！？…\"'”’»)")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file or .jsonl line left out and why; with kept set, an article indexed all the same, and what to know
    about it (a date that is not one, or later than today)."""

    source: str
    reason: str
    kept: bool = False


@dataclass(frozen=True)
class _Rules:
    drop_line: tuple[re.Pattern[str], ...]
    link_line: tuple[re.Pattern[str], ...]
    list_header: tuple[re.Pattern[str], ...]
    list_item_max_chars: int
    list_item_max_words: int
    trailing_crumb_max_words: int


@lru_cache(maxsize=4)
def load_rules(path: Path = RULES_PATH) -> _Rules:
    """The boilerplate rules, compiled from their JSON data file."""
    data = json.loads(path.read_text(encoding="utf-8"))

    def compiled(key: str) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in data[key])

    return _Rules(compiled("drop_line"), compiled("link_line"), compiled("list_header"),
                  int(data["list_item_max_chars"]), int(data["list_item_max_words"]),
                  int(data["trailing_crumb_max_words"]))


# ---------------------------------------------------------------- cleaning

def normalize_text(text: str) -> str:
    """NFC, unix newlines, no non-breaking or zero-width spaces, single spaces within lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u200b", "").replace("\ufeff", "").replace("\u3000", " ")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines)


def clean_text(text: str, rules: _Rules | None = None) -> str:
    """Remove share widgets, "Read also" lists, paywall notices and site tags; keep the article's own lines."""
    rules = rules or load_rules()
    lines = normalize_text(text).split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            kept.append("")
            i += 1
            continue
        if any(p.match(line) for p in rules.list_header):
            i = _skip_link_list(lines, i + 1, rules)
            continue
        if any(p.match(line) for p in rules.link_line) and _is_headline_like(line, rules, max_words=45):
            i += 1
            continue
        if any(p.search(line) for p in rules.drop_line):
            # a line that is nothing but boilerplate goes; a paragraph with a paywall notice glued on keeps its text
            line = _strip_inline(line, rules)
        if line:
            kept.append(line)
        i += 1
    kept = _drop_trailing_crumbs(kept, rules)
    paragraphs = re.split(r"\n{2,}", "\n".join(kept).strip())
    return "\n\n".join(p.strip() for p in paragraphs if p.strip())


def _is_headline_like(line: str, rules: _Rules, max_words: int | None = None) -> bool:
    words = len(line.split())
    limit = max_words or rules.list_item_max_words
    return len(line) <= rules.list_item_max_chars * (1.5 if max_words else 1) and 0 < words <= limit and not (
        line.endswith(".") and words > 14
    )


def _skip_link_list(lines: list[str], i: int, rules: _Rules) -> int:
    """Index just past a list of headlines that follows a "Read also"-style header."""
    while i < len(lines) and not lines[i]:  # blank lines between header and first item
        i += 1
    while i < len(lines) and lines[i] and _is_headline_like(lines[i], rules):
        i += 1
    return i


def _strip_inline(line: str, rules: _Rules) -> str:
    """The line cut before the first sentence that holds boilerplate ("" when that is the first sentence)."""
    for pattern in rules.drop_line:
        match = pattern.search(line)
        if match:
            head = line[: match.start()]
            cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("。"))
            line = line[: cut + 1].rstrip() if cut >= 0 else ""
    return line if len(line) >= 20 else ""


def _drop_trailing_crumbs(lines: list[str], rules: _Rules) -> list[str]:
    """Drop one- to three-word navigation lines ("Research", "Tags") left at the very end."""
    end = len(lines)
    while end > 0:
        line = lines[end - 1]
        if not line:
            end -= 1
            continue
        if len(line.split()) <= rules.trailing_crumb_max_words and not line.endswith(_SENTENCE_END) and end > 1:
            end -= 1
            continue
        break
    return lines[:end]


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (py3langid), or None for too little text."""
    sample = text[:3000]
    if len(sample.strip()) < 20:
        return None
    import py3langid

    code, _ = py3langid.classify(sample)
    return str(code)


def guess_title(text: str) -> str:
    """The first line (less a Markdown "#"); a first line over 200 characters is a paragraph, not a headline:
    its first 117 characters and "..."."""
    first = text.split("\n", 1)[0].strip().lstrip("#").strip()
    if 0 < len(first) <= 200:
        return first
    return (first[:117] + "...") if len(first) > 120 else first


def make_article(text: str, source: str, *, title: str | None = None, published: str | None = None,
                 url: str | None = None, notes: list[Skipped] | None = None) -> Article:
    """An Article from cleaned text; its id is a hash of its title and text, so it survives rebuilds.

    published is the date the file's metadata gives, as written; without one (or when it is no date) the first
    date near the top of the text is taken. A date that is not one and a date later than today are indexed as
    they can be, and said in notes: a later date keeps the article from every question asked before it."""
    if not text.strip():
        raise IngestError("no article text left after removing boilerplate")
    title = (title or "").strip() or guess_title(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    article_id = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:16]
    date = parse_date(published) if published else None
    if date is None:
        date = parse_date(text[:600])
        if published and notes is not None:
            notes.append(Skipped(source, f"its date {published.strip()[:40]!r} is not a date like 2024-05-31; "
                                         f"indexed with {f'the date in its text, {date}' if date else 'no date'}",
                                 kept=True))
    if date and notes is not None and date > (dt.date.today() + dt.timedelta(days=1)).isoformat():
        notes.append(Skipped(source, f"dated {date}, later than today: questions asked before that day do not "
                                     "see it (fix the date, or ask as of a later day)", kept=True))
    return Article(id=article_id, title=title, text=text, source=source, published=date,
                   language=detect_language(text), url=url, sha256=sha)


# ---------------------------------------------------------------- formats

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)


def parse_file(path: Path, data: bytes) -> tuple[list[Article], list[Skipped]]:
    """Articles in one file's bytes (a .jsonl file holds one per line), and the .jsonl lines left out (with the
    notes on articles kept: Skipped.kept)."""
    text = decode_bytes(data)
    suffix = path.suffix.lower()
    source = str(path)
    notes: list[Skipped] = []
    if suffix in (".html", ".htm"):
        page = extract_html(text)
        return [make_article(clean_text(page.text), source, title=page.title, published=page.published,
                             notes=notes)], notes
    if suffix == ".jsonl":
        return _parse_jsonl(text, source)
    meta: dict[str, str] = {}
    if suffix in (".md", ".markdown"):
        text, meta = _split_front_matter(normalize_text(text))
        text = _strip_markdown(text)
    cleaned = clean_text(text)
    return [make_article(cleaned, source, title=meta.get("title"), published=meta.get("date"),
                         url=meta.get("url"), notes=notes)], notes


_TEXT_KEYS = ("text", "content", "body", "article")


def _parse_jsonl(text: str, source: str) -> tuple[list[Article], list[Skipped]]:
    articles: list[Article] = []
    problems: list[tuple[int, str]] = []
    notes: list[Skipped] = []
    # not str.splitlines(): it also splits at U+2028, U+2029 and U+0085, which JSON allows inside strings
    for lineno, line in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        if not line.strip():
            continue
        try:
            articles.append(_jsonl_article(line, f"{source}#L{lineno}", notes))
        except IngestError as exc:
            problems.append((lineno, str(exc)))
    if not articles:
        first = f"; line {problems[0][0]}: {problems[0][1]}" if problems else ""
        raise IngestError(f"no usable line in this JSON Lines file ({len(problems)} skipped{first})")
    return articles, [Skipped(f"{source}:{lineno}", reason) for lineno, reason in problems] + notes


def _jsonl_article(line: str, source: str, notes: list[Skipped]) -> Article:
    """The article on one .jsonl line; IngestError says why the line cannot be used."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise IngestError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:  # brackets nested thousands deep
        raise IngestError("invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # a number of more than 4,300 digits; the advice after ";" is for programmers
        raise IngestError(f"invalid JSON ({str(exc).split(';')[0]})") from None
    if not isinstance(obj, dict):
        raise IngestError(f'a JSON {_json_type(obj)}, not an object with a "text" field')
    key = next((k for k in _TEXT_KEYS if isinstance(obj.get(k), str)), None)
    if key is None:
        wrong = next((k for k in _TEXT_KEYS if k in obj), None)
        if wrong is not None:
            raise IngestError(f'"{wrong}" is a JSON {_json_type(obj[wrong])}, not a string')
        raise IngestError('no "text" field (nor "content", "body" or "article")')
    if not obj[key].strip():
        raise IngestError(f'"{key}" is empty')
    title = next((obj[k] for k in ("title", "headline") if isinstance(obj.get(k), str)), None)
    date = next((obj[k] for k in ("date", "published", "published_at", "publish_date")
                 if isinstance(obj.get(k), str)), None)
    url = obj.get("url") if isinstance(obj.get("url"), str) else None
    return make_article(clean_text(obj[key]), source, title=title, published=date, url=url, notes=notes)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), "null")


def _split_front_matter(text: str) -> tuple[str, dict[str, str]]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, {}
    meta = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip().strip("'\"")
    return text[match.end():], meta


def _strip_markdown(text: str) -> str:
    text = re.sub(r"^#{1,6}\s+", "", text, flags=re.M)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links keep their words
    return re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)


# ---------------------------------------------------------------- folders

def read_file(path: Path, *, max_file_bytes: int,
              root: Path | None = None) -> tuple[list[Article], list[Skipped]]:
    """Articles in one file, and the .jsonl lines left out; IngestError says why the file cannot be read.

    Only a regular file is read; with root given, a symlink only to a regular file inside root.
    """
    return parse_file(path, read_bytes(path, max_bytes=max_file_bytes, root=root))


def load_articles(root: Path | str, *, max_file_bytes: int = 20_000_000) -> tuple[list[Article], list[Skipped]]:
    """Every article under root, and the files and .jsonl lines skipped with their reasons; never stops on one."""
    root = Path(root)
    if not root.exists():
        raise IngestError(f"{root} does not exist; give a folder of .txt/.md/.html/.jsonl articles")
    articles: list[Article] = []
    skipped: list[Skipped] = []
    for path in iter_files(root):
        try:
            found, bad_lines = read_file(path, max_file_bytes=max_file_bytes, root=root)
        except IngestError as exc:
            skipped.append(Skipped(str(path), str(exc)))
            continue
        articles.extend(found)
        skipped.extend(s for s in bad_lines if not s.kept)  # (notes on articles kept are not skips)
    return articles, skipped
