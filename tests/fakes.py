"""Small deterministic stand-ins for the models, so the fast tests need no weights."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from rag.answer import SECOND_READ_GRAMMAR, SECOND_READ_WORDS
from rag.text import count_words


class HashEmbedder:
    """Bag of words hashed into 256 slots with crc32 (not the salted hash()), then normalised.

    Texts that share words score higher, so ranking tests mean something; no two different word sets tie.
    """

    name = "hash-256"
    dim = 256

    def __init__(self, max_tokens: int = 128, delay: float = 0.0) -> None:
        self.max_tokens = max_tokens
        self.delay = delay  # seconds per embedded batch, to make a run long enough to interrupt
        self.calls: list[int] = []  # number of texts per embed_documents call

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vec[zlib.crc32(word.encode()) % self.dim] += 1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return count_words(texts)

    def embed_documents(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.calls.append(len(texts))
        if self.delay:
            time.sleep(self.delay)
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


class ScriptedGenerator:
    """Returns queued replies, one per call, and records the messages and grammar it was given.

    With n_ctx it has a context window, as llama.cpp has: a prompt (one token a word, plus the chat template's
    TEMPLATE tokens) that leaves less than max_tokens of it free raises llama.cpp's ValueError."""

    name = "scripted"
    TEMPLATE = 30  # a lone user message in Qwen's template: 29 tokens

    def __init__(self, replies: Sequence[str] = (), n_ctx: int | None = None) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict[str, str]]] = []
        self.grammars: list[str | None] = []
        if n_ctx is not None:
            self.n_ctx = n_ctx

    def _next(self, messages: Sequence[dict[str, str]], grammar: str | None, max_tokens: int) -> str:
        n_ctx = getattr(self, "n_ctx", None)
        prompt = sum(self.count_tokens(m["content"]) for m in messages) + self.TEMPLATE
        if n_ctx is not None and prompt + max_tokens > n_ctx:
            raise ValueError(f"Requested tokens ({prompt + max_tokens}) exceed context window of {n_ctx}")
        self.calls.append(list(messages))
        self.grammars.append(grammar)
        second_read = grammar in (SECOND_READ_GRAMMAR, SECOND_READ_WORDS)
        if second_read and not (self.replies and self.replies[0].startswith("Answer:")):
            return "Answer: confirmed"  # a second read the test did not script finds the answer again
        if not self.replies:
            raise AssertionError("ScriptedGenerator was called more often than the test expected")
        return self.replies.pop(0)

    def generate(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128,
                 grammar: str | None = None) -> str:
        return self._next(messages, grammar, max_tokens)

    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128,
               grammar: str | None = None) -> Iterator[str]:
        yield from re.findall(r"\S+\s*", self._next(messages, grammar, max_tokens))

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    @property
    def last_user_message(self) -> str:
        return self.calls[-1][-1]["content"]


class NumberEmbedder(HashEmbedder):
    """A "multilingual" stand-in: only the numbers of a text count, and numbers read the same in every language,
    so "brought back 1935.3 grams" and "共采集月球样品1935.3克" get the same vector; a text without numbers gets
    the zero vector (cosine 0 with everything)."""

    name = "numbers-256"
    multilingual = True

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for number in re.findall(r"\d+(?:\.\d+)?", re.sub(r"(?<=\d),(?=\d{3})", "", text)):
            vec[zlib.crc32(number.encode()) % self.dim] += 1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec


class QuotingGenerator:
    """Answers every question with the first sentence of passage [1], cited, streamed a word at a time with
    `delay` seconds before each word (settable while it runs, to make an answer long enough to stop). A
    follow-up is "rewritten" as itself. For the browser tests: any question gets a cited answer."""

    name = "quoting"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[list[dict[str, str]]] = []
        self.words = 0  # words streamed so far, over all answers

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128,
                 grammar: str | None = None) -> str:
        return "".join(self.stream(messages, max_tokens=max_tokens, grammar=grammar))

    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128,
               grammar: str | None = None) -> Iterator[str]:
        from rag import NO_ANSWER

        self.calls.append(list(messages))
        prompt = messages[-1]["content"]
        if "Passages:" not in prompt:  # the follow-up rewrite
            match = re.search(r"Follow-up question: (.*)", prompt)
            yield match.group(1) if match else ""
            return
        match = re.search(r"^\[1\] (?:\([^)]*\) )?(.+)$", prompt, re.M)
        first = re.split(r"(?<=[.!?])\s+", match.group(1).strip())[0].rstrip(".!?") if match else ""
        for piece in re.findall(r"\S+\s*", f"{first} [1]." if first else NO_ANSWER):
            if self.delay:
                time.sleep(self.delay)
            self.words += 1
            yield piece


class ServerGenerator(QuotingGenerator):
    """QuotingGenerator as if a model server wrote it (remote = True): every call waits `delay` seconds on
    the "server" first, and the most calls in flight at one moment are counted."""

    remote = True

    def __init__(self, delay: float = 0.2) -> None:
        super().__init__()
        self.wait, self.in_flight, self.most_in_flight = delay, 0, 0
        self._count = threading.Lock()

    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128,
               grammar: str | None = None) -> Iterator[str]:
        with self._count:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.wait)
            yield from super().stream(messages, max_tokens=max_tokens, grammar=grammar)
        finally:
            with self._count:
                self.in_flight -= 1


class PrefillingGenerator(ScriptedGenerator):
    """A ScriptedGenerator that, as the local model does, writes on from the first words of a reply it is given
    (stream(prefix=)): each scripted reply is the whole reply, and a call returns what follows its prefix, up to
    what the grammar lets it write. Records the prefixes."""

    prefills = True

    def __init__(self, replies: Sequence[str] = (), n_ctx: int | None = None) -> None:
        super().__init__(replies, n_ctx)
        self.prefixes: list[str] = []

    def stream(self, messages: Sequence[dict[str, str]], *, max_tokens: int = 128, grammar: str | None = None,
               prefix: str = "") -> Iterator[str]:
        if not prefix:
            yield from super().stream(messages, max_tokens=max_tokens, grammar=grammar)
            return
        self.prefixes.append(prefix)
        if grammar == SECOND_READ_WORDS:  # a second read, scripted or not (ScriptedGenerator._next)
            yield from re.findall(r"\s*\S+", self._next(messages, grammar, max_tokens)[len(prefix):])
            return
        reply = self.replies[0]
        assert reply.startswith(prefix), f"the scripted reply {reply!r} does not go on from {prefix!r}"
        rest = reply[len(prefix):]
        if grammar and grammar.startswith('root ::= num "]"'):  # the passage number: the reply goes on after it
            self.grammars.append(grammar)
            yield rest[:rest.index("]") + 1]
            return
        yield from re.findall(r"\s*\S+", self._next(messages, grammar, max_tokens)[len(prefix):])
