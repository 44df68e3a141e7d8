from __future__ import annotations

import copy
import http.server
import json
import pickle
import re
import shutil
import threading
import time
from pathlib import Path
from types import GeneratorType, SimpleNamespace

import pytest

from rag import NO_ANSWER, Answer, Filters, Pipeline, build_index
from rag.answer import find_grammar
from rag.budget import cut_to_tokens, fit_passages
from rag.cite import cite, split_claims
from rag.config import DEFAULT_PROMPTS_DIR, Settings
from rag.context import Passage, hits_read, select_context
from rag.errors import ConfigError, GenerationError, PromptError, QueryError
from rag.generate import PROMPT_FIELDS, LlamaCppGenerator, OpenAICompatibleGenerator, Prompts
from rag.types import Chunk, Hit

from .conftest import scripted_pipeline
from .fakes import HashEmbedder, ScriptedGenerator, ServerGenerator


def _shown_numbers(gen: ScriptedGenerator) -> set[int]:
    return {int(n) for n in re.findall(r"^\[(\d+)\]", gen.last_user_message, flags=re.M)}


def test_prompt_files_use_exactly_the_placeholders_the_code_fills(tmp_path: Path) -> None:
    prompts = Prompts(DEFAULT_PROMPTS_DIR)
    for name, fields in PROMPT_FIELDS.items():
        rendered = prompts.render(name, **{f: f"<{f}>" for f in fields})
        assert "$" not in rendered.replace("$no_answer", "") and all(f"<{f}>" in rendered for f in fields)
    bad = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, bad)
    (bad / "answer.txt").write_text("Passages: $passages\nQuestion: $questoin\n")
    with pytest.raises(PromptError, match="questoin"):
        Prompts(bad)
    (bad / "answer.txt").unlink()
    with pytest.raises(PromptError, match="missing"):
        Pipeline(Settings(prompts_dir=bad), embedder=HashEmbedder(), generator=ScriptedGenerator())


def test_cited_answer_points_into_the_article(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed, "The eruption began on the Reykjanes peninsula near Grindavik [1].")
    answer = pipeline.ask("Where did the volcanic eruption begin in Iceland?")
    assert not answer.refused and answer.citations
    hit_ids = {h.chunk.id for h in answer.hits}
    for c in answer.citations:
        assert c.chunk_id in hit_ids
        article = pipeline.store.article(c.article_id)
        assert article is not None and article.text[c.start:c.end] == c.quote
        assert "Grindavik" in c.quote and c.support >= indexed.min_support
    assert answer.sentences[0].supported and answer.sentences[0].markers == (1,)
    assert gen.grammars[0] == find_grammar(len(_shown_numbers(gen)))
    system = gen.calls[0][0]["content"]
    assert NO_ANSWER in system  # code and prompt share the one sentence


def test_nothing_relevant_refuses_without_calling_the_model(indexed: Settings) -> None:
    # the hashing fake gives unrelated words a cosine up to ~0.35 through slot collisions: gate above that
    pipeline, gen = scripted_pipeline(indexed.replace(min_dense_score=0.6))  # no replies: a call would fail the test
    answer = pipeline.ask("zzzz qqqq xxyyzz")
    assert answer.hits and answer.refused and answer.text == NO_ANSWER and not gen.calls
    assert answer.to_dict()["refused"] is True
    empty = pipeline.ask("Where did the volcano erupt?", filters=Filters(date_from="2999-01-01"))
    assert not empty.hits and empty.refused and not gen.calls


def test_model_refusal_and_unsupported_answers_are_refused(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed, NO_ANSWER, "Penguins have invaded the capital city [1].")
    assert pipeline.ask("Which chess player became world champion?").refused
    answer = pipeline.ask("Which chess player became world champion?")
    assert answer.refused and answer.text == NO_ANSWER
    assert answer.sentences and not answer.sentences[0].supported  # kept for inspection, flagged


def test_invented_markers_are_dropped_and_unsupported_claims_flagged(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed, "Ding Liren won the world chess championship in Astana [1][9]. "
                                       "He also won an Olympic gold medal in swimming [1].")
    answer = pipeline.ask("Who won the world chess championship in Astana?")
    shown = _shown_numbers(gen)
    assert 9 not in shown and "[9]" not in answer.text
    assert {c.marker for c in answer.citations} <= shown
    first, second = answer.sentences
    assert first.supported and not second.supported


def test_stream_yields_sources_then_tokens_then_answer(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].")
    events = list(pipeline.stream("What did the thieves steal from the museum?"))
    assert isinstance(events[0], tuple) and all(isinstance(h, Hit) for h in events[0])
    assert all(isinstance(e, str) for e in events[1:-1]) and len(events) > 3
    pieces = [e for e in events[1:-1] if isinstance(e, str)]
    assert isinstance(events[-1], Answer) and "".join(pieces).strip() == events[-1].text
    timings = events[-1].timings
    assert {"retrieval_s", "ttft_s", "total_s", "prompt_tokens"} <= set(timings)


def test_stream_can_be_stepped_from_any_thread(indexed: Settings) -> None:
    """Gradio steps one stream from several worker threads; the models' lock must not mind."""
    pipeline, _ = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].", "They stole coins [1].")
    stream = pipeline.stream("What did the thieves steal from the museum?")
    events: list[object] = []
    while True:  # every step on a fresh thread, as a thread pool may do
        box: list[object] = []
        step = threading.Thread(target=lambda out=box: out.append(next(stream, StopIteration)))
        step.start()
        step.join(timeout=30)
        if box[0] is StopIteration:
            break
        events.append(box[0])
    assert isinstance(events[-1], Answer) and not events[-1].refused
    assert not pipeline.ask("What did the thieves steal from the museum?").refused  # the lock was freed


class _SlowGenerator(ScriptedGenerator):
    """Writes its reply one word every few milliseconds and counts the words it wrote."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies)
        self.written = 0

    def stream(self, messages, *, max_tokens=128, grammar=None):  # type: ignore[no-untyped-def]
        for piece in super().stream(messages, max_tokens=max_tokens, grammar=grammar):
            time.sleep(0.01)
            self.written += 1
            yield piece


def test_closing_a_stream_stops_the_model_and_frees_the_pipeline(indexed: Settings) -> None:
    long_reply = "Thieves stole 42 Roman gold coins [1]. " + "They also took more coins [1]. " * 100
    gen = _SlowGenerator([long_reply, "Thieves stole 42 Roman gold coins [1]."])
    pipeline = Pipeline(indexed, embedder=HashEmbedder(), generator=gen)
    stream = pipeline.stream("What did the thieves steal from the museum?")
    assert isinstance(stream, GeneratorType)  # so the reader may close it
    assert isinstance(next(stream), tuple)  # the sources
    assert isinstance(next(stream), str)  # the first words, then the reader leaves
    stream.close()
    answer = pipeline.ask("What did the thieves steal from the museum?")  # waits for the lock, then gets it
    assert "42" in answer.text and not answer.refused
    assert gen.written < len(long_reply.split()) // 2  # the abandoned answer stopped early


def test_errors_reach_the_reader_of_the_stream(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed)  # no replies: the model call raises
    with pytest.raises(AssertionError, match="more often"):
        list(pipeline.stream("What did the thieves steal from the museum?"))
    with pytest.raises(QueryError, match="empty"):
        next(pipeline.stream("  "))


def test_follow_up_is_rewritten_before_retrieval(indexed: Settings) -> None:
    pipeline, gen = scripted_pipeline(indexed, "How many gold coins did the thieves steal from the history museum?",
                              "They stole 42 Roman gold coins [1].")
    answer = pipeline.ask("and how many?", history=[("Was a museum robbed?", "Yes, a regional history museum [2].")])
    assert "Was a museum robbed?" in gen.calls[0][0]["content"]  # the rewrite saw the conversation
    assert "[2]" not in gen.calls[0][0]["content"]  # but not the markers the reader saw
    assert answer.standalone_question == "How many gold coins did the thieves steal from the history museum?"
    assert "museum" in answer.hits[0].title.lower()
    assert "Question: How many gold coins" in gen.last_user_message


def test_question_validation(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].")
    with pytest.raises(QueryError, match="empty"):
        pipeline.ask("   \n ")
    answer = pipeline.ask("What did the thieves steal from the museum? " + "please " * 2000)
    assert answer.note and "truncated" not in answer.note and "only the first" in answer.note


def test_answer_json_schema(indexed: Settings) -> None:
    pipeline, _ = scripted_pipeline(indexed, "A new road bridge opened to traffic on Monday morning [1].")
    data = pipeline.ask("When did the new river bridge open to traffic?").to_dict()
    assert data["schema_version"] == 1
    assert {"question", "text", "refused", "citations", "sentences", "hits", "timings", "model"} <= set(data)
    assert {"marker", "chunk_id", "article_id", "title", "source", "start", "end", "quote", "support"} \
        <= set(data["citations"][0])
    assert {"text", "markers", "supported"} <= set(data["sentences"][0])


def test_answer_timings_are_read_only_like_the_rest_of_the_answer() -> None:
    steps = {"retrieval_s": 0.5, "total_s": 2.0}
    answer = Answer(question="q", text="t", timings=steps)
    steps["total_s"] = 99.0  # the dict it was built from changes later: the answer does not
    assert answer.timings["total_s"] == 2.0 and answer.timings.get("ttft_s") is None
    with pytest.raises(TypeError):
        answer.timings["total_s"] = 3.0  # type: ignore[index]
    assert json.dumps(answer.to_dict()["timings"]) == '{"retrieval_s": 0.5, "total_s": 2.0}'
    assert pickle.loads(pickle.dumps(answer)) == answer == copy.deepcopy(answer)
    assert Answer(question="q", text="t").to_dict()["timings"] == {}


def test_split_claims_and_cite_units() -> None:
    chunk = Chunk("a-000", "a", "The dam is 90 m tall. It holds 2 billion litres.", 10, 58)
    hit = Hit(chunk=chunk, score=1.0, rank=1, title="Dam")
    passages = [Passage(1, hit, ((0, 21),))]
    assert split_claims("The dam is 90 m tall [1]. It holds water [1].") == [
        ("The dam is 90 m tall [1].", (1,)), ("It holds water [1].", (1,))]
    text, sentences, citations, refused = cite("The dam is 90 m tall [1].", passages)
    assert not refused and citations[0].quote == "The dam is 90 m tall." and citations[0].start == 10
    _, sentences, _, refused = cite("The dam is 75 m tall [1].", passages)
    assert refused and sentences[0].support < 1.0  # a wrong number is not support


def test_claim_about_a_name_no_passage_mentions_is_unsupported(indexed: Settings) -> None:
    # the bridge article is about Eastmoor; the question asks about another town the corpus never mentions
    direct = indexed.replace(answer_mode="direct")  # cite()'s own rule; the find step refuses before the model
    pipeline, _ = scripted_pipeline(direct, "The new road bridge in Westbury opened to traffic on Monday [1].")
    answer = pipeline.ask("When did the new river bridge in Westbury open to traffic?")
    assert answer.refused and answer.sentences and not answer.sentences[0].supported
    pipeline, _ = scripted_pipeline(indexed, "The new road bridge in Eastmoor opened to traffic on Monday [1].")
    assert not pipeline.ask("When did the new river bridge in Eastmoor open to traffic?").refused


def test_citations_that_add_nothing_are_dropped_and_markers_written_once() -> None:
    dam = Hit(chunk=Chunk("a-000", "a", "The dam is 90 m tall. It holds 2 billion litres.", 0, 48), score=1.0, rank=1,
              title="Dam")
    mayor = Hit(chunk=Chunk("b-000", "b", "The mayor visited the dam on Monday.", 0, 36), score=0.5, rank=2,
                title="Mayor")
    passages = [Passage(1, dam, ((0, 21),)), Passage(2, mayor, ((0, 36),))]
    text, sentences, citations, refused = cite("The dam is 90 m tall. [1] [1] [2]", passages)
    assert not refused and text == "The dam is 90 m tall [1]." and [c.marker for c in citations] == [1]
    assert sentences[0].markers == (1,)
    # a second passage that holds words the first lacks stays cited
    text, _, citations, _ = cite("The 90 m dam was visited by the mayor on Monday [1] [2].", passages)
    assert text.endswith("[1] [2].") and [c.marker for c in citations] == [1, 2]


def test_quote_is_the_shortest_window_that_supports_the_claim() -> None:
    text = ("Acme has a market capitalization of $5.9 billion. That is a lot. "
            "Acme's market cap was $16.5 billion at its IPO in 2021.")
    hit = Hit(chunk=Chunk("a-000", "a", text, 100, 100 + len(text)), score=1.0, rank=1, title="Acme")
    ipo = text.index("Acme's market cap")
    _, _, citations, refused = cite("Acme's market capitalization at its IPO was $16.5 billion [1].",
                                    [Passage(1, hit, ((ipo, len(text)),))])
    # the first sentence adds only "capitalization": the quote is the IPO sentence alone
    assert not refused and citations[0].quote == text[ipo:] and citations[0].start == 100 + ipo


def test_a_date_only_line_is_not_shown_to_the_model() -> None:
    text = "Jan 28, 2020 ... In February 2014, Facebook bought WhatsApp for $19 billion."
    hit = Hit(chunk=Chunk("a-000", "a", text, 0, len(text)), score=1.0, rank=1, title="Deals", dense_score=0.5)
    passages = select_context("Who bought WhatsApp?", [hit], HashEmbedder(), max_sentences=4)
    assert [p.text for p in passages] == [text[17:]]


def test_an_answer_that_only_repeats_the_question_is_not_supported() -> None:
    text = "The Halden Deep Field Observatory was carried into orbit by a Vega C rocket from Kourou."
    hit = Hit(chunk=Chunk("a-000", "a", text, 0, len(text)), score=1.0, rank=1, title="Webb")
    passages = [Passage(1, hit, ((0, len(text)),))]
    question = "What rocket carried the Halden Deep Field Observatory into orbit?"
    text_, sentences, _, refused = cite("The rocket carried the Halden Deep Field Observatory into orbit [1].",
                                        passages, question=question)
    assert refused and text_ == NO_ANSWER and not sentences[0].supported
    _, _, citations, refused = cite("A Vega C rocket carried the Halden Deep Field Observatory into orbit [1].",
                                    passages, question=question)
    assert not refused and citations[0].quote == text
    # a yes/no question may be answered in its own words
    _, _, _, refused = cite("The Halden Deep Field Observatory was carried into orbit by a rocket [1].", passages,
                            question="Was the Halden Deep Field Observatory carried into orbit by a rocket?")
    assert not refused


def test_a_later_chunk_of_the_best_article_keeps_that_article_s_rank_bonus() -> None:
    def hit(article: str, n: int, text: str, rank: int) -> Hit:
        return Hit(chunk=Chunk(f"{article}-{n:03d}", article, text, 100 * n, 100 * n + len(text)), score=1.0, rank=rank,
                   title="Harbour crane", dense_score=0.5)

    answer = "The harbour crane was built by Ostrel Works in Tarn."
    look_alike = "The harbour crane was built by Kessel Group in Tarn."  # same words, from a lesser article
    hits = [hit("a", 0, "The harbour crane opened last spring.", 1), hit("b", 0, look_alike, 2),
            hit("c", 0, "Cranes lift boxes.", 3), hit("d", 0, "Boats sail at dawn.", 4),
            hit("e", 0, "The port has a new pier.", 5), hit("a", 2, answer, 6)]
    shown = select_context("Who built the harbour crane in Tarn?", hits, HashEmbedder(), max_sentences=1,
                           max_passages=6)
    assert [p.text for p in shown] == [answer]  # its article ranks first; the look-alike's ranks second


def test_the_headline_is_a_sentence_the_model_may_be_shown() -> None:
    text = "Ship freed after blocking the canal for six days\n\nTugs pulled the ship free on Monday."
    hit = Hit(chunk=Chunk("a-000", "a", text, 0, len(text)), score=1.0, rank=1,
              title="Ship freed after blocking the canal for six days", dense_score=0.5)
    passages = select_context("For how many days did the ship block the canal?", [hit], HashEmbedder(),
                              max_sentences=4)
    assert hit.title in [p.text for p in passages]  # the only sentence that says six days


# ---------------------------------------------------------------- the prompt bounded in tokens

LONG_DIGITS = "What did the thieves steal from the museum? " + "1234567890 " * 1900  # ~2,000 Qwen tokens after the
# 2,000-character cut: it overflowed the 2,048-token window ("Requested tokens (2693) exceed context window")


def _prompt_tokens(gen: ScriptedGenerator, call: int = -1) -> int:
    return sum(gen.count_tokens(m["content"]) for m in gen.calls[call]) + gen.TEMPLATE


def test_a_question_too_long_for_the_window_is_cut_with_a_note(indexed: Settings) -> None:
    gen = ScriptedGenerator(["Thieves stole 42 Roman gold coins [1]."], n_ctx=800)
    answer = Pipeline(indexed, embedder=HashEmbedder(), generator=gen).ask(LONG_DIGITS)
    assert gen.calls and _prompt_tokens(gen) + indexed.max_answer_tokens <= 800  # the fake raises beyond its window
    assert answer.note and "only the first" in answer.note and f"{len(LONG_DIGITS.strip()):,} characters" in answer.note
    assert not answer.refused and "42" in answer.text  # the question's start still found the museum article
    question = re.search(r"Question: (.*)$", gen.last_user_message, flags=re.S)
    assert question and question.group(1).startswith("What did the thieves") and len(question.group(1)) < 2000


def test_sentences_that_do_not_fit_go_lowest_ranked_first(indexed: Settings) -> None:
    question = "What did the thieves steal from the museum?"
    gen = ScriptedGenerator(["Thieves stole 42 Roman gold coins [1]."], n_ctx=660)
    answer = Pipeline(indexed, embedder=HashEmbedder(), generator=gen).ask(question)
    read = hits_read(answer.hits, indexed.context_passages, indexed.top_k)
    every = select_context(question, read, HashEmbedder(),  # all the sentences, had the window room
                           max_sentences=indexed.context_sentences, max_passages=len(read))
    shown = re.findall(r"^\[(\d+)\] (.*)$", gen.last_user_message, flags=re.M)
    assert 0 < len(shown) < len(every) and [int(n) for n, _ in shown] == list(range(1, len(shown) + 1))
    best = sorted(every, key=lambda p: -p.score)[:len(shown)]
    assert [text for _, text in shown] == [p.shown_text for p in every if p in best]  # the best, in their order
    assert gen.grammars[0] == find_grammar(len(shown)) and not answer.refused


def test_fit_passages_drops_the_weakest_and_numbers_the_rest_again() -> None:
    hit = Hit(chunk=Chunk("a-000", "a", "one two three four five six", 0, 27), score=1.0, rank=1, title="T")
    passages = [Passage(n, hit, ((0, 3),), score=s) for n, s in ((1, 0.9), (2, 0.1), (3, 0.5))]
    kept, messages = fit_passages(passages, lambda ps: [{"content": " x" * 10 * len(ps)}], lambda t: len(t.split()),
                                  room=20)
    assert [(p.number, p.score) for p in kept] == [(1, 0.9), (2, 0.5)] and messages == [{"content": " x" * 20}]
    assert fit_passages(passages, lambda ps: [{"content": "x " * 99}], lambda t: len(t.split()), 20)[0] == []


def test_cut_to_tokens_keeps_whole_words_and_counts_tokens_not_characters() -> None:
    def count(text: str) -> int:  # one token a digit, as Qwen counts them
        return sum(ch.isdigit() for ch in text) + len(re.findall(r"[^\W\d]+", text))

    cut = cut_to_tokens("Who won the final? " + "1234567890 " * 50, 40, count)
    assert count(cut) <= 40 and cut.startswith("Who won the final? 1234567890") and cut.endswith("1234567890")
    assert cut_to_tokens("short one", 40, count) == "short one"
    assert cut_to_tokens("alpha beta gamma delta", 2, count, keep_end=True) == "gamma delta"
    assert count(cut_to_tokens("字" * 100, 30, lambda t: 2 * len(t))) <= 30


def test_the_follow_up_rewrite_prompt_is_bounded(indexed: Settings) -> None:
    history = [(f"Question {i} about the museum?", f"Answer {i}: " + "the coins were old " * 300 + f"end of {i}.")
               for i in range(3)]
    gen = ScriptedGenerator(["How many gold coins did the thieves steal from the history museum?",
                             "Thieves stole 42 Roman gold coins [1]."], n_ctx=800)
    answer = Pipeline(indexed, embedder=HashEmbedder(), generator=gen).ask("and how many?", history=history)
    rewrite = gen.calls[0][0]["content"]
    assert "end of 2." in rewrite and "end of 0." not in rewrite  # the latest turn's end is what a follow-up needs
    assert _prompt_tokens(gen, 0) + 60 <= 800 and not answer.refused


def test_a_window_too_small_for_any_question_is_a_config_error(indexed: Settings) -> None:
    pipeline = Pipeline(indexed, embedder=HashEmbedder(), generator=ScriptedGenerator(n_ctx=400))
    with pytest.raises(ConfigError, match="RAG_LLM_CONTEXT"):
        pipeline.ask("What did the thieves steal from the museum?")


class _FailingLlama:
    def create_chat_completion(self, **kwargs: object) -> object:
        raise ValueError("Requested tokens (2693) exceed context window of 2048\n(see llama.cpp)")


def test_backend_errors_become_one_line_generation_errors(indexed: Settings) -> None:
    generator = LlamaCppGenerator.__new__(LlamaCppGenerator)  # the adapter around a llama that fails
    generator._llm, generator.name, generator.n_ctx = _FailingLlama(), "tiny", 2048  # type: ignore[assignment]
    grammar = SimpleNamespace(from_string=lambda text, verbose: None)
    generator._llama_cpp = SimpleNamespace(LlamaGrammar=grammar)  # type: ignore[assignment]
    generator.count_tokens = lambda text: len(text.split())  # type: ignore[method-assign]
    with pytest.raises(GenerationError) as failure:
        Pipeline(indexed, embedder=HashEmbedder(), generator=generator).ask("What did the thieves steal?")
    message = str(failure.value)
    assert "\n" not in message and "2693" in message and "RAG_LLM_CONTEXT" in message
    server = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", timeout=2)  # nothing listens on port 9
    with pytest.raises(GenerationError, match="is it running"):
        server.generate([{"role": "user", "content": "hi"}], max_tokens=5)


class _DyingServer(http.server.BaseHTTPRequestHandler):
    """An OpenAI-style server that streams one piece and then `ending`: nothing (it dies, as a crashed llama.cpp
    server does), "[DONE]" alone (llama_cpp.server cutting a stream short for another request), or a finish_reason
    and then "[DONE]" (an answer that ended)."""

    ending = b""

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"choices": [{"delta": {"content": "The ferry"}}]}\n\n' + self.ending)
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("remote", [True, False])
def test_questions_overlap_only_while_a_model_server_writes(indexed: Settings, remote: bool) -> None:
    gen = ServerGenerator(delay=0.3)
    if not remote:
        gen.remote = False  # as a local model: one question at a time
    pipeline = Pipeline(indexed.replace(server_users=4), embedder=HashEmbedder(), generator=gen)
    questions = {"Which chess player won the championship in Astana?": "Ding Liren",
                 "What did the thieves steal from the museum?": "coins",
                 "Which river does the new bridge cross?": "bridge"}
    answers: dict[str, Answer] = {}
    threads = [threading.Thread(target=lambda q=q: answers.__setitem__(q, pipeline.ask(q)), daemon=True)
               for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert pipeline.answers_at_once == (4 if remote else 1)
    assert gen.most_in_flight >= 2 if remote else gen.most_in_flight == 1
    for question, word in questions.items():  # each answer is its own question's, none lost or mixed
        assert not answers[question].refused and word.lower() in answers[question].text.lower()
    # called without the pipeline's lock (a caller of pipeline.generator), the server is simply asked
    assert pipeline.generator.generate([{"role": "user", "content": "Passages:\n[1] Hi there."}], max_tokens=8)


@pytest.mark.parametrize("ending", [b"", b"data: [DONE]\n\n",
                                    b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'])
def test_a_server_that_dies_mid_answer_is_an_error_not_a_short_answer(ending: bytes) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), type("Server", (_DyingServer,), {"ending": ending}))
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        remote = OpenAICompatibleGenerator(f"http://127.0.0.1:{server.server_address[1]}", timeout=10)
        ask = [{"role": "user", "content": "When did the ferry restart?"}]
        if b"finish_reason" in ending:  # the answer ended: it is the answer
            assert remote.generate(ask, max_tokens=20) == "The ferry"
        else:
            with pytest.raises(GenerationError, match="closed the answer before it ended"):
                remote.generate(ask, max_tokens=20)
    finally:
        server.server_close()


def test_the_server_token_estimate_does_not_undercount_digits_or_cjk() -> None:
    server = OpenAICompatibleGenerator("http://127.0.0.1:9")
    assert server.count_tokens("1234567890 " * 100) >= 1000  # Qwen: one token a digit
    assert server.count_tokens("世界杯决赛" * 100) >= 1000 and server.count_tokens("𠀀" * 100) >= 300
    assert server.count_tokens("The ferry service restarted on Monday.") <= 12  # English stays ~4 characters a token


@pytest.mark.models
def test_the_real_model_answers_or_refuses_questions_longer_than_its_window(tmp_path: Path, real_embedder) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    build_index(None, settings=settings, embedder=real_embedder)  # the bundled sample corpus
    pipeline = Pipeline(settings, embedder=real_embedder)
    rare = "".join(chr(0x3400 + (i * 37) % 0x19B0) for i in range(1990))  # CJK Extension A: 2-3 tokens each
    for question in ("Who won the 2022 World Cup final? " + "1234567890 " * 1900, "谁赢得了2022年世界杯决赛？" + rare):
        answer = pipeline.ask(question)  # was: ValueError "Requested tokens (2693) exceed context window of 2048"
        assert answer.note and "only the first" in answer.note
        assert answer.refused or answer.citations
        assert answer.timings["prompt_tokens"] + settings.max_answer_tokens < pipeline.generator.n_ctx  # type: ignore[attr-defined]
