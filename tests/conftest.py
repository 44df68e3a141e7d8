from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.config import Settings

from .fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
SEED_CORPUS = SHARED / "corpus"


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    """A writable copy of the five tiny test articles."""
    target = tmp_path / "articles"
    shutil.copytree(DATA / "articles", target)
    return target


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index", chunk_tokens=60, chunk_overlap_tokens=12,
                    cache_dir=tmp_path / "cache")


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def real_embedder():
    """The packaged all-MiniLM-L6-v2, loaded once per test session."""
    from rag.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
