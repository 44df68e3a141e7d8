"""Words as BM25 sees them: a question's terms are cut by FTS5's own tokenizer, like the indexed text."""

from __future__ import annotations

from pathlib import Path

from rag import Pipeline, Settings, build_index
from rag.lexical import fts_terms

from .fakes import HashEmbedder


def test_question_terms_come_from_the_fts5_tokenizer() -> None:
    # Python's lower() turns "İ" into "i" + a combining dot, which a \w+ split cut off: "stanbul"
    assert fts_terms("Was the İstanbul summit moved?") == ["istanbul", "summit", "moved"]
    # "C++" and "C#" are the word "c" to FTS5, in the index as in the question
    assert fts_terms("Who wrote C++ and C#?") == ["wrote", "c"]
    assert fts_terms("Mbappé's goals") == ["mbappe", "goals"]
    # letters cut out of a longer word stay out, as before ("U.S." is "u" + "s", "Tesla's" is "tesla" + "s")
    assert fts_terms("U.S. banks and Tesla's shares") == ["banks", "tesla", "shares"]
    assert fts_terms("商汤科技 2021") == ["商", "汤", "科", "技", "2021"]


def test_lexical_retrieval_finds_istanbul_and_cpp(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "summit.txt").write_text("Summit moves\n\nThe trade summit will be held in İstanbul next spring, "
                                       "the organisers said on Tuesday.", encoding="utf-8")
    (folder / "language.txt").write_text("Compiler release\n\nThe new compiler speeds up C++ builds by a third, "
                                         "its developers said.", encoding="utf-8")
    (folder / "other.txt").write_text("Harvest report\n\nFarmers brought in a record wheat harvest this year, "
                                      "the ministry said.", encoding="utf-8")
    build_index(folder, settings=settings, embedder=HashEmbedder())
    pipeline = Pipeline(settings, embedder=HashEmbedder())
    try:
        for question, title in (("İstanbul", "Summit moves"), ("C++", "Compiler release")):
            hits = pipeline.retrieve(question, mode="lexical", top_k=3)
            assert [h.title for h in hits] == [title], question
    finally:
        pipeline.close()


def test_an_exception_message_becomes_one_bounded_line() -> None:
    from rag.errors import one_line

    page = RuntimeError("<html>\n  <body>502   Bad Gateway</body>\n</html>" + " filler" * 100)
    line = one_line(page)
    assert "\n" not in line and line.startswith("<html> <body>502 Bad Gateway</body> </html>") and len(line) == 300
    assert one_line(TimeoutError()) == "TimeoutError"


def test_both_servers_estimate_tokens_alike() -> None:
    from rag.embed_remote import RemoteEmbedder
    from rag.generate import OpenAICompatibleGenerator
    from rag.text import estimate_tokens

    texts = ["Harbour pilots struck for 36 hours.", "港口引航员罢工", "𠀀𠀁 rare"]
    assert RemoteEmbedder.count_tokens(object(), texts) == [  # type: ignore[arg-type]
        OpenAICompatibleGenerator("http://127.0.0.1:9").count_tokens(t) for t in texts] == [
        estimate_tokens(t) for t in texts]
    assert estimate_tokens("𠀀𠀁") == 8 > estimate_tokens("港口") == 4


def test_a_web_address_is_read_as_its_words_while_numbers_and_abbreviations_stay_whole() -> None:
    from rag.text import content_words

    assert content_words("Tickets at vexcord42.com.") == ["ticket", "vexcord42", "com"]
    assert content_words("www.harbour-city.gov") == ["www", "harbou", "city", "gov"]  # (stemmed to 6 letters)
    assert content_words("the old street.Police said") == ["old", "street", "polic"]  # a scrape's joined sentences
    assert content_words("U.S. output rose 5.9 percent") == ["u.s", "output", "ros", "5.9", "percen"]
    assert content_words("No.1 seed, e.g. Fig.2") == ["no.1", "seed", "e.g", "fig.2"]


def test_a_name_found_only_in_a_web_address_is_located_in_its_passage() -> None:
    from rag.answer import Draft, check
    from rag.context import Passage
    from rag.types import Chunk, Hit

    text = "New single out Friday, tour dates to follow. vexcord42.com"
    passage = Passage(1, Hit(chunk=Chunk("b-000", "b", text, 0, len(text)), score=1.0, rank=1, title="Music",
                             source="b.txt"), ((0, len(text)),))
    question = "Which band announced a new single and a tour this week?"
    assert check(Draft(1, "vexcord42"), [passage], question) == (Draft(1, "vexcord42"), None)
    assert check(Draft(1, "Zelbrook"), [passage], question)[1] == "absent"
