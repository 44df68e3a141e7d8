"""Generator protocol, the llama.cpp and OpenAI-compatible adapters, prompt files and the answer grammar."""

from __future__ import annotations

import contextlib
import json
import string
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import GenerationError, MissingDependencyError, PromptError, one_line
from .text import estimate_tokens

T = TypeVar("T")

Message = dict[str, str]

# Every prompt file, and the placeholders the code fills in; checked when a Pipeline starts.
PROMPT_FIELDS: dict[str, frozenset[str]] = {
    "system.txt": frozenset({"no_answer"}),
    "find.txt": frozenset({"no_answer"}),
    "answer.txt": frozenset({"passages", "question", "today", "answer_language"}),
    "rewrite.txt": frozenset({"history", "question"}),
    "second_read.txt": frozenset({"passage", "question"}),
}


@runtime_checkable
class Generator(Protocol):
    """A chat model. An adapter may also have `n_ctx`, its context window in tokens (else the settings' is used);
    errors of the backend come out as GenerationError."""

    name: str

    def generate(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> str: ...

    def stream(self, messages: Sequence[Message], *, max_tokens: int,
               grammar: str | None = None) -> Iterator[str]: ...

    def count_tokens(self, text: str) -> int: ...


class Prompts:
    """The templates in prompts/, with their placeholders checked against what the code supplies."""

    def __init__(self, folder: Path) -> None:
        self.templates: dict[str, string.Template] = {}
        for name, expected in PROMPT_FIELDS.items():
            path = Path(folder) / name
            try:
                template = string.Template(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise PromptError(f"prompt file {path} is missing; restore it or set RAG_PROMPTS_DIR") from None
            found = {m.group("named") or m.group("braced") for m in template.pattern.finditer(template.template)
                     if m.group("named") or m.group("braced")}
            if found != expected:
                unknown, missing = sorted(found - expected), sorted(expected - found)
                raise PromptError(
                    f"prompt {path} has placeholders {sorted(found)}; it must use exactly {sorted(expected)}"
                    + (f" (unknown: {unknown})" if unknown else "") + (f" (missing: {missing})" if missing else "")
                )
            self.templates[name] = template

    def render(self, name: str, **values: str) -> str:
        return render_prompt(self.templates[name], **values)


def render_prompt(template: string.Template, **values: str) -> str:
    """Fill a template; a placeholder without a value is a PromptError, not a silent "$name"."""
    try:
        return template.substitute(values)
    except KeyError as exc:
        raise PromptError(f"prompt placeholder ${exc.args[0]} has no value") from None


def _gbnf_literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def answer_grammar(n_passages: int, no_answer: str, *, max_claims: int = 1, max_chars: int = 300) -> str:
    """GBNF for the answer: NO_ANSWER, or 1..max_claims one-line sentences each ending in citations of
    passages 1..n_passages. No newlines, bounded length: a small model cannot run on to max_tokens."""
    numbers = " | ".join(_gbnf_literal(str(i)) for i in range(1, n_passages + 1))
    return "\n".join([
        f"root ::= refusal | claim (\" \" claim){{0,{max_claims - 1}}}",
        f"refusal ::= {_gbnf_literal(no_answer)}",
        f"claim ::= [^\\[\\]\\n ] [^\\[\\]\\n]{{1,{max_chars}}} cite cite? \".\"",
        "cite ::= \" [\" num \"]\"",
        f"num ::= {numbers}",
    ])


def line_grammar(max_chars: int = 200) -> str:
    """GBNF for one line of text (used for the follow-up rewrite)."""
    return f"root ::= [^\\n]{{1,{max_chars}}}"


_PARAMS_LOCK = threading.Lock()


PROMPT_CACHE_BYTES = 256 << 20  # saved model states, least recently used dropped first


@contextlib.contextmanager
def _no_weight_repacking(llama_cpp: Any) -> Iterator[None]:
    """Load without llama.cpp's "extra buffer types" (weights repacked for AMX/AVX-512 kernels).

    llama-cpp-python 0.3.36 built on a Xeon with AMX segfaulted in every batched prompt read with them on
    (any answer longer than one token); without them it answers. Where they do not crash they do not pay
    either: on a 2-core AMD EPYC (AVX-512, no AMX), the default model read a 677-token prompt at 66 tokens/s with
    them against 98 without (medians of 4, twice each, alone), though it wrote tokens faster (0.075 against 0.10
    s each); the prompt read is the time to first token. Llama() offers no keyword for the field, so its
    default-parameters factory is wrapped while one model loads."""
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def defaults() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    with _PARAMS_LOCK:
        module.llama_model_default_params = defaults
        try:
            yield
        finally:
            module.llama_model_default_params = original


def _lean_llama(llama_cpp: Any) -> Any:
    """llama_cpp.Llama whose saved states (the prompt cache's entries) hold the model's context and tokens only.

    Llama.save_state also copies its logits table, n_batch x vocabulary floats (512 x 151,936: 311 MB for the
    default model), which sampling never reads unless logits_all is set (it is not: the sampler reads the
    context's own logits, and a restored state reads one token again before sampling). LlamaRAMCache counts
    only the context's bytes against its capacity, so each saved state also held 311 MB unseen. Measured on
    the sample corpus (2 cores, alone): saving and restoring took 5.2 s of a 9.3 s time to first token."""
    np = __import__("numpy")
    ctypes = __import__("ctypes")
    c = llama_cpp.llama_cpp

    class LeanLlama(llama_cpp.Llama):  # type: ignore[misc,name-defined]
        def save_state(self) -> Any:
            size = c.llama_state_get_size(self._ctx.ctx)
            buffer = (ctypes.c_uint8 * int(size))()
            used = int(c.llama_state_get_data(self._ctx.ctx, buffer, size))
            if used > int(size):
                raise RuntimeError("failed to copy the llama state")
            return llama_cpp.LlamaState(input_ids=self.input_ids[: self.n_tokens].copy(),
                                        scores=np.empty((0, 0), dtype=np.single), n_tokens=self.n_tokens,
                                        llama_state=ctypes.string_at(buffer, used), llama_state_size=used,
                                        seed=self._seed)

        def load_state(self, state: Any) -> None:
            self.input_ids[: state.n_tokens] = state.input_ids
            self.n_tokens = state.n_tokens
            self._requires_eval = True  # the next generate() reads one token again: fresh logits
            self._seed = state.seed
            data = (ctypes.c_uint8 * state.llama_state_size).from_buffer_copy(state.llama_state)
            if c.llama_state_set_data(self._ctx.ctx, data, state.llama_state_size) != state.llama_state_size:
                raise RuntimeError("failed to set the llama state")

    return LeanLlama


class LlamaCppGenerator:
    """A local GGUF model through llama-cpp-python; its chat template is read from the file."""

    def __init__(self, model_path: Path, *, n_ctx: int = 2048, threads: int = 0, batch_threads: int = 0,
                 name: str | None = None) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise MissingDependencyError("llama-cpp-python is not installed. Run: pip install -e '.[models]'") from None
        self._llama_cpp = llama_cpp
        self.name = name or Path(model_path).stem
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "verbose": False, "n_batch": 512}
        if threads:  # writing a token: one matrix-vector pass per token, bound by memory bandwidth
            kwargs["n_threads"] = threads
        if batch_threads:  # reading the prompt: matrix-matrix work that scales with cores
            kwargs["n_threads_batch"] = batch_threads
        try:
            with _no_weight_repacking(llama_cpp):
                self._llm = _lean_llama(llama_cpp)(model_path=str(model_path), **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise GenerationError(f"llama.cpp could not load {model_path}: {exc}; is it a GGUF model?") from None
        self._chat_prompt = _template_formatter(llama_cpp, self._llm)
        import jinja2  # llama-cpp-python's own dependency: its chat templates are Jinja

        self._template_error = jinja2.TemplateError  # the template refused the messages ("roles must alternate")
        # llama.cpp reuses only the prompt it read last; the find step's second read is another conversation, so
        # without saved states every question read the system prompt again. A state is ~4.4 MB (the tokens used);
        # measured on the seed questions, time to first token fell by ~40%.
        self._llm.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=PROMPT_CACHE_BYTES))
        self.n_ctx: int = self._llm.n_ctx()  # the prompt, its chat template and the answer must fit in this

    @property
    def prefills(self) -> bool:
        """Can stream() continue a reply it is given (prefix=)? With the GGUF's own chat template, yes."""
        return self._chat_prompt is not None

    def _grammar(self, grammar: str | None) -> Any:
        return self._llama_cpp.LlamaGrammar.from_string(grammar, verbose=False) if grammar else None

    def stream(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None,
               prefix: str = "") -> Iterator[str]:
        """The reply's pieces. prefix: the reply's first words, already written (needs `prefills`): they are read
        with the prompt, at prompt speed, and the model writes on from them; the pieces leave them out."""
        if prefix:
            yield from self._continue(messages, prefix, max_tokens=max_tokens, grammar=grammar)
            return
        try:
            chunks = self._llm.create_chat_completion(messages=list(messages),  # type: ignore[arg-type]
                                                      max_tokens=max_tokens, temperature=0.0,
                                                      grammar=self._grammar(grammar), stream=True)
            for chunk in chunks:
                delta = chunk["choices"][0].get("delta", {}).get("content")  # type: ignore[index,union-attr]
                if isinstance(delta, str) and delta:
                    yield delta
        except (ValueError, RuntimeError) as exc:  # e.g. "Requested tokens (2693) exceed context window of 2048"
            raise self._failed(exc) from None

    def _continue(self, messages: Sequence[Message], prefix: str, *, max_tokens: int,
                  grammar: str | None) -> Iterator[str]:
        if self._chat_prompt is None:
            raise GenerationError(f"the local model {self.name} has no chat template of its own to continue a "
                                  "reply with")
        try:
            prompt = self._chat_prompt(messages) + prefix
            tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)  # the template adds BOS
            # (the reply ends at the model's end-of-turn token, as create_chat_completion's does)
            chunks = self._llm.create_completion(prompt=tokens, max_tokens=max_tokens, temperature=0.0,
                                                 grammar=self._grammar(grammar), stream=True)
            for chunk in chunks:
                text = chunk["choices"][0].get("text")  # type: ignore[index,union-attr]
                if isinstance(text, str) and text:
                    yield text
        except (ValueError, RuntimeError, self._template_error) as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: BaseException) -> GenerationError:
        return GenerationError(f"the local model {self.name} failed: {one_line(exc)}; try a shorter question, "
                               "or raise RAG_LLM_CONTEXT if the context window is too small")

    def generate(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, grammar=grammar))

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _template_formatter(llama_cpp: Any, llm: Any) -> Callable[[Sequence[Message]], str] | None:
    """The prompt text create_chat_completion gives the model for these messages, when it formats them with the
    GGUF's own chat template (llama-cpp-python's "chat_template.default"); else None."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template or llm.chat_format != "chat_template.default" or llm.chat_handler is not None:
        return None
    text = llm._model.token_get_text
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=text(llm.token_eos()) if llm.token_eos() != -1 else "",
        bos_token=text(llm.token_bos()) if llm.token_bos() != -1 else "")
    return lambda messages: str(formatter(messages=list(messages)).prompt)


class OpenAICompatibleGenerator:
    """Any server speaking the OpenAI chat API (llama.cpp server, vLLM, Ollama), found by URL."""

    remote = True  # waits on another process: the pipeline's lock is given up meanwhile (OffLock)

    def __init__(self, url: str, *, model: str = "default", timeout: float = 120.0) -> None:
        base = url.rstrip("/")
        self.endpoint = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model, self.timeout = model, timeout
        self.name = f"{model}@{base}"

    def stream(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> Iterator[str]:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens,
                                "temperature": 0.0, "stream": True}
        if grammar:
            body["grammar"] = grammar  # llama.cpp server; other servers ignore it and cite.py filters markers
        request = urllib.request.Request(self.endpoint, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        finished = False
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                for raw in response:
                    line = raw.decode("utf-8").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":  # without a finish_reason first, the answer was cut short: llama_cpp.server
                        break  # does that to a stream when another request waits, unless --interrupt_requests False
                    choice = json.loads(data)["choices"][0]
                    delta = choice.get("delta", {}).get("content")
                    finished = finished or bool(choice.get("finish_reason"))
                    if delta:
                        yield delta
        except (urllib.error.URLError, OSError, ValueError, LookupError, TypeError, AttributeError) as exc:
            # HTTP errors (a 400 for a prompt over the server's window), refused connections, malformed replies
            raise GenerationError(f"the model server at {self.endpoint} failed: {one_line(exc)}; is it running, "
                                  "and is its context window large enough?") from None
        if not finished:  # the server died (llama.cpp's crashes close the connection) or cut the answer short
            raise GenerationError(f"the model server at {self.endpoint} closed the answer before it ended; check "
                                  "the server's log (start llama_cpp.server with --interrupt_requests False when "
                                  "several questions come at once) and ask again")

    def generate(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, grammar=grammar))

    def count_tokens(self, text: str) -> int:
        """An over-estimate, as the server does not say (text.estimate_tokens)."""
        return estimate_tokens(text)


class OffLock:
    """A generator that gives up a lock while it waits on a model server, and takes it again for what it
    returns: the caller holds the lock for the local models (embedder, index), which other questions may use
    meanwhile. Called without the lock, it calls straight through."""

    prefills = False  # its stream() passes no prefix on (a server writes whole replies)

    def __init__(self, inner: Generator, lock: threading.RLock) -> None:  # an RLock: release() checks the owner
        self.inner, self._lock = inner, lock
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # n_ctx, endpoint, ... of the server's adapter
        return getattr(self.inner, name)

    def _off(self, call: Callable[[], T]) -> T:
        try:
            self._lock.release()
        except RuntimeError:  # not held by this thread
            return call()
        try:
            return call()
        finally:
            self._lock.acquire()

    def generate(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> str:
        return self._off(lambda: self.inner.generate(messages, max_tokens=max_tokens, grammar=grammar))

    def stream(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None) -> Iterator[str]:
        pieces = iter(self.inner.stream(messages, max_tokens=max_tokens, grammar=grammar))
        try:
            while (piece := self._off(lambda: next(pieces, None))) is not None:
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)
