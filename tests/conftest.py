from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from rag.api import Pipeline, build_index
from rag.config import Settings

from .fakes import HashEmbedder, ScriptedGenerator

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
SEED_CORPUS = SHARED / "corpus"


def free_port() -> int:
    """A loopback TCP port that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
def real_embedder(tmp_path_factory: pytest.TempPathFactory):
    """The packaged all-MiniLM-L6-v2, loaded once per test session, questions through onnxruntime."""
    from rag.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cache_dir=tmp_path_factory.mktemp("embed-cache"))


@pytest.fixture
def indexed(articles_dir: Path, settings: Settings) -> Settings:
    """Settings of an index built from the five test articles with the hashing fake."""
    build_index(articles_dir, settings=settings, embedder=HashEmbedder())
    return settings


def scripted_pipeline(settings: Settings, *replies: str) -> tuple[Pipeline, ScriptedGenerator]:
    """A Pipeline on the fakes whose model answers with `replies`, in order."""
    gen = ScriptedGenerator(replies)
    return Pipeline(settings, embedder=HashEmbedder(), generator=gen), gen


def write_fillers(corpus: Path, n: int) -> None:
    """n long filler articles (filler00.txt…), enough pages that removing most of them makes a build VACUUM."""
    for i in range(n):
        (corpus / f"filler{i:02d}.txt").write_text(
            f"Filler report {i}\n\n" + " ".join(f"paragraph{i} word{j} of the weekly bulletin." for j in range(60)))
