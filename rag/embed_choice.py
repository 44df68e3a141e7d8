"""Which embedder an index uses: one named by RAG_EMBED_MODEL, or (by default) one picked from the languages
of the corpus when the index is first built, and then always the one its manifest records.

Measured (README, "Languages"): the multilingual USE finds articles across languages that the English-only
MiniLM cannot, but ranks English passages worse (rgb_en hits@5 0.91 → see the README table), so an
English-only corpus keeps MiniLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import Settings
from .embed import DEFAULT_EMBED_NAME, Embedder, SentenceTransformerEmbedder, resolve_embed_model
from .embed_use import E5_NAME, USE_LANGUAGES, USE_NAME, E5SmallEmbedder, UniversalSentenceEncoderEmbedder
from .errors import ConfigError, IndexCorruptError, IndexNotFoundError
from .manifest import read_manifest

AUTO = "auto"
# Names RAG_EMBED_MODEL takes besides a folder: each packaged model's name, and short aliases.
PACKAGED = {DEFAULT_EMBED_NAME: DEFAULT_EMBED_NAME, "minilm": DEFAULT_EMBED_NAME,
            USE_NAME: USE_NAME, "use": USE_NAME, E5_NAME: E5_NAME, "e5-small": E5_NAME}
MULTILINGUAL = USE_NAME  # what "auto" picks for a corpus that is not all English
# "auto" takes the multilingual embedder once this share of the articles is in another language than English that
# it knows. Only those count: py3langid calls 24 of rgb_en's 968 English snippets something else (2.5%), 22 of
# them languages USE was not trained on (pcm 11, lb, bcl, cy, eo, fy), which would have taken rgb_en off MiniLM.
MIN_OTHER_SHARE = 0.02


def is_auto(settings: Settings) -> bool:
    return settings.embed_model in ("", AUTO) and not settings.embed_url


def pick(languages: Mapping[Any, int]) -> tuple[str, str]:
    """(embedder name, why) for a corpus with these article counts per language (None: undetected)."""
    total = sum(languages.values())
    other = {lang: n for lang, n in languages.items() if lang in USE_LANGUAGES and lang != "en"}
    share = sum(other.values()) / total if total else 0.0
    listed = ", ".join(f"{lang} {n}" for lang, n in sorted(other.items(), key=lambda x: -x[1])[:6])
    if share >= MIN_OTHER_SHARE:
        return MULTILINGUAL, (f"chosen automatically: {sum(other.values())} of {total} articles are not in "
                              f"English ({listed})")
    return DEFAULT_EMBED_NAME, ("chosen automatically: the articles are in English"
                                + (f" (but {listed})" if other else ""))


def describe(name: str, languages: Mapping[Any, int]) -> str:
    """Why an index has the embedder it was given automatically, as its articles' languages stand now: written
    again at every change, so that `rag info` neither keeps the first build's counts nor repeats its advice."""
    wanted, why = pick(languages)
    if wanted == name:
        return why
    return (f"chosen automatically when the index was first built; its articles' languages now call for {wanted}: "
            "rebuild with --rebuild to switch")


def built_with(index_dir: Path) -> str | None:
    """The embedder name the index's manifest records, or None when there is no readable index."""
    try:
        name = read_manifest(index_dir).get("embedder", {}).get("name")
    except (IndexNotFoundError, IndexCorruptError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def expected_name(settings: Settings) -> str | None:
    """The name an index must have been built with, or None when "auto" takes whatever it was built with."""
    if is_auto(settings):
        return None
    if settings.embed_url:
        return settings.embed_api_model
    return PACKAGED.get(settings.embed_model) or resolve_embed_model(settings.embed_model)[1]


def load_embedder(settings: Settings, name: str | None = None, *, own: bool = False) -> Embedder:
    """The embedder called `name`, else the one the settings name, else (auto) the one the index was built with
    (MiniLM when there is no index yet). With own, a new instance, not the one this process shares."""
    if settings.embed_url and name in (None, settings.embed_api_model):
        from .embed_remote import RemoteEmbedder

        return RemoteEmbedder(settings.embed_url, model=settings.embed_api_model,
                              batch_size=settings.embed_batch_size)
    if name is None and is_auto(settings):
        name = built_with(settings.index_dir) or DEFAULT_EMBED_NAME
        if name not in PACKAGED and "server" in _documents(settings.index_dir):
            raise ConfigError(f"the index at {settings.index_dir} was embedded by a server as {name!r}; set "
                              f"RAG_EMBED_URL to that server and RAG_EMBED_API_MODEL={name} to search it")
    name = PACKAGED.get(name or settings.embed_model, name or settings.embed_model)
    local = name not in (USE_NAME, E5_NAME)  # the multilingual adapters have neither bf16 nor an ONNX path
    args = (name, settings.embed_batch_size, settings.threads, settings.generate_threads,
            settings.embed_precision if local else "", settings.cache_dir if local else None)
    return _load.__wrapped__(*args) if own else _load(*args)


def _documents(index_dir: Path) -> str:
    try:
        return str(read_manifest(index_dir).get("embedder", {}).get("documents") or "")
    except (IndexNotFoundError, IndexCorruptError, AttributeError):
        return ""


@lru_cache(maxsize=2)
def _load(name: str, batch_size: int, threads: int, query_threads: int, precision: str,
          cache_dir: Path | None) -> Embedder:
    """Loaded once per process: indexing and then answering (rag eval, the chat after `rag index`) share it."""
    if name == USE_NAME:
        return UniversalSentenceEncoderEmbedder(threads=threads)
    if name == E5_NAME:
        return E5SmallEmbedder(threads=threads)
    return SentenceTransformerEmbedder("" if name == DEFAULT_EMBED_NAME else name, batch_size=batch_size,
                                       threads=threads, query_threads=query_threads, precision=precision,
                                       cache_dir=cache_dir)
