"""The public entry points: Pipeline (models loaded once), ask(), build_index(), search()."""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Steps
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from . import embed_choice
from .answer import REVISIONS, answer_steps, direct_steps, first_piece_timed
from .briefing import BRIEF_HITS, brief, latest_topic
from .budget import QUESTION_SHARE, TEMPLATE_MARGIN, context_window, cut_to_tokens, fit_passages, fit_turns
from .cite import NO_ANSWER
from .config import SAMPLE_CORPUS_DIR, Settings
from .context import Passage, format_passages, hits_read, passage_line, select_context
from .dates import Date, format_day, parse_as_of
from .embed import Embedder
from .errors import ConfigError, IngestError, RagError
from .generate import (
    Generator,
    LlamaCppGenerator,
    OffLock,
    OpenAICompatibleGenerator,
    Prompts,
    line_grammar,
)
from .indexing import IndexReport, Log, run_index
from .languages import answer_rule, no_answer, question_language
from .manifest import read_manifest
from .models import model_name, resolve_llm_path
from .rerank import CrossEncoderReranker, Reranker
from .retrieve import Filters, prepare_question, retrieve
from .store import Store
from .text import content_words
from .types import Answer, Hit

# What Pipeline.stream() yields: the retrieved sources first, then text pieces, then the final Answer.
StreamEvent = Union[tuple[Hit, ...], str, Answer]
AsOf = Union[Date, str, None]  # the day a question is asked on; None = today
History = Sequence[tuple[str, str]]  # (question, answer) pairs of earlier turns, oldest first
REWRITE_TOKENS = 60  # the rewritten follow-up question is one short line
FIND_TOKENS = 60  # "Source: [n]" and the answer's words
_MARKERS = re.compile(r"\s*\[\d{1,3}\]")


class _Failed:
    """An exception raised on the answering thread, on its way to the consumer of Pipeline.stream()."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()  # the answering thread has finished


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name; by default the one the index was built with (embed_choice.py)."""
    return embed_choice.load_embedder(settings)


def build_index(path: str | Path | None = None, *, settings: Settings | None = None,
                embedder: Embedder | None = None, rebuild: bool = False, replace: bool = False,
                log: Log | None = None) -> IndexReport:
    """Index (or bring up to date, or rebuild) the articles under path. None: the folder the index was built
    from, or the bundled sample corpus for a new index. replace: let the index drop the articles of files that
    still exist outside path (else refused: indexing.run_index)."""
    settings = settings or Settings.from_env()
    root = Path(path) if path is not None else indexed_folder(settings) or SAMPLE_CORPUS_DIR
    if embedder is None and not embed_choice.is_auto(settings):
        embedder = load_embedder(settings)
    return run_index(root, settings, embedder, rebuild=rebuild, replace=replace, log=log)  # None: by languages


def indexed_folder(settings: Settings) -> Path | None:
    """The folder (or file) the last `rag index` run of the index read; None for no index (or none recorded). A
    folder that is gone (a drive not mounted) is an IngestError: indexing another one would drop its articles."""
    try:
        root = read_manifest(settings.index_dir).get("root")
    except RagError:
        return None
    if root and not Path(root).exists():
        if Path(root).parts[-2:] == SAMPLE_CORPUS_DIR.parts[-2:]:  # the bundled corpus, its checkout moved
            return SAMPLE_CORPUS_DIR
        raise IngestError(f"{settings.index_dir} was built from {root}, which is not there now; mount or restore it, "
                          "or give the folder to index (rag index PATH)")
    return Path(root) if root else None


def index_info(settings: Settings | None = None, *, check: bool = False) -> dict[str, Any]:
    """The manifest of the index at settings.index_dir (counts, embedder, chunking, generation). With check=True
    the index is opened as a search would open it, so a damaged file raises IndexCorruptError."""
    settings = settings or Settings.from_env()
    if not check:
        return {"index_dir": str(settings.index_dir), **read_manifest(settings.index_dir)}
    store = Store(settings.index_dir)
    store.close()
    return {"index_dir": str(settings.index_dir), **store.manifest,
            "vector_files": [store.state["base"], *store.state["deltas"]], "health": "ok"}


class Pipeline:
    """Models loaded once; retrieve, ask and stream against one index."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 generator: Any = None, reranker: Reranker | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._embedder = embedder
        self._generator = generator
        self._reranker = reranker
        self._store: Store | None = None
        # the local models are not re-entrant: one question at a time (a model server's wait is spent off it)
        self._lock = threading.RLock()
        self.prompts = Prompts(self.settings.prompts_dir)  # placeholders checked now, not mid-answer
        if reranker is None and self.settings.reranker_path:
            self._reranker = CrossEncoderReranker(self.settings.reranker_path, threads=self.settings.threads)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            s = self.settings
            if s.llm_url:
                self._generator = OpenAICompatibleGenerator(s.llm_url, model=s.llm_api_model)
            else:
                path = resolve_llm_path(s.llm_path, s.cache_dir, log=lambda m: print(m, file=sys.stderr))
                self._generator = LlamaCppGenerator(path, n_ctx=s.llm_context, threads=s.generate_threads,
                                                    batch_threads=s.prompt_threads,
                                                    name=model_name(s.llm_path))
        if getattr(self._generator, "remote", False) and not isinstance(self._generator, OffLock):
            self._generator = OffLock(self._generator, self._lock)  # other questions go on while a server writes
        return self._generator

    @property
    def answers_at_once(self) -> int:
        """How many questions the chat lets in at once: one for a local model, which answers one at a time;
        settings.server_users when a model server writes the answers."""
        remote = self.settings.llm_url if self._generator is None else getattr(self._generator, "remote", False)
        return self.settings.server_users if remote else 1

    @property
    def model_name(self) -> str:
        if self._generator is not None:
            return self._generator.name
        return self.settings.llm_api_model if self.settings.llm_url else model_name(self.settings.llm_path)

    @property
    def store(self) -> Store:
        """The live index, reopened when a newer build has been swapped in."""
        if self._store is None or self._store.is_stale():
            name = self._embedder.name if self._embedder else embed_choice.expected_name(self.settings)
            dim = self._embedder.dim if self._embedder else None
            store = Store(self.settings.index_dir, embedder_name=name, embedder_dim=dim)
            if self._store is not None:
                self._store.close()
            self._store = store
        return self._store

    def warm(self) -> None:
        """Load the models and have the local model read the fixed instructions now, so that the first question
        is as quick as the next: llama.cpp keeps the instructions' cache for the prompts that start with them
        (on 2 cores the first answer's time to first token fell from ~10 s to ~4 s)."""
        with self._lock:
            self.embedder.embed_query("warm-up")  # loads the embedder and its ONNX question path (exported once)
            generator = self.generator
            if isinstance(generator, LlamaCppGenerator):  # a server keeps its own cache
                generator.generate([self._system_message(), {"role": "user", "content": "Reply OK."}], max_tokens=1)

    def _system_message(self) -> dict[str, str]:
        name = "find.txt" if self.settings.answer_mode == "find" else "system.txt"
        return {"role": "system", "content": self.prompts.render(name, no_answer=NO_ANSWER)}

    def retrieve(self, question: str, *, filters: Filters | None = None, top_k: int | None = None,
                 mode: str = "hybrid", as_of: AsOf = None) -> tuple[Hit, ...]:
        """Ranked passages as of a date (default today): nothing published after it."""
        with self._lock:
            return retrieve(question, self.store, self.embedder, self.settings, filters=filters,
                            reranker=self._reranker, mode=mode, top_k=top_k, as_of=as_of)

    def ask(self, question: str, *, history: History | None = None, filters: Filters | None = None,
            as_of: AsOf = None) -> Answer:
        """A cited answer as of a date (default today), or refused=True with the NO_ANSWER sentence."""
        answer = None
        for event in self.stream(question, history=history, filters=filters, as_of=as_of):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: str, *, history: History | None = None, filters: Filters | None = None,
               as_of: AsOf = None) -> Iterator[StreamEvent]:
        """Yields the retrieved hits, then the answer text as it is generated, then the final Answer.

        as_of (a date or "YYYY-MM-DD"; default today) is the day the question is asked on: articles published
        after it are not used, and "this week" or "recently" mean the days before it.

        The work runs on a thread of its own that holds the models' lock from start to end (except while a
        model server writes: OffLock), so the consumer may step this generator from any thread (Gradio moves
        a stream between worker threads) and closing it early stops the work at the next token and frees the
        lock.
        """
        day = parse_as_of(as_of)  # a bad date is the caller's error, raised here rather than on the thread
        events: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                with self._lock:
                    steps = self._stream(question, history, filters, day)
                    try:
                        for event in steps:
                            if stop.is_set():
                                break
                            events.put(event)
                    finally:
                        steps.close()
            except BaseException as exc:  # handed to the consumer, raised there
                events.put(_Failed(exc))
            finally:
                events.put(_DONE)

        threading.Thread(target=work, name="rag-answer", daemon=True).start()
        try:
            while (event := events.get()) is not _DONE:
                if isinstance(event, _Failed):
                    raise event.error
                yield event
        finally:
            stop.set()

    def _stream(self, question: str, history: History | None, filters: Filters | None,
                as_of: Date) -> Steps[StreamEvent, None, None]:
        started = time.perf_counter()
        s = self.settings
        text, note = self._fit_question(question, *prepare_question(question, s.max_question_chars), as_of)
        timings: dict[str, float] = {}
        standalone = self._standalone(text, history) if history else text
        if history:
            timings["rewrite_s"] = round(time.perf_counter() - started, 3)
        t = time.perf_counter()
        hits = retrieve(standalone, self.store, self.embedder, s, filters=filters, reranker=self._reranker,
                        as_of=as_of, lead_extra=s.lead_article_extra)
        timings["retrieval_s"] = round(time.perf_counter() - t, 3)
        yield hits
        language = question_language(question)  # the answer, and its refusal, are written in it
        refusal = no_answer(language)

        def finish(answer_text: str, refused: bool, **extra: Any) -> Answer:
            timings["total_s"] = round(time.perf_counter() - started, 3)
            return Answer(question=question, text=answer_text, refused=refused, hits=hits, timings=timings,
                          model=self.model_name, standalone_question=standalone if history else None,
                          note=note, as_of=as_of.isoformat(), **extra)

        if not self._relevant(standalone, hits):
            yield finish(refusal, True)  # nothing relevant: the model is not called
            return
        if (topic := latest_topic(standalone)) is not None:  # "the latest news on X": no fact to find
            more = retrieve(standalone, self.store, self.embedder, s, filters=filters, reranker=self._reranker,
                            as_of=as_of, top_k=max(BRIEF_HITS, s.top_k))
            if briefed := brief(standalone, topic, language, more, self.embedder, min_support=s.min_support):
                text, sentences, citations = briefed
                hits = more  # the answer's hits hold every article it cites
                yield text
                yield finish(text, False, sentences=sentences, citations=citations, rejected=("latest",))
                return
        t = time.perf_counter()
        read = hits_read(hits, s.context_passages, s.top_k)
        passages = select_context(standalone, read, self.embedder, max_sentences=s.context_sentences,
                                  max_passages=len(read))
        passages, messages = fit_passages(passages,
                                          lambda shown: self._answer_messages(shown, standalone, as_of, language),
                                          self.generator.count_tokens, self._room(s.max_answer_tokens))
        timings["context_s"] = round(time.perf_counter() - t, 3)
        if not passages:  # not one sentence fits beside the question: nothing to answer from
            yield finish(refusal, True)
            return
        timings["prompt_tokens"] = sum(self.generator.count_tokens(m["content"]) for m in messages)
        t = time.perf_counter()
        if s.answer_mode == "find":
            steps = answer_steps(self.generator, messages, passages, standalone, no_answer=refusal,
                                 max_tokens=min(s.max_answer_tokens, FIND_TOKENS), min_support=s.min_support,
                                 embedder=self.embedder,
                                 second_read=self._second_read(standalone) if s.second_read != "off" else None,
                                 agree=s.second_read == "agree", held=s.second_read == "held", as_of=as_of,
                                 window_days=s.recent_window_days, years=s.year_check == "reject",
                                 rescue_reads=s.rescue_reads, top_read=s.top_read,
                                 event_dates=s.event_date == "move",
                                 reask=lambda shown: self._answer_messages(shown, standalone, as_of, language))
        else:
            steps = direct_steps(self.generator, messages, passages, standalone, no_answer=refusal,
                                 max_tokens=s.max_answer_tokens, min_support=s.min_support, embedder=self.embedder)
        outcome = yield from first_piece_timed(steps, lambda: timings.setdefault(
            "ttft_s", round(time.perf_counter() - started, 3)))
        timings["generation_s"] = round(time.perf_counter() - t, 3)
        if retries := [r for r in outcome.rejected if r not in REVISIONS]:  # drafts asked again
            timings["retries"] = len(retries)
        yield finish(outcome.text, outcome.refused, sentences=outcome.sentences, citations=outcome.citations,
                     rejected=outcome.rejected)

    def _second_read(self, question: str) -> Callable[[Passage], list[dict[str, str]]]:
        """The messages asking the question again over one passage alone (answer.answer_steps)."""
        def messages(passage: Passage) -> list[dict[str, str]]:
            return [{"role": "user", "content": self.prompts.render(
                "second_read.txt", passage=passage_line(passage), question=question)}]
        return messages

    def _answer_messages(self, passages: Sequence[Passage], question: str, as_of: Date,
                         language: str = "en") -> list[dict[str, str]]:
        rule = answer_rule(language, find=self.settings.answer_mode == "find")  # "" for English
        return [self._system_message(),
                {"role": "user", "content": self.prompts.render("answer.txt", passages=format_passages(passages),
                                                                 question=question, today=format_day(as_of),
                                                                 answer_language=rule)}]

    def _room(self, answer_tokens: int) -> int:
        """Tokens of message text that fit the model's window beside its chat template and the answer."""
        return context_window(self.generator, self.settings.llm_context) - answer_tokens - TEMPLATE_MARGIN

    def _fit_question(self, question: str, text: str, note: str | None, as_of: Date) -> tuple[str, str | None]:
        """The question cut to its share of the prompt in tokens, with the note saying so when it is cut."""
        count = self.generator.count_tokens
        fixed = sum(count(m["content"]) for m in self._answer_messages([], "", as_of))
        limit = int((self._room(self.settings.max_answer_tokens) - fixed) * QUESTION_SHARE)
        if limit < 16:
            window = context_window(self.generator, self.settings.llm_context)
            raise ConfigError(f"the model's context of {window} tokens leaves {max(limit, 0)} for a question after "
                              f"the instructions ({fixed} tokens) and the answer ({self.settings.max_answer_tokens}); "
                              "raise RAG_LLM_CONTEXT or lower RAG_MAX_ANSWER_TOKENS")
        if count(text) <= limit:
            return text, note
        cut = cut_to_tokens(text, limit, count)
        whole = " ".join(question.split())
        return cut, f"the question was {len(whole):,} characters; only the first {len(cut):,} were used"

    def _relevant(self, question: str, hits: Sequence[Hit]) -> bool:
        """Is anything retrieved close enough to ask the model? (cosine, or most content words present)"""
        if not hits:
            return False
        best_dense = max((h.dense_score or 0.0) for h in hits)
        asked = set(content_words(question))
        best_overlap = max((len(asked & set(content_words(h.chunk.text))) / (len(asked) or 1)) for h in hits)
        return best_dense >= self.settings.min_dense_score or best_overlap >= 0.5

    def _standalone(self, question: str, history: History) -> str:
        """The follow-up rewritten as a question that stands alone, using the last turns."""
        fixed = self.generator.count_tokens(self.prompts.render("rewrite.txt", history="", question=question))
        # the reader saw "[2]"; the rewriter would copy it into the question
        turns = fit_turns([f"User: {q}\nAssistant: {_MARKERS.sub('', a)}" for q, a in list(history)[-3:]],
                          self._room(REWRITE_TOKENS) - fixed, self.generator.count_tokens)
        messages = [{"role": "user", "content": self.prompts.render("rewrite.txt", history=turns, question=question)}]
        rewritten = self.generator.generate(messages, max_tokens=REWRITE_TOKENS, grammar=line_grammar()).strip()
        return rewritten or question

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


@lru_cache(maxsize=4)
def _cached_pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings)


def ask(question: str, *, history: History | None = None, settings: Settings | None = None,
        filters: Filters | None = None, as_of: AsOf = None) -> Answer:
    """A cited answer from the index at settings.index_dir as of a date (default today); models are loaded once
    per settings value."""
    return _cached_pipeline(settings or Settings.from_env()).ask(question, history=history, filters=filters,
                                                                 as_of=as_of)


def search(question: str, *, settings: Settings | None = None, filters: Filters | None = None,
           top_k: int | None = None, as_of: AsOf = None) -> tuple[Hit, ...]:
    """Ranked passages for a question from the index at settings.index_dir, as of a date (default today)."""
    return _cached_pipeline(settings or Settings.from_env()).retrieve(question, filters=filters, top_k=top_k,
                                                                      as_of=as_of)

