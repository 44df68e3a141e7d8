"""The chat's article tools and its Stop button in a real browser (Chromium), on the fakes: a Pipeline with the
hashing embedder and a generator that cites the first passage, served in this process so the tests can slow
the model down or look at it. Plus five users asking while an upload indexes, through Gradio's client."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag import Pipeline, Settings, list_articles
from ui.app import build_app, load_css

from .conftest import free_port
from .fakes import HashEmbedder, QuotingGenerator
from .test_ui import CHROMIUM, require_chromium

CABLE_CAR = ("Cable car to the Brannfjell summit reopens\nPublished: 2024-03-14\n\n"
             "The cable car to the Brannfjell summit reopened on Thursday after a winter of repairs to its cables. "
             "The operator said the ride up takes eleven minutes and runs every half hour until October.")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Served:
    """The chat on the fakes, served from this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.generator = settings, QuotingGenerator()
        self.index_embedder = HashEmbedder()  # uploads are embedded apart from questions, as in `rag chat`
        self.pipeline = Pipeline(settings, embedder=HashEmbedder(), generator=self.generator)
        self.demo = build_app(self.pipeline, index_embedder=self.index_embedder)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.demo.queue(default_concurrency_limit=1).launch(
            server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=load_css(),
            max_file_size=settings.max_upload_bytes)


@pytest.fixture
def served(indexed: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(indexed.index_dir / ".incoming"))
    app = Served(indexed)
    try:
        yield app
    finally:
        app.demo.close()


@pytest.fixture
def page(served: Served) -> Iterator[Any]:
    require_chromium(CHROMIUM, os.environ)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1360, "height": 900})
            tab.goto(served.url)
            tab.wait_for_selector(".rag-info")
            yield tab
        finally:
            browser.close()


def _ask(page: Any, question: str) -> str:
    """Asks in the question box and returns the final answer's text (the footer marks it final)."""
    answers = page.locator("#chat .rag-foot").count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    page.wait_for_function(f"document.querySelectorAll('#chat .rag-foot').length > {answers}", timeout=30_000)
    return str(page.locator("#chat .rag-answer").last.inner_text())


def _cited_titles(page: Any) -> list[str]:
    return [t.inner_text() for t in page.locator("#sources-panel .rag-source .rag-title").all()]


@pytest.mark.browser
def test_browser_upload_a_good_and_a_binary_file(page: Any, served: Served, tmp_path: Path) -> None:
    good = tmp_path / "cablecar.txt"
    good.write_text(CABLE_CAR)
    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    future = tmp_path / "tramway.md"  # a typo'd year: added, and said, since no question asked today would see it
    future.write_text("---\ntitle: Tramway line 3 opens\ndate: 2091-06-01\n---\nThe tramway line 3 opened.\n")
    page.get_by_text("Add articles").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(good), str(binary), str(future)])
    page.wait_for_selector("#upload-files .file-preview", timeout=10_000)
    served.index_embedder.delay = 1.0  # long enough to see the progress line
    page.locator("#add").click()
    page.wait_for_selector("#upload-status .rag-progress", timeout=10_000)
    page.wait_for_selector("#upload-status .rag-upload", timeout=30_000)
    status = page.locator("#upload-status").inner_text()
    page.screenshot(path=str(tmp_path / "screenshot-upload.png"), full_page=True)
    assert "Added 2 articles" in status and "Cable car to the Brannfjell summit reopens" in status
    assert re.search(r"photo\.txt: .*binary", status), status
    assert re.search(r"Added, but check:\s*tramway\.md: dated 2091-06-01, later than today", status), status
    assert "7 articles" in page.locator(".rag-info").inner_text()  # the header counts are fresh
    incoming = served.settings.index_dir / ".incoming"  # Gradio's folder (GRADIO_TEMP_DIR, as `rag chat` sets it)
    leftovers = [p.name for p in incoming.rglob("*") if p.is_file() and p.stat().st_size]
    assert not leftovers, leftovers  # its copies of the uploads are deleted; the index keeps its own
    answer = _ask(page, "How long does the cable car ride up to the Brannfjell summit take?")
    assert "[1]" in answer and any("Brannfjell" in t for t in _cited_titles(page))


@pytest.mark.browser
def test_browser_pick_an_article_then_remove_it(page: Any, served: Served) -> None:
    museum = "Thieves steal gold coins from a regional history museum"
    page.get_by_text("Articles in the index").click()
    page.locator("#article-search input, #article-search textarea").first.fill("museum")
    titles = "#articles [data-testid^='cell-'][data-testid$='-0']"  # the title cell of each row
    page.wait_for_function(f"document.querySelectorAll(\"{titles}\").length === 1", timeout=10_000)
    page.locator(titles).filter(has_text=museum).click()
    page.wait_for_selector("#scope-row .rag-scope", timeout=10_000)
    _ask(page, "What was found in a nearby field?")  # a question any article could match: asked of one
    assert all(museum in t for t in _cited_titles(page)) and _cited_titles(page)
    page.locator("#remove").click()
    page.wait_for_selector("#confirm-row .rag-confirm")
    assert museum in page.locator("#confirm-row").inner_text()
    page.locator("#confirm-remove").click()
    page.wait_for_selector("#remove-status .rag-done", timeout=30_000)
    assert "4 articles" in page.locator(".rag-info").inner_text()
    assert not page.locator("#scope-row").is_visible()  # the removed article no longer scopes questions
    _ask(page, "What did thieves steal from the regional history museum?")
    assert not any(museum in t for t in _cited_titles(page))
    assert museum not in {a.title for a in list_articles(served.settings)}


@pytest.mark.browser
def test_browser_stop_mid_answer_then_the_next_question_is_answered(page: Any, served: Served) -> None:
    box = page.locator("#question textarea")
    box.fill("What erupted near the fishing town?")
    box.press("Shift+Enter")  # a new line, not a question
    box.type("And where exactly?")
    page.wait_for_timeout(300)
    assert box.input_value() == "What erupted near the fishing town?\nAnd where exactly?"
    assert page.locator("#chat .rag-question").count() == 0
    served.generator.delay = 0.5  # a word every half second: the answer takes several seconds
    box.press("Enter")
    page.wait_for_selector("#chat .rag-cursor", timeout=30_000)  # it is being written
    page.locator("#stop").click()
    page.wait_for_selector("#chat .rag-stopped", timeout=10_000)
    time.sleep(1.5)
    words = served.generator.words
    time.sleep(1.5)
    assert served.generator.words == words  # the model stopped writing
    served.generator.delay = 0.0
    answer = _ask(page, "Which town is near the volcano?")
    assert "[1]" in answer and _cited_titles(page)
    assert "rag-stopped" in page.locator("#chat").inner_html()  # the stopped answer stays, marked


@pytest.mark.browser
def test_browser_400_px_wide_is_usable(page: Any, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 400, "height": 860})
    page.wait_for_timeout(300)
    _ask(page, "What did the thieves steal from the museum?")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page is {width} px wide at 400"
    for selector in ("#chat", "#question textarea", "#ask", "#stop", "#sources-panel .rag-source"):
        box = page.locator(selector).first.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 400, (selector, box)
    page.locator("#question textarea").fill("Enter sends; Shift+Enter starts a new line")
    page.screenshot(path=str(tmp_path / "screenshot-narrow-fakes.png"), full_page=True)


def test_five_users_ask_while_an_upload_indexes(served: Served, tmp_path: Path) -> None:
    """Each user gets the answer to their own question, none is lost, and none waits for the indexing."""
    from gradio_client import Client, handle_file

    questions = {"What erupted near the fishing town of Grindavik?": "Volcano erupts",
                 "Who became world chess champion after a rapid tiebreak?": "Ding Liren",
                 "What did thieves steal from the regional history museum?": "Thieves steal",
                 "Which bridge opened to traffic after three years of work?": "New river bridge",
                 "How was the rice harvest despite a late monsoon?": "Farmers report"}
    upload = tmp_path / "cablecar.txt"
    upload.write_text(CABLE_CAR)
    served.index_embedder.delay = 4.0  # the upload's embedding step takes 4 s
    finished: dict[str, float] = {}
    answers: dict[str, str] = {}
    cited: dict[str, str] = {}  # the sources panel of each answer
    errors: list[BaseException] = []

    def add() -> None:
        try:
            Client(served.url, verbose=False).predict([handle_file(str(upload))], "", "", "", "",
                                                      api_name="/add_articles")
            finished["upload"] = time.monotonic()
        except BaseException as exc:  # reported below
            errors.append(exc)

    def ask(question: str) -> None:
        try:
            _, chat, sources = Client(served.url, verbose=False).predict(question, [], "", "", "", api_name="/ask")
            answers[question] = " ".join(p["text"] for p in chat[-1]["content"] if p.get("type") == "text")
            cited[question] = sources
            finished[question] = time.monotonic()
        except BaseException as exc:  # reported below
            errors.append(exc)

    uploading = threading.Thread(target=add)
    uploading.start()
    while not served.index_embedder.calls:  # the upload is embedding
        time.sleep(0.05)
    users = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for user in users:
        user.start()
    for thread in [uploading, *users]:
        thread.join(timeout=120)
    assert not errors, errors
    assert set(answers) == set(questions)
    for question, title in questions.items():  # each answer is its own question's, citing its article
        assert "rag-error" not in answers[question] and "[1]" in answers[question], answers[question]
        assert title in cited[question] and cited[question].count('class="rag-source"') == 1, question
    assert max(finished[q] for q in questions) < finished["upload"]  # none waited for the indexing
    assert len(list_articles(served.settings)) == 6

