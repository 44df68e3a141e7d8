"""A local, cited question-answering chat over a folder of news articles.

`import rag` is light: torch, llama_cpp and gradio load only when a model or the UI is used.
"""

from .answer import REDRAFT, REVISED
from .api import Pipeline, StreamEvent, ask, build_index, index_info, search
from .cite import NO_ANSWER
from .config import Settings
from .corpus import ArticleInfo, UploadReport, add_articles, list_articles, remove_article
from .dates import given_day
from .errors import (
                     ConfigError,
                     EmbeddingServerError,
                     GenerationError,
                     IndexBusyError,
                     IndexCorruptError,
                     IndexMismatchError,
                     IndexNotFoundError,
                     IndexReadOnlyError,
                     IngestError,
                     MissingDependencyError,
                     ModelNotFoundError,
                     PromptError,
                     QueryError,
                     RagError,
)
from .indexing import IndexReport
from .retrieve import Filters
from .types import Answer, Article, Chunk, Citation, Hit, Sentence

__all__ = [
    "Answer", "Article", "ArticleInfo", "Chunk", "Citation", "ConfigError", "EmbeddingServerError", "Filters",
    "GenerationError", "Hit",
    "IndexBusyError", "IndexCorruptError", "IndexMismatchError", "IndexNotFoundError", "IndexReadOnlyError",
    "IndexReport", "IngestError",
    "MissingDependencyError", "ModelNotFoundError", "Pipeline", "PromptError", "QueryError", "RagError",
    "NO_ANSWER", "REDRAFT", "REVISED", "Sentence", "Settings", "StreamEvent", "UploadReport", "add_articles", "ask",
    "build_index", "given_day", "index_info", "list_articles", "remove_article", "search",
]
