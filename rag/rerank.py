"""Rerankers: score (question, passage) pairs after retrieval's rescoring; the cross-encoder adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import MissingDependencyError, ModelNotFoundError


class Reranker(Protocol):
    name: str

    def score(self, question: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A local sentence-transformers cross-encoder (no model ships on PyPI, so the user points at one)."""

    def __init__(self, path: str, *, threads: int = 0) -> None:
        from pathlib import Path

        if not Path(path).is_dir():
            raise ModelNotFoundError(f"reranker folder {path!r} does not exist; set RAG_RERANKER_PATH to a "
                                     "local cross-encoder folder, or unset it to skip reranking")
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise MissingDependencyError(
                "sentence-transformers is not installed. Run: pip install -e '.[models]'") from None
        self.name = Path(path).name
        self._model = CrossEncoder(path, device="cpu", local_files_only=True)

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        return [float(s) for s in self._model.predict([(question, p) for p in passages])]
