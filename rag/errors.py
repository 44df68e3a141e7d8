"""Errors raised by the library; the CLI and the UI turn them into one readable line.

    RagError
     ├── ConfigError              a setting has a value that cannot work
     ├── MissingDependencyError   an optional package (torch, llama-cpp-python, gradio) is absent
     ├── ModelNotFoundError       model weights are not where the settings say
     ├── IndexNotFoundError       no index has been built at the index directory
     ├── IndexMismatchError       the index was built with another embedder or format version
     ├── IndexCorruptError        a file of the index is missing, truncated or garbled
     ├── IndexBusyError           another process is writing the same index
     ├── IngestError              a folder or file could not be read at all
     ├── QueryError               an empty or unusable question
     ├── PromptError              a prompt template is missing or has wrong placeholders
     └── GenerationError          the language model or its server failed
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: the message says what happened, the value involved, and what to do."""


class ConfigError(RagError):
    """A setting has a value that cannot work."""


class MissingDependencyError(RagError):
    """An optional dependency is not installed."""


class ModelNotFoundError(RagError):
    """Model weights are not where the settings say."""


class IndexNotFoundError(RagError):
    """No index exists at the index directory."""


class IndexMismatchError(RagError):
    """The index on disk was built with other settings or another format version."""


class IndexCorruptError(RagError):
    """A file of the index (manifest, SQLite store, FAISS vectors) is missing, truncated or garbled."""


class IndexReadOnlyError(RagError):
    """The index's folder cannot be written, and its database holds an update SQLite cannot read without that."""


class IndexBusyError(RagError):
    """Another process is building the same index."""


class IngestError(RagError):
    """A path given for indexing cannot be read at all."""


class QueryError(RagError):
    """The question is empty or unusable."""


class PromptError(RagError):
    """A prompt template is missing or its placeholders do not match."""


class GenerationError(RagError):
    """The language model (local or remote) failed to produce an answer."""


class EmbeddingServerError(RagError):
    """The embedding server (RAG_EMBED_URL) could not be reached, or sent something that is not embeddings."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut at `limit` characters (a server may answer with a whole page)."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:limit]
