from __future__ import annotations

import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from rag.dates import parse_date
from rag.errors import IngestError
from rag.htmltext import extract_html
from rag.ingest import clean_text, decode_bytes, load_articles, read_file

from .conftest import ROOT, SEED_CORPUS

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
    for seed in range(20):  # random blobs, even length, NULs at both parities
        with pytest.raises(IngestError):
            decode_bytes(random.Random(seed).randbytes(4096))
    rng = random.Random(0)
    with pytest.raises(IngestError):  # small 16-bit numbers: NULs at odd offsets, like UTF-16-LE text
        decode_bytes(b"".join(rng.randrange(64).to_bytes(2, "little") for _ in range(2000)))
    stray = b"Sept 14, 2021 ... Medved\x00v defeated Djokovic\x00in the final\x00 on Sunday, in New York."
    assert len(stray) % 2 == 0
    with pytest.raises(IngestError, match="binary"):  # not read two bytes at a time, as "敓瑰″..."
        decode_bytes(stray)
    # UTF-8 with a stray NUL was accepted before the UTF-16 check existed, and still reads as UTF-8
    assert decode_bytes(b"Rain fell on the city all day\x00 and the river rose.") == \
        "Rain fell on the city all day\x00 and the river rose."


RUSSIAN = "Правительство объявило о новых мерах поддержки экономики в понедельник.\nРынки выросли на 2%."
ENGLISH = "The council approved a new budget for the harbour on Tuesday.\nWork starts in May 2025."


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", [ENGLISH, RUSSIAN, "\n".join([CHINESE] * 3), "华为发布Mate 60手机\n\n" + CHINESE],
                         ids=["english", "russian", "chinese", "chinese-mixed"])
def test_utf16_without_bom_decodes(text: str, encoding: str) -> None:
    assert decode_bytes(text.encode(encoding)) == text


def test_utf16_without_bom_file_is_indexed(tmp_path: Path) -> None:
    (tmp_path / "notepad.txt").write_bytes(("Harbour budget approved\n\n" + ENGLISH).encode("utf-16-le"))
    articles, skipped = load_articles(tmp_path)
    assert not skipped and [a.title for a in articles] == ["Harbour budget approved"]
    assert "Work starts in May 2025." in articles[0].text


def _load_in_child(root: Path) -> dict:
    """load_articles(root) and read_file(root/"zero.txt") in a child held to 1 GiB and 30 s, so a regression that
    reads /dev/zero forever or waits on a FIFO fails this test instead of taking the machine down."""
    code = """import json, sys
from pathlib import Path
from rag.errors import IngestError
from rag.ingest import load_articles, read_file
root = Path(sys.argv[1])
articles, skipped = load_articles(root, max_file_bytes=10_000)
try:
    read_file(root / "zero.txt", max_file_bytes=10_000)
    direct = None
except IngestError as exc:
    direct = str(exc)
print(json.dumps({"titles": sorted(a.title for a in articles), "direct": direct,
                  "reasons": {str(Path(s.source).relative_to(root)): s.reason for s in skipped}}))
"""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=30,
                          preexec_fn=limit, cwd=ROOT, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(not Path("/dev/zero").exists() or not hasattr(os, "mkfifo"), reason="needs /dev/zero, FIFOs")
def test_only_regular_files_inside_the_folder_are_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "news", tmp_path / "outside"
    (root / "folder.txt").mkdir(parents=True)
    outside.mkdir()
    (root / "good.txt").write_text("Harbour reopens\n\nThe harbour reopened on Monday after a week of storms.")
    (root / "folder.txt" / "inner.md").write_text("# Bridge repaired\n\nThe old bridge was repaired in June.")
    (outside / "secret.txt").write_text("Private notes\n\nThese notes live outside the indexed folder.")
    (root / "big.txt").write_text("word " * 5000)
    (root / "zero.txt").symlink_to("/dev/zero")
    (root / "away.txt").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(root / "pipe.txt")
    (root / "pipe-link.txt").symlink_to(root / "pipe.txt")
    (root / "broken.txt").symlink_to(root / "missing.txt")
    (root / "loop.txt").symlink_to(root / "loop.txt")
    result = _load_in_child(root)
    assert result["titles"] == ["Bridge repaired", "Harbour reopens"]  # nothing through outdir/
    reasons = result["reasons"]
    assert set(reasons) == {"big.txt", "zero.txt", "away.txt", "pipe.txt", "pipe-link.txt", "broken.txt",
                            "loop.txt", "folder.txt"}
    assert "outside the indexed folder" in reasons["zero.txt"] and "/dev/zero" in reasons["zero.txt"]
    assert "outside the indexed folder" in reasons["away.txt"] and "secret.txt" in reasons["away.txt"]
    assert "not a regular file" in reasons["pipe.txt"] and "FIFO" in reasons["pipe.txt"]
    assert "not a regular file" in reasons["pipe-link.txt"] and "FIFO" in reasons["pipe-link.txt"]
    assert "broken symlink" in reasons["broken.txt"] and "missing.txt" in reasons["broken.txt"]
    assert "symlink loop" in reasons["loop.txt"]
    assert "is a folder" in reasons["folder.txt"]
    assert "limit" in reasons["big.txt"] and "max_file_bytes" in reasons["big.txt"]
    assert result["direct"] and "not a regular file but a device" in result["direct"]


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_read_is_bounded_when_the_size_on_disk_is_wrong() -> None:
    # /proc files are regular files whose stat size is 0 whatever they hold
    with pytest.raises(IngestError, match=r"more than 100 bytes when read .*max_file_bytes"):
        read_file(Path("/proc/self/maps"), max_file_bytes=100)


def test_unusable_jsonl_lines_are_named_and_good_lines_kept(tmp_path: Path) -> None:
    good = [{"title": "Ferry resumes", "text": "The ferry to the islands resumed service on Friday."},
            {"title": "Library opens", "text": "The new library opened\u2028with 40,000 books on Saturday."}]
    lines = ["not json at all", "[1, 2, 3]", json.dumps(good[0]), '{"title": "No body here"}', '{"text": 42}',
             "", '{"content": null}', '{"text": "   "}', '{"text": "Share this article\\nAdvertisement"}',
             "[" * 100_000, json.dumps(good[1], ensure_ascii=False)]
    (tmp_path / "feed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "old-mac.jsonl").write_bytes("\r".join(json.dumps(g) for g in good).encode())  # CR line ends
    articles, skipped = load_articles(tmp_path)
    assert [a.title for a in articles] == ["Ferry resumes", "Library opens"] * 2
    assert articles[1].source.endswith("feed.jsonl#L11")  # U+2028 inside a JSON string does not end the line
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert reasons == {
        "feed.jsonl:1": "invalid JSON (Expecting value at column 1)",
        "feed.jsonl:2": 'a JSON array, not an object with a "text" field',
        "feed.jsonl:4": 'no "text" field (nor "content", "body" or "article")',
        "feed.jsonl:5": '"text" is a JSON number, not a string',
        "feed.jsonl:7": '"content" is a JSON null, not a string',
        "feed.jsonl:8": '"text" is empty',
        "feed.jsonl:9": "no article text left after removing boilerplate",
        "feed.jsonl:10": "invalid JSON (nested too deeply)",
    }


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
    # the bad jsonl line does not sink the file, and is named
    assert [(Path(s.source).name, s.reason) for s in skipped] == [
        ("b.jsonl:2", "invalid JSON (Expecting value at column 1)")]


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


def test_a_date_that_is_not_one_is_never_stored() -> None:
    """'2023-02-30' was stored as it stood (and sorted, filtered and shown as a date); a date that does not exist
    is passed over for the next real one."""
    assert parse_date("2023-02-30") is None and parse_date("2023-13-01") is None
    assert parse_date("February 30, 2023") is None
    assert parse_date("Filed 2023-02-30, corrected on May 2, 2023") == "2023-05-02"
    assert parse_date("2024-02-29 was a leap day") == "2024-02-29"


@pytest.mark.parametrize("date,published,note", [
    ("2023-13-01", "2023-05-02", "is not a date like 2024-05-31; indexed with the date in its text, 2023-05-02"),
    ("2999-01-01", "2023-05-02", "is not a date"),
    ("2091-06-01", "2091-06-01", "dated 2091-06-01, later than today: questions asked before that day do not see it"),
    ("2023-05-03", "2023-05-03", None),
])
def test_an_article_with_a_bad_or_future_date_is_kept_with_a_note(tmp_path: Path, date: str, published: str,
                                                                  note: str | None) -> None:
    """A date in the metadata that is not one fell back without a word, and a typo'd future year hid the article
    from every question: each is indexed as it can be, and said."""
    md = tmp_path / "tram.md"
    md.write_text(f"---\ntitle: Tram line opens\ndate: {date}\n---\nMay 2, 2023. The new tram line opened.\n")
    line = tmp_path / "briefs.jsonl"
    line.write_text(json.dumps({"title": "Tram line opens", "date": date, "text": "May 2, 2023. The tram opened."})
                    + "\n")
    for path in (md, line):
        articles, notes = read_file(path, max_file_bytes=10_000)
        assert articles[0].published == published
        if note is None:
            assert notes == []
        else:
            assert len(notes) == 1 and notes[0].kept and note in notes[0].reason
            assert notes[0].source.startswith(str(path))
