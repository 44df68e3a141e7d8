"""The chat's new pieces without a browser: the as-of date, article ages on source cards, asking about one
picked article, Stop, the upload's progress and result, and the list of articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Answer, Chunk, Citation, Hit, Settings, list_articles
from ui.articles import list_rows, pick, upload_steps
from ui.chat import chat_turn, mark_stopped, respond
from ui.render import age_phrase, render_partial, render_sources, render_status

from .conftest import scripted_pipeline
from .fakes import HashEmbedder


@pytest.mark.parametrize("published,as_of,phrase", [
    ("2024-05-28", "2024-05-31", "3 days before the as-of date"),
    ("2024-05-30", "2024-05-31", "1 day before the as-of date"),
    ("2024-05-31", "2024-05-31", "published on the as-of date"),
    ("2024-04-30", "2024-05-31", "4 weeks before the as-of date"),
    ("2023-12-01", "2024-05-31", "6 months before the as-of date"),
    ("2021-02-22", "2024-05-31", "3 years before the as-of date"),
    (None, "2024-05-31", ""), ("2024-05-28", None, ""),
])
def test_age_on_the_as_of_date(published: str | None, as_of: str | None, phrase: str) -> None:
    assert age_phrase(published, as_of) == phrase


def test_each_source_card_shows_its_date_and_age() -> None:
    chunk = Chunk("a-000", "a", "The dam is 90 m tall.", 0, 21)
    hit = Hit(chunk=chunk, score=1.0, rank=1, title="Dam opens", source="dams.txt", published="2024-05-28")
    cite = Citation(marker=1, chunk_id="a-000", article_id="a", title="Dam opens", source="dams.txt", start=0,
                    end=21, quote="The dam is 90 m tall.", support=1.0, published="2024-05-28")
    answer = Answer(question="How tall?", text="90 m [1].", citations=(cite,), hits=(hit,), as_of="2024-05-31")
    assert "2024-05-28 · <span class=\"rag-age\">3 days before the as-of date</span>" in render_sources(answer)


def test_the_as_of_box_sets_the_day_the_question_is_asked_on(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].")
    *_, (_, chat, sources, _) = chat_turn(pipeline, "What did thieves steal from the museum?", [], [],
                                          as_of="2021-02-25")
    assert "3 days before the as-of date" in sources and "rag-foot" in chat[-1]["content"]
    # the museum story of 2021-02-22 did not exist yet on 2021-02-01: nothing from it is used
    pipeline, gen = scripted_pipeline(indexed, "x [1].")
    views = list(respond("What did thieves steal from the museum?", [], pipeline, as_of="2021-02-01"))
    assert "Thieves steal" not in views[-1].sources
    pipeline, gen = scripted_pipeline(indexed)
    *_, (_, chat, _, _) = chat_turn(pipeline, "What did thieves steal?", [], [], as_of="31/05/2024")
    assert "31/05/2024" in chat[-1]["content"] and "YYYY-MM-DD" in chat[-1]["content"] and not gen.calls


def test_a_picked_article_scopes_the_question_and_overrides_title_words(indexed: Settings) -> None:
    chess = list_articles(indexed, title="chess")[0]
    pipeline, _ = scripted_pipeline(indexed, "Ding Liren won the title [1].")
    *_, (_, _, sources, _) = chat_turn(pipeline, "Who won?", [], [], "museum", "", "",
                                       article={"id": chess.id, "title": chess.title})
    assert chess.title in sources and "museum" not in sources.lower()


def test_stop_keeps_the_text_so_far_marked_and_leaves_finished_answers_alone() -> None:
    partial = [{"role": "user", "content": "q"}, {"role": "assistant", "content": render_partial("Lava flowed")}]
    stopped = mark_stopped(partial)[-1]["content"]
    assert "Lava flowed" in stopped and "rag-stopped" in stopped and "▍" not in stopped
    as_parts = [{"role": "assistant", "content": [{"type": "text", "text": render_partial("Lava <b>")}]}]
    assert "Lava &lt;b&gt;" in mark_stopped(as_parts)[-1]["content"]
    waiting = [{"role": "assistant", "content": render_status("Searching the articles…")}]
    assert "before the answer began" in mark_stopped(waiting)[-1]["content"]
    final = [{"role": "assistant", "content": '<div class="rag-answer"><p>Done [1].</p></div>'}]
    assert mark_stopped(final) == final and mark_stopped([]) == []


def test_upload_steps_show_progress_then_what_was_added_and_rejected(indexed: Settings, tmp_path: Path) -> None:
    good = tmp_path / "cablecar.txt"
    good.write_text("Cable car to the Brannfjell summit reopens\n\nThe cable car reopened on Thursday after "
                    "repairs. The ride takes eleven minutes.")
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK\x03\x04")
    pipeline, _ = scripted_pipeline(indexed)
    steps = list(upload_steps(pipeline, [str(good), str(bad)], embedder=HashEmbedder(delay=1.2)))
    progress, final = steps[:-1], steps[-1]
    assert progress and all(not s.done for s in progress) and final.done
    assert any("embedd" in s.html.lower() for s in progress) and "rag-progress" in progress[-1].html
    assert "Added 1 article" in final.html and "Cable car to the Brannfjell summit reopens" in final.html
    assert "notes.docx" in final.html and "unsupported file type .docx" in final.html
    again = list(upload_steps(pipeline, [str(good)], embedder=HashEmbedder()))[-1]
    assert "already in the index" in again.html and "Cable car" in again.html
    nothing = list(upload_steps(pipeline, [], "", "", ""))
    assert len(nothing) == 1 and "nothing to add" in nothing[0].html
    pasted = list(upload_steps(pipeline, None, "Text of a note.", "A note", "tomorrow", HashEmbedder()))[-1]
    assert "tomorrow" in pasted.html and not pasted.pasted_taken  # the boxes keep it, to be corrected


def test_the_list_of_articles_newest_first_searchable_and_picked(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed)
    listing = list_rows(pipeline)
    assert [r[1] for r in listing.rows] == sorted((r[1] for r in listing.rows), reverse=True)
    assert listing.rows[0][2:] == ["002_bridge_opening.txt", "en", 3] and "5 articles" in listing.note
    found = list_rows(pipeline, "chess")
    assert len(found.rows) == 1 and "1 article match" in found.note
    assert pick(found.ids, found.rows, 0) == {"id": found.ids[0], "title": found.rows[0][0], "chunks": "2"}
    assert pick(found.ids, found.rows, 3) is None
    missing, _ = scripted_pipeline(indexed.replace(index_dir=indexed.index_dir.parent / "none"))
    assert "rag-error" in list_rows(missing).note and list_rows(missing).rows == []
