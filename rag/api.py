"""The public entry points: Pipeline (models loaded once), ask(), build_index(), search()."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import SAMPLE_CORPUS_DIR, Settings
from .embed import Embedder, SentenceTransformerEmbedder, resolve_embed_model
from .indexing import IndexReport, Log, run_index
from .retrieve import CrossEncoderReranker, Filters, Reranker, retrieve
from .store import Store, read_manifest
from .types import Answer, Hit


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name (default: packaged all-MiniLM-L6-v2)."""
    return SentenceTransformerEmbedder(settings.embed_model, batch_size=settings.embed_batch_size,
                                       threads=settings.threads)


def build_index(path: str | Path | None = None, *, settings: Settings | None = None,
                embedder: Embedder | None = None, rebuild: bool = False, log: Log | None = None) -> IndexReport:
    """Index (or bring up to date) the articles under path; None indexes the bundled sample corpus."""
    settings = settings or Settings.from_env()
    root = Path(path) if path is not None else SAMPLE_CORPUS_DIR
    return run_index(root, settings, embedder or load_embedder(settings), rebuild=rebuild, log=log)


def index_info(settings: Settings | None = None) -> dict[str, Any]:
    """The manifest of the index at settings.index_dir (counts, embedder, chunking, generation)."""
    settings = settings or Settings.from_env()
    manifest = read_manifest(settings.index_dir)
    return {"index_dir": str(settings.index_dir), **manifest}


class Pipeline:
    """Models loaded once; retrieve, ask and stream against one index."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 generator: Any = None, reranker: Reranker | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._embedder = embedder
        self._generator = generator
        self._reranker = reranker
        self._store: Store | None = None
        self._lock = threading.RLock()  # the models are not re-entrant: one question at a time
        if reranker is None and self.settings.reranker_path:
            self._reranker = CrossEncoderReranker(self.settings.reranker_path, threads=self.settings.threads)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def store(self) -> Store:
        """The live index, reopened when a newer build has been swapped in."""
        if self._store is None or self._store.is_stale():
            name = self._embedder.name if self._embedder else resolve_embed_model(self.settings.embed_model)[1]
            dim = self._embedder.dim if self._embedder else None
            store = Store(self.settings.index_dir, embedder_name=name, embedder_dim=dim)
            if self._store is not None:
                self._store.close()
            self._store = store
        return self._store

    def retrieve(self, question: str, *, filters: Filters | None = None, top_k: int | None = None,
                 mode: str = "hybrid") -> tuple[Hit, ...]:
        with self._lock:
            return retrieve(question, self.store, self.embedder, self.settings, filters=filters,
                            reranker=self._reranker, mode=mode, top_k=top_k)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


@lru_cache(maxsize=4)
def _cached_pipeline(settings: Settings) -> Pipeline:
    return Pipeline(settings)


def search(question: str, *, settings: Settings | None = None, filters: Filters | None = None,
           top_k: int | None = None) -> tuple[Hit, ...]:
    """Ranked passages for a question from the index at settings.index_dir."""
    return _cached_pipeline(settings or Settings.from_env()).retrieve(question, filters=filters, top_k=top_k)

