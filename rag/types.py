"""The data that flows through the pipeline: Article → Chunk → Hit → Citation → Answer."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Article:
    id: str  # first 16 hex digits of sha256(title + "\n" + text): stable across rebuilds
    title: str
    text: str  # cleaned text (boilerplate removed); chunk offsets point into it
    source: str  # file path as indexed, with "#L<n>" for a line of a .jsonl file
    published: str | None = None  # ISO date "YYYY-MM-DD" when the article states one
    language: str | None = None  # ISO 639-1 code, e.g. "en", "zh"
    url: str | None = None
    sha256: str = ""  # of the cleaned text


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str  # "<article_id>-007", stable across rebuilds
    article_id: str
    text: str
    start: int  # offsets into Article.text: article.text[start:end] == text
    end: int


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float  # higher is better: the fused candidate rescored (retrieve.py), or the reranker's score
    rank: int  # 1-based
    title: str = ""
    source: str = ""
    published: str | None = None
    dense_score: float | None = None  # cosine similarity, when the dense retriever found it
    lexical_score: float | None = None  # BM25 (higher is better), when FTS5 found it

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "lexical_score": None if self.lexical_score is None else round(self.lexical_score, 6),
            "article_id": self.chunk.article_id,
            "title": self.title,
            "source": self.source,
            "published": self.published,
            "chunk_id": self.chunk.id,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "text": self.chunk.text,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    marker: int  # the n of "[n]" in Answer.text
    chunk_id: str
    article_id: str
    title: str
    source: str
    start: int  # offsets of quote in the article text: article.text[start:end] == quote
    end: int
    quote: str
    support: float  # 0..1, how well the quote supports the sentences that cite it
    published: str | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    markers: tuple[int, ...]
    supported: bool
    support: float = 0.0
    recited: bool = False  # the model cited another passage; cite.py re-pointed it to the supporting one


class Timings(Mapping[str, float]):
    """Seconds per step of an answer (and its prompt tokens): a read-only copy of the mapping it is built from,
    so that the Answer holding it is as frozen as its other fields (and hashable, picklable, copyable)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(frozenset(self._values.items()))

    def __repr__(self) -> str:
        return f"Timings({self._values!r})"


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    refused: bool = False
    sentences: tuple[Sentence, ...] = ()
    timings: Mapping[str, float] = field(default_factory=Timings)  # a dict given here is copied into Timings
    model: str = ""
    standalone_question: str | None = None  # the rewritten question, for follow-ups
    note: str | None = None  # e.g. that an over-long question was truncated
    as_of: str | None = None  # "YYYY-MM-DD": the day the question was asked on; nothing published later was used
    rejected: tuple[str, ...] = ()  # why each draft before the answer was rejected ("restates", "unsupported", …)

    def __post_init__(self) -> None:
        if not isinstance(self.timings, Timings):
            object.__setattr__(self, "timings", Timings(self.timings))

    def to_dict(self) -> dict[str, Any]:
        """The JSON that evaluation scripts read; see README "Answer JSON"."""
        return {
            "schema_version": SCHEMA_VERSION,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "note": self.note,
            "as_of": self.as_of,
            "text": self.text,
            "refused": self.refused,
            "citations": [asdict(c) for c in self.citations],
            "sentences": [
                {"text": s.text, "markers": list(s.markers), "supported": s.supported, "support": round(s.support, 4),
                 "recited": s.recited}
                for s in self.sentences
            ],
            "hits": [h.to_dict() for h in self.hits],
            "rejected": list(self.rejected),
            "timings": dict(self.timings),
            "model": self.model,
        }
