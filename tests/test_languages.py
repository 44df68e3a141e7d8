"""Questions in other languages: the answer's language, localized refusals, Chinese text in the chunker, BM25 and
the support check, support across languages, and the embedder chosen from the corpus's languages."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path

import pytest

from rag import NO_ANSWER, Pipeline, build_index
from rag.answer import Draft, Outcome, answer_steps, check
from rag.cite import best_support, cite
from rag.config import Settings
from rag.context import Passage
from rag.crosscheck import anchor_support, numbers
from rag.embed import DEFAULT_EMBED_NAME
from rag.embed_choice import pick
from rag.embed_use import USE_NAME
from rag.errors import IndexMismatchError
from rag.languages import answer_rule, is_refusal, no_answer, question_language, table
from rag.lexical import fts_terms
from rag.manifest import read_manifest, write_manifest
from rag.store import Store
from rag.text import content_words, split_sentences
from rag.types import Chunk, Hit

from .fakes import HashEmbedder, NumberEmbedder, ScriptedGenerator

ZH_SAMPLES = ("嫦娥六号带回月球背面样品\n2024年6月28日\n\n6月25日下午，嫦娥六号返回器在内蒙古四子王旗着陆场平稳落地。"
              "经过称重，嫦娥六号共采集月球样品1935.3克！科研人员表示，这批样品有望帮助科学家理解月球的演化历史。")
# Holds every character of "月球样品" many times over, but never the word: one character at a time, BM25 ranks it
# above the article that answers.
ZH_DECOY = ("样品检测中心位于月亮湖畔\n2024年5月2日\n\n样品检测中心位于月亮湖畔，球场旁边有多家商品店，月月有活动，"
            "品种丰富，样样俱全，球迷很多，品牌商品月底打折，样式新颖。")
FR_CABLE = ("Le téléphérique de Villeneuve transporte ses premiers passagers\n14 mai 2024\n\nLa ligne du téléphérique, "
            "longue de 2,8 kilomètres, relie la gare au quartier des Hauts en 9 minutes. Les 42 cabines passent toutes "
            "les 30 secondes.")


def _hit(text: str, title: str = "t", n: int = 0) -> Hit:
    return Hit(chunk=Chunk(id=f"a{n}-000", article_id=f"a{n}", text=text, start=0, end=len(text)), score=1.0,
               rank=n + 1, title=title, source=f"{n}.txt")


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(("question", "language"), [
    ("嫦娥六号带回了多少克样品？", "zh"), ("月の裏側から持ち帰ったサンプルは何グラム？", "ja"),
    ("Quand Notre-Dame a-t-elle rouvert ?", "fr"), ("Wann wurde die Brücke eröffnet?", "de"),
    ("¿Cuándo reabrió Notre-Dame?", "es"), ("When did Notre-Dame reopen?", "en"), ("Où ?", "en"),
])
def test_question_language_by_script_then_py3langid(question: str, language: str) -> None:
    assert question_language(question) == language


def test_refusal_sentences_cover_the_required_languages_and_are_all_recognised() -> None:
    assert {"en", "fr", "zh", "de", "es"} <= set(table())
    assert no_answer("en") == NO_ANSWER and no_answer("xx") == NO_ANSWER
    assert len({no_answer(code) for code in table()}) == len(table())  # really translated
    for code in table():
        assert is_refusal(f"  {no_answer(code)} ") and is_refusal(no_answer(code)[:-1] + " [2].")
    assert not is_refusal("The articles answer this question [1].")
    assert answer_rule("en") == "" and "French" in answer_rule("fr") and no_answer("fr") in answer_rule("fr")


def test_cite_treats_a_refusal_in_any_language_as_refused() -> None:
    hit = _hit("Les 42 cabines passent toutes les 30 secondes.")
    for code in ("fr", "zh", "de", "es"):
        text, _, citations, refused = cite(no_answer(code), [Passage(1, hit, ((0, len(hit.chunk.text)),))])
        assert refused and not citations and text == NO_ANSWER


def test_a_french_question_is_answered_and_refused_in_french(tmp_path: Path) -> None:
    """The find step (the default): the rule asks for the answer's words in French, "none" gives the French
    refusal, and the found words are cited from the French passage."""
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", min_dense_score=0.0)
    build_index(_write(tmp_path / "articles", {"cable.txt": FR_CABLE}), settings=settings, embedder=HashEmbedder())
    gen = ScriptedGenerator(["Source: [1]\nAnswer: none", "Source: [1]\nAnswer: 2,8 kilomètres"])
    pipeline = Pipeline(settings, embedder=HashEmbedder(), generator=gen)
    refused = pipeline.ask("Combien de cabines compte le téléphérique de Villeneuve ?")
    assert refused.refused and refused.text == no_answer("fr") and not refused.citations
    assert "write the answer's words in French" in gen.last_user_message
    answered = pipeline.ask("Quelle est la longueur de la ligne du téléphérique de Villeneuve ?")
    assert not answered.refused and answered.text.startswith("2,8 kilomètres [")
    assert answered.citations[0].quote in FR_CABLE and "2,8" in answered.citations[0].quote
    english = Pipeline(settings, embedder=HashEmbedder(), generator=ScriptedGenerator(["Source: [1]\nAnswer: none"]))
    assert english.ask("How long is the cable car line in Villeneuve?").text == NO_ANSWER
    assert "The question is in" not in english.generator.last_user_message  # type: ignore[attr-defined]


def test_a_french_question_is_answered_and_refused_in_french_in_direct_mode(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", min_dense_score=0.0,
                        answer_mode="direct")
    build_index(_write(tmp_path / "articles", {"cable.txt": FR_CABLE}), settings=settings, embedder=HashEmbedder())
    gen = ScriptedGenerator([no_answer("fr"), "La ligne du téléphérique mesure 2,8 kilomètres [1]."])
    pipeline = Pipeline(settings, embedder=HashEmbedder(), generator=gen)
    refused = pipeline.ask("Combien de cabines compte le téléphérique de Villeneuve ?")
    assert refused.refused and refused.text == no_answer("fr") and not refused.citations
    assert "write the answer in French" in gen.last_user_message
    assert gen.grammars[0] is not None and no_answer("fr") in gen.grammars[0] and NO_ANSWER not in gen.grammars[0]
    answered = pipeline.ask("Quelle est la longueur de la ligne du téléphérique de Villeneuve ?")
    assert not answered.refused and answered.citations[0].quote in FR_CABLE  # the quote stays in French
    english = Pipeline(settings, embedder=HashEmbedder(), generator=ScriptedGenerator([NO_ANSWER]))
    assert english.ask("How long is the cable car line in Villeneuve?").text == NO_ANSWER
    assert "write the answer in" not in english.generator.last_user_message  # type: ignore[attr-defined]


def test_the_find_step_checks_words_from_another_language_by_numbers_and_names() -> None:
    """An English question over a Chinese passage: the words' number must be in the passage (the question's
    "Chang'e-6", written 嫦娥六号 there, does not refuse it); a German passage's name must be written as the
    passage writes it. Without a multilingual embedder nothing is checked across languages."""
    zh = [Passage(1, _hit(ZH_SAMPLES), ((0, len(ZH_SAMPLES)),))]
    question = "How many grams of samples did Chang'e-6 bring back?"
    right = ScriptedGenerator(["Source: [1]\nAnswer: 1,935.3 grams"])
    outcome = _run(answer_steps(right, [], zh, question, no_answer=NO_ANSWER, max_tokens=60, min_support=0.5,
                                embedder=NumberEmbedder()))
    assert not outcome.refused and outcome.text == "1,935.3 grams [1]."
    assert outcome.citations[0].quote == "经过称重，嫦娥六号共采集月球样品1935.3克！"
    wrong = ScriptedGenerator(["Source: [1]\nAnswer: 1,731 grams", "Source: [1]\nAnswer: 2,000 grams"])
    assert _run(answer_steps(wrong, [], zh, question, no_answer=NO_ANSWER, max_tokens=60, min_support=0.5,
                             embedder=NumberEmbedder())).rejected == ("absent", "absent")
    english_only = ScriptedGenerator(["Source: [1]\nAnswer: 1,935.3 grams"])
    assert _run(answer_steps(english_only, [], zh, question, no_answer=NO_ANSWER, max_tokens=60, min_support=0.5,
                             embedder=HashEmbedder())).refused and not english_only.calls
    feldberg = "Die Sternwarte auf dem Feldberg wird von der Astronomin Katrin Albrecht geleitet."
    de = [Passage(1, _hit(feldberg), ((0, len(feldberg)),))]
    asked = "¿Quién dirige el nuevo observatorio del Feldberg?"
    assert check(Draft(1, "Katrin Albrecht"), de, asked, foreign={1}) == (Draft(1, "Katrin Albrecht"), None)
    assert check(Draft(1, "Hans Müller"), de, asked, foreign={1})[1] == "absent"
    assert anchor_support("Hans Müller", de[0].hit, asked)[0] == 0.0


def _run(steps: Generator[str, None, Outcome]) -> Outcome:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def test_bm25_drops_other_languages_function_words_but_not_english_names() -> None:
    assert fts_terms("Wie viele Kabinen hat die Seilbahn?") == ["kabinen", "seilbahn"]
    assert fts_terms("¿Cuándo y dónde abrió el museo?") == ["abrio", "museo"]
    assert "uber" in fts_terms("Was kostet eine Fahrt über die Brücke mit Uber?")  # "über" goes, "Uber" stays
    # an English question keeps them: they are English words too
    assert fts_terms("How many people die in Los Angeles each year?") == ["many", "people", "die", "los", "angeles",
                                                                        "each", "year"]
    assert "e" in fts_terms("Who won the Formula E race in Berlin?")


def test_removing_a_chinese_article_takes_it_out_of_the_trigram_table(tmp_path: Path) -> None:
    from rag.corpus import list_articles, remove_article

    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache")
    build_index(_write(tmp_path / "articles", {"samples.txt": ZH_SAMPLES, "cable.txt": FR_CABLE}), settings=settings,
                embedder=HashEmbedder())
    assert read_manifest(settings.index_dir)["languages"] == {"zh": 1, "fr": 1}
    chinese = next(a for a in list_articles(settings) if a.title.startswith("嫦娥六号"))
    remove_article(chinese.id, settings=settings)
    store = Store(settings.index_dir)
    try:
        assert store.db.execute("SELECT count(*) FROM chunks_fts_cjk").fetchone()[0] == 0
        assert store.search_lexical("月球样品有多少克？", 5) == []
    finally:
        store.close()
    assert read_manifest(settings.index_dir)["languages"] == {"fr": 1}  # counted again by the change


def test_nothing_relevant_is_refused_in_the_question_language(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache")
    build_index(_write(tmp_path / "articles", {"cable.txt": FR_CABLE}), settings=settings, embedder=HashEmbedder())
    gen = ScriptedGenerator()
    answer = Pipeline(settings, embedder=HashEmbedder(), generator=gen).ask("火星上的首都叫什么名字？")
    assert answer.refused and answer.text == no_answer("zh") and not gen.calls


def test_chinese_sentences_split_at_full_width_and_unspaced_stops() -> None:
    text = ("嫦娥六号于5月3日发射升空。探测器由四部分组成！这意味着什么？样品共1935.3克．"
            "科学家很高兴!真的吗?是的……任务结束｡下一步")
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["嫦娥六号于5月3日发射升空。", "探测器由四部分组成！", "这意味着什么？", "样品共1935.3克．",
                         "科学家很高兴!", "真的吗?", "是的……", "任务结束｡", "下一步"]


def test_content_words_of_chinese_are_character_bigrams_and_numbers() -> None:
    words = content_words("嫦娥六号共采集月球样品1935.3克。")
    assert {"月球", "样品", "嫦娥", "1935.3"} <= set(words) and "嫦娥六号共采集月球样品1935.3克" not in words


def test_support_check_reads_chinese_without_spaces() -> None:
    hit = _hit(ZH_SAMPLES)
    support, start, end = best_support("嫦娥六号共采集了1935.3克月球样品 [1]。", hit)
    assert support >= 0.8 and "1935.3" in ZH_SAMPLES[start:end] and "四子王旗" not in ZH_SAMPLES[start:end]
    assert best_support("天问一号在火星乌托邦平原着陆 [1]。", hit)[0] < 0.5


def test_a_claim_in_another_language_is_checked_by_meaning_and_numbers() -> None:
    hit = _hit(ZH_SAMPLES)
    passages = [Passage(1, hit, ((0, len(ZH_SAMPLES)),))]
    question = "How many grams of samples did Chang'e-6 bring back?"
    claim = "Chang'e-6 brought back 1,935.3 grams of lunar samples [1]."
    text, sentences, citations, refused = cite(claim, passages, question=question, embedder=NumberEmbedder())
    assert not refused and sentences[0].supported and citations[0].quote == "经过称重，嫦娥六号共采集月球样品1935.3克！"
    assert cite(claim, passages, question=question)[3]  # no multilingual embedder: no shared words, no support
    wrong = "Chang'e-6 brought back 1,731 grams of lunar samples [1]."
    assert cite(wrong, passages, question=question, embedder=NumberEmbedder())[3]
    assert numbers("1,935.3 grams, 2 000 tonnes, 2,8 km in 2024") == ["1935.3", "2000", "2.8", "2024"]


def test_numbers_match_across_multiplier_words_months_and_number_words() -> None:
    """An amount is its value in any language's words, a month named beside a day is its number, and a passage's
    small numbers written as words count; a claim's amount counts as its value alone, so a wrong scale fails."""
    assert set(numbers("1.2 million readers", claim=True)) <= set(numbers("读者约120万人"))
    assert set(numbers("7,200,000 €", claim=True)) <= set(numbers("Der Umbau kostet 7,2 Millionen Euro"))
    assert set(numbers("un coste de 2.000 millones")) == {"2000", "2000000000"}
    assert numbers("2 mil millones", claim=True) == ["2000000000"]
    assert set(numbers("412,000 euros", claim=True)).isdisjoint(numbers("412 millions d'euros"))
    assert set(numbers("9 March 2023", claim=True)) <= set(numbers("inaugurado el 9 de marzo de 2023"))
    assert "3" not in numbers("Mars is red", claim=True)  # a month's name counts beside a day or year only
    assert "5" in numbers("Die fünf Fähren fahren stündlich") and "5" not in numbers("fünf Fähren", claim=True)
    assert numbers("About 10,000 march in the capital", claim=True) == ["10000"]  # a crowd, not a month
    assert set(numbers("18 December", claim=True)) <= set(numbers("le 18 déc. au soir"))  # abbreviated months
    assert set(numbers("9.5 million euros", claim=True)) <= set(numbers("Le chantier coûtera 9,5 M€."))
    assert set(numbers("30,000 people", claim=True)) <= set(numbers("約3萬人"))  # traditional characters
    assert numbers("1.2345678 million", claim=True) == ["1234567.8"]


def test_the_find_step_accepts_words_written_as_another_language_writes_them() -> None:
    """Found words the model wrote its own way ("8,000,000 yuan" for 800万元, "21 June" for 6月21日) pass the
    check across languages; the same words at another scale, or another day, do not."""
    text = "据介绍，新渡口于6月21日启用，总投资800万元。"
    zh = [Passage(1, _hit(text), ((0, len(text)),))]
    question = "How much did the new ferry pier cost?"
    for words in ("8,000,000 yuan", "8 million yuan", "800万元"):
        assert check(Draft(1, words), zh, question, foreign={1})[1] is None, words
    assert check(Draft(1, "8,000 yuan"), zh, question, foreign={1})[1] == "absent"
    when = "When did the new ferry pier open?"
    assert check(Draft(1, "21 June"), zh, when, foreign={1})[1] is None
    assert check(Draft(1, "21 July"), zh, when, foreign={1})[1] == "absent"
    dated = Hit(chunk=Chunk(id="a9-000", article_id="a9", text="新渡口于21日启用。", start=0, end=10), score=1.0,
                rank=1, title="t", source="9.txt", published="2024-06-21")
    assert anchor_support("21 June", dated, when)[0] == 1.0  # the month from the article's date, "6" not "06"


def test_chinese_questions_find_chinese_words_by_trigrams(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache")
    build_index(_write(tmp_path / "articles", {"samples.txt": ZH_SAMPLES, "decoy.txt": ZH_DECOY,
                                               "cable.txt": FR_CABLE}), settings=settings, embedder=HashEmbedder())
    store = Store(settings.index_dir)
    try:
        found = store.search_lexical("月球样品有多少克？", 5)
        records = store.records([r for r, _ in found])
        assert found and records[found[0][0]].title.startswith("嫦娥六号")
        cjk_rows = store.db.execute("SELECT count(*) FROM chunks_fts_cjk").fetchone()[0]
        french_rows = store.db.execute("SELECT count(*) FROM chunks c JOIN articles a ON a.id = c.article_id "
                                       "WHERE a.language = 'fr'").fetchone()[0]
        assert cjk_rows == store.chunk_count - french_rows  # only Chinese chunks are in the trigram table
        # a Chinese question's Latin names and numbers still reach the other articles
        assert store.search_lexical("Villeneuve的缆车有多长？", 5)
    finally:
        store.close()


def test_an_index_of_the_previous_format_asks_for_a_rebuild(indexed: Settings) -> None:
    manifest = read_manifest(indexed.index_dir)
    write_manifest(indexed.index_dir, {**manifest, "format_version": 1})
    with pytest.raises(IndexMismatchError, match="Rebuild"):
        Store(indexed.index_dir)


def test_pick_keeps_minilm_for_english_and_takes_use_for_mixed_corpora() -> None:
    assert pick({"en": 968, "la": 2, "und": 5})[0] == DEFAULT_EMBED_NAME
    # rgb_en's English snippets as py3langid reads them: only languages the multilingual model knows count
    rgb_en: dict[str | None, int] = {"en": 943, "pcm": 11, "nl": 2, "lb": 2, "bcl": 2, "cy": 2, "eo": 1, "fy": 1}
    assert pick(rgb_en)[0] == DEFAULT_EMBED_NAME
    name, why = pick({"en": 12, "zh": 1, "fr": 1})
    assert name == USE_NAME and "2 of 14" in why


def test_auto_embedder_is_chosen_from_the_languages_and_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from rag import cli, embed_choice, indexing

    loaded: list[str] = []

    def fake_load(settings: Settings, name: str | None = None) -> HashEmbedder:
        loaded.append(str(name))
        embedder = HashEmbedder()
        embedder.name = str(name)
        return embedder

    monkeypatch.setattr(indexing, "load_embedder", fake_load)
    monkeypatch.setattr(embed_choice, "built_with", lambda index_dir: None)
    english = {f"{i}.txt": f"Title {i}\n\nThe council approved a budget of {i} million euros for the roads."
               for i in range(3)}
    mixed = _write(tmp_path / "mixed", {**english, "samples.txt": ZH_SAMPLES, "cable.txt": FR_CABLE})
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache")
    report = build_index(mixed, settings=settings)
    assert loaded == [USE_NAME] and read_manifest(settings.index_dir)["embedder"]["name"] == USE_NAME
    assert "chosen automatically: 2 of 5 articles are not in English" in report.summary()
    assert cli.main(["info", "--index-dir", str(settings.index_dir)]) == 0
    out = capsys.readouterr().out
    assert USE_NAME in out and "chosen automatically" in out and "zh 1" in out
    # an update keeps the embedder the index was built with
    (mixed / "samples.txt").unlink()
    build_index(mixed, settings=settings)
    assert loaded[-1] == USE_NAME
    only_english = Settings(index_dir=tmp_path / "english", cache_dir=tmp_path / "cache")
    build_index(_write(tmp_path / "en", english), settings=only_english)
    assert loaded[-1] == DEFAULT_EMBED_NAME
    assert json.loads((tmp_path / "english" / "manifest.json").read_text())["languages"] == {"en": 3}
    # the note follows the languages as they stand: advice once, not appended at every update, and gone again
    _write(tmp_path / "en", {"samples.txt": ZH_SAMPLES, "cable.txt": FR_CABLE})
    for _ in range(2):
        report = build_index(tmp_path / "en", settings=only_english)
        assert loaded[-1] == DEFAULT_EMBED_NAME
    assert cli.main(["info", "--index-dir", str(only_english.index_dir)]) == 0
    shown = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("embedder:"))
    assert shown.count(f"now call for {USE_NAME}: rebuild with --rebuild to switch") == 1, shown
    assert "the articles are in English" not in shown and shown.count("call for") == 1
    assert report.summary().count("call for") == 1
    (tmp_path / "en" / "samples.txt").unlink()
    (tmp_path / "en" / "cable.txt").unlink()
    assert build_index(tmp_path / "en", settings=only_english).embedder_note == (
        "chosen automatically: the articles are in English")


@pytest.mark.models
def test_use_finds_the_chinese_article_for_an_english_question(tmp_path: Path) -> None:
    """The issue's example: over the sample corpus (12 English, 1 Chinese, 1 French article) the default settings
    pick the multilingual embedder, and an English question finds the Chinese article about Chang'e-6."""
    from rag.config import SAMPLE_CORPUS_DIR
    from rag.embed_use import UniversalSentenceEncoderEmbedder

    embedder = UniversalSentenceEncoderEmbedder()
    vectors = embedder.embed_documents(["经过称重，嫦娥六号共采集月球样品1935.3克。", "苹果公司发布了新款手机。"])
    query = embedder.embed_query("Chang'e-6 brought back 1,935.3 grams of lunar samples.")
    assert vectors.shape == (2, embedder.dim) and float(vectors[0] @ query) > float(vectors[1] @ query) + 0.2
    settings = Settings(index_dir=tmp_path / "index")
    build_index(SAMPLE_CORPUS_DIR, settings=settings)
    assert read_manifest(settings.index_dir)["embedder"]["name"] == USE_NAME
    pipeline = Pipeline(settings)
    hits = pipeline.retrieve("How many grams of lunar samples did China's Chang'e-6 mission bring back from the far "
                             "side of the Moon?")
    assert any("嫦娥六号" in h.title for h in hits[:5])
    hits = pipeline.retrieve("嫦娥六号共采集了多少克月球样品？")
    assert "嫦娥六号" in hits[0].title and hits[0].lexical_score  # BM25 finds it too


# An English question whose answer only a Chinese article gives, beside English articles full of the question's
# words. With NumberEmbedder ("9" is the probe's name, "512" the grams) the Chinese article is the dense side's
# best; BM25 cannot read it at all.
LANTERN_ZH = ("灯笼9号探测器带回小行星样品\n2031年3月2日\n\n灯笼9号探测器返回舱昨日着陆，科研人员称重后确认，"
              "灯笼9号共带回小行星样品512克。")
LANTERN_EN = {f"lantern{i}.txt": f"Lantern-9 probe news {i}\n2 March 2031\n\nThe Lantern-9 probe will bring back "
                                 f"grams of asteroid samples, its team said, in {40 + i} days from now, and the grams "
                                 f"brought back will be weighed at {7 + i} sites."
              for i in range(3)}


def test_a_passage_in_another_language_is_not_sunk_for_lacking_the_questions_words(tmp_path: Path) -> None:
    """BM25 cannot match words across languages, so fusion used to rank a Chinese passage that the multilingual
    embedder put first below every English passage both sides found: its dense rank now stands in for the BM25
    rank it cannot have. An English-only embedder (no cross-language cosines) keeps plain fusion."""
    settings = Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", top_k=3)
    build_index(_write(tmp_path / "corpus", {"lantern_zh.txt": LANTERN_ZH, **LANTERN_EN}), settings=settings,
                embedder=NumberEmbedder())
    question = "How many grams of asteroid samples did the Lantern-9 probe bring back?"
    hits = Pipeline(settings, embedder=NumberEmbedder()).retrieve(question, as_of="2031-03-05")
    assert "灯笼9号" in hits[0].title
    # the hit still shows BM25's own score for it (the "9" it shares), below the English passages'
    assert (hits[0].lexical_score or 0.0) < min(h.lexical_score or 0.0 for h in hits[1:])
    blind = NumberEmbedder()
    blind.multilingual = False  # type: ignore[misc]
    plain = Pipeline(settings, embedder=blind).retrieve(question, as_of="2031-03-05")
    assert all("灯笼9号" not in h.title for h in plain)
    # a Chinese question reads the Chinese article by its own words: nothing stands in
    own = Pipeline(settings, embedder=NumberEmbedder()).retrieve("灯笼9号带回了多少克样品？", as_of="2031-03-05")
    assert "灯笼9号" in own[0].title
