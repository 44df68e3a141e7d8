from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rag.errors import IngestError
from rag.htmltext import extract_html
from rag.ingest import clean_text, decode_bytes, load_articles, parse_date

from .conftest import SEED_CORPUS

CHINESE = "商汤科技周五宣布，公司将在香港交易所重新启动首次公开募股。分析人士认为，美国的制裁将使其失去部分投资者。"
FRENCH = "Le président a annoncé une réforme des retraites très contestée, déclenchant des grèves à Paris et à Lyon."


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_decodes_chinese_in_each_encoding(encoding: str) -> None:
    text = "\n".join([CHINESE] * 3)
    assert decode_bytes(text.encode(encoding)) == text


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8", "utf-16", "utf-8-sig"])
def test_decodes_french_in_each_encoding(encoding: str) -> None:
    text = "\n".join([FRENCH] * 3)
    assert decode_bytes(text.encode(encoding)) == text


def test_binary_and_empty_bytes_are_refused() -> None:
    with pytest.raises(IngestError, match="empty"):
        decode_bytes(b"  \n ")
    with pytest.raises(IngestError):
        decode_bytes(bytes(range(256)) * 20)


FORBIDDEN = ["分享到微信", "扫一扫", "Read Also", "Read also", "Amazon Web Services to launch European sovereign cloud",
             "Article reserved for our subscribers", "You have 35.64% of this article to read",
             "The rest is for subscribers only", "source site-30", "ByteDance says committed"]


def _body_sentences(raw: str) -> list[str]:
    """Sentences of the raw file's long paragraphs (the article body, as a person would mark it)."""
    out = []
    for line in raw.splitlines():
        line = line.strip()
        if len(line) > 200 and not line.lower().startswith(("read also", "you have")):
            out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z“])", line) if len(s.strip()) > 20]
    return out


def test_seed_corpus_boilerplate_removed_and_body_kept() -> None:
    articles, skipped = load_articles(SEED_CORPUS)
    assert not skipped and len(articles) == 2
    for article in articles:
        for phrase in FORBIDDEN:
            assert phrase not in article.text, (phrase, article.source)
        raw = Path(article.source).read_text(encoding="utf-8")
        sentences = _body_sentences(raw)
        assert len(sentences) > 5
        for sentence in sentences:
            assert " ".join(sentence.split()) in article.text, sentence
    titles = {a.title for a in articles}
    assert "Growth stymied on all sides of biometric surveillance firm SenseTime" in titles
    second = next(a for a in articles if a.source.endswith("004_1e8c280dee5fa821.txt"))
    assert "Ethnic recognition options" in second.text  # a subheading is content, not a crumb


def test_rules_are_general_not_the_seed_lines() -> None:
    raw = """• weibo
分享到朋友圈

Storm closes ports along the coast

Published: March 3, 2024

Heavy rain closed three ports on Monday, officials said. Ferries will resume on Wednesday.

Related articles:
Central bank holds rates steady
New museum opens downtown

Advertisement

Fishermen said the storm was the worst in a decade. You have 61% of this article left to read.

Share this article
source site-112
Tags: weather, ports
"""
    text = clean_text(raw)
    assert text.startswith("Storm closes ports along the coast")
    assert "Heavy rain closed three ports on Monday, officials said." in text
    assert "Fishermen said the storm was the worst in a decade." in text
    for gone in ("weibo", "朋友圈", "Central bank holds rates", "New museum", "Advertisement", "61%",
                 "Share this", "site-112", "Tags:"):
        assert gone not in text, gone


def test_html_keeps_the_article_not_the_page() -> None:
    html = """<html><head><title>Bridge opens | Daily Planet</title>
    <meta property="article:published_time" content="2024-05-02T08:00:00Z"><script>var ad = "BUY NOW";</script></head>
    <body><nav><a href="/">Home</a><a href="/world">World news menu</a></nav>
    <div class="cookie-banner">We use cookies to improve your experience.</div>
    <article><h1>New bridge opens over the river</h1><p>The bridge cost &euro;40 million and took three years.</p>
    <aside><h3>Related stories</h3><ul><li>Unrelated headline about taxes</li></ul></aside>
    <p>About 12,000 cars are expected to cross it every day.</p></article>
    <footer>Copyright 2024 Daily Planet</footer></body></html>"""
    page = extract_html(html)
    assert page.title == "New bridge opens over the river"
    assert page.published and page.published.startswith("2024-05-02")
    assert "The bridge cost €40 million and took three years." in page.text
    assert "About 12,000 cars" in page.text
    for gone in ("BUY NOW", "World news menu", "cookies", "Unrelated headline", "Copyright"):
        assert gone not in page.text


def test_formats_titles_dates_languages(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\ntitle: Rates held\ndate: 2023-07-26\n---\n# Rates held\n\n"
                                   "The central bank kept its main rate at 5.25% on Wednesday, as expected.\n")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"title": "Harvest up", "date": "2022-10-01", "url": "http://x/1",
                    "text": "Farmers harvested 8% more rice this year than last year, the ministry said."}) + "\n"
        + "not json\n"
        + json.dumps({"headline": "Bad year", "content": "Vineyards lost half their grapes to an April frost."}) + "\n")
    (tmp_path / "c.txt").write_bytes(("Réforme contestée\n\n" + FRENCH).encode("latin-1"))
    (tmp_path / "d.txt").write_bytes(("商汤科技重启上市\n\n2021年12月13日\n\n" + CHINESE * 2).encode("gb18030"))
    articles, skipped = load_articles(tmp_path)
    by_title = {a.title: a for a in articles}
    assert set(by_title) == {"Rates held", "Harvest up", "Bad year", "Réforme contestée", "商汤科技重启上市"}
    assert by_title["Rates held"].published == "2023-07-26"
    assert by_title["Harvest up"].published == "2022-10-01" and by_title["Harvest up"].url == "http://x/1"
    assert by_title["Harvest up"].source.endswith("b.jsonl#L1")
    assert by_title["Bad year"].source.endswith("b.jsonl#L3")
    assert by_title["Réforme contestée"].language == "fr"
    assert by_title["商汤科技重启上市"].language == "zh"
    assert by_title["商汤科技重启上市"].published == "2021-12-13"
    assert by_title["Rates held"].language == "en"
    assert not skipped  # the bad jsonl line does not sink the file


def test_unreadable_files_are_named_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Good news\n\nThe river was cleaned up by volunteers over the weekend.")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "big.txt").write_text("word " * 5000)
    (tmp_path / "nothing.jsonl").write_text('{"no": "text"}\n')
    locked = tmp_path / "locked.txt"
    locked.write_text("Locked article text that nobody may read at all.")
    locked.chmod(0)
    try:
        articles, skipped = load_articles(tmp_path, max_file_bytes=10_000)
    finally:
        locked.chmod(0o644)
    assert [a.title for a in articles] == ["Good news"] + (["Locked article text that nobody may read at all."]
                                                           if os.geteuid() == 0 else [])
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"] or "encoding" in reasons["binary.txt"]
    assert "limit" in reasons["big.txt"] and "max_file_bytes" in reasons["big.txt"]
    assert "nothing.jsonl" in reasons
    if os.geteuid() != 0:  # root reads anything, so permissions cannot be tested as root
        assert "permission" in reasons["locked.txt"]


def test_parse_date_forms() -> None:
    assert parse_date("Published: 2023-08-23 10:00") == "2023-08-23"
    assert parse_date("August 23, 2023 — Bengaluru") == "2023-08-23"
    assert parse_date("le 15 avril 2019 à Paris") == "2019-04-15"
    assert parse_date("Updated 3 Sept 2021") == "2021-09-03"
    assert parse_date("no date here, only 42 numbers") is None
