from __future__ import annotations

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rag.chunk import chunk_article
from rag.ingest import make_article
from rag.text import count_words, split_sentences

TEXT = ("Storm closes ports\n\nPublished: 2024-03-03\n\n"
        "Heavy rain closed three ports on Monday, officials said. Mr. Smith, the harbour master, said "
        "ferries would resume on Wednesday. The U.S. coast guard sent two boats! Were they needed? "
        "Nobody knows yet.\n\nFishermen said the storm was the worst in a decade. Prices of fish rose 12.5% "
        "in a day. Traders expect them to fall again next week.\n\n"
        "台风周一登陆。港口全部关闭！渔民们说这是十年来最严重的一次。")


def test_sentences_respect_abbreviations_decimals_and_cjk() -> None:
    sentences = [TEXT[s:e] for s, e in split_sentences(TEXT)]
    assert "Storm closes ports" in sentences
    assert "Mr. Smith, the harbour master, said ferries would resume on Wednesday." in sentences
    assert "The U.S. coast guard sent two boats!" in sentences
    assert "Prices of fish rose 12.5% in a day." in sentences
    assert "港口全部关闭！" in sentences


def test_offsets_reproduce_text_and_sizes_hold() -> None:
    article = make_article(TEXT * 3, "x.txt")
    chunks = chunk_article(article, max_tokens=40, overlap_tokens=10)
    assert len(chunks) > 3
    for i, chunk in enumerate(chunks):
        assert article.text[chunk.start:chunk.end] == chunk.text
        assert count_words([chunk.text])[0] <= 40
        assert chunk.id == f"{article.id}-{i:03d}"
    # overlap: consecutive chunks share text, and together they cover every sentence
    assert any(b.start < a.end for a, b in zip(chunks, chunks[1:]))
    covered: set[int] = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    for s, e in split_sentences(article.text):
        assert set(range(s, e)) <= covered


def test_ids_are_stable_across_runs() -> None:
    a1, a2 = make_article(TEXT, "a.txt"), make_article(TEXT, "elsewhere/b.txt")
    assert a1.id == a2.id
    assert [c.id for c in chunk_article(a1)] == [c.id for c in chunk_article(a2)]
    assert make_article(TEXT + " More.", "a.txt").id != a1.id


def test_overlong_sentence_is_cut_to_fit() -> None:
    long = "word " * 500 + "end."
    article = make_article("Title\n\n" + long, "x.txt")
    chunks = chunk_article(article, max_tokens=50, overlap_tokens=0)
    assert all(count_words([c.text])[0] <= 50 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "").endswith("end.")
    chinese = make_article("标题\n\n" + "这是一个没有标点的很长的句子" * 40, "z.txt")
    assert all(count_words([c.text])[0] <= 30 for c in chunk_article(chinese, max_tokens=30, overlap_tokens=5))


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
                        max_size=80), min_size=1, max_size=20),
       st.integers(min_value=5, max_value=60))
def test_offsets_hold_for_any_text(parts: list[str], max_tokens: int) -> None:
    text = ". ".join(p for p in parts).strip()
    if not text:
        return
    article = make_article(text, "x.txt")
    for chunk in chunk_article(article, max_tokens=max_tokens, overlap_tokens=max_tokens // 4):
        assert article.text[chunk.start:chunk.end] == chunk.text
        assert chunk.text.strip()
        assert count_words([chunk.text])[0] <= max_tokens
