"""An embedder on another machine: any server speaking the OpenAI embeddings API (`POST /v1/embeddings`), for
indexing a big corpus on a box with a GPU (RAG_EMBED_URL).

The index records the model name the server is asked for (RAG_EMBED_API_MODEL). Name it as the local embedder is
named (all-MiniLM-L6-v2) when the server runs the same model, and an index built through the server opens with
the local embedder too, and the other way round.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

from .embed import Progress
from .errors import EmbeddingServerError, one_line
from .text import estimate_tokens

log = logging.getLogger(__name__)


class RemoteEmbedder:
    """Vectors from an OpenAI-compatible embeddings endpoint, L2-normalised here (servers differ on that)."""

    max_tokens = 256  # chunks are kept within the smallest common window (MiniLM's), whatever the server runs
    remote = True

    def __init__(self, url: str, *, model: str = "default", batch_size: int = 64, timeout: float = 120.0) -> None:
        base = url.rstrip("/")
        self.endpoint = base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")
        self.name, self.timeout = model, timeout
        self.precision = "server"
        self.dim = 0
        self.batch_size = self._checked_batch_size(batch_size)  # also fails now, not mid-index, on a bad URL

    def _checked_batch_size(self, batch_size: int) -> int:
        """Learn the dimension, and whether the server keeps texts sent together apart: llama-cpp-python's server
        with a model without pooling sends wrong vectors for a batch (llama-cpp-python issue #2051; measured:
        cosine 0.001 between a text's vector in a batch and alone). Such a server gets one text at a time."""
        probes = ["The harbour reopened after the storm.", "Parliament passed the budget in March."]
        together = self._post(probes)
        self.dim = int(together.shape[1])
        if batch_size > 1 and min(float(together[i] @ self._post([p])[0]) for i, p in enumerate(probes)) < 0.999:
            log.warning("the embedding server at %s gives other vectors to texts sent together than to each alone; "
                        "sending one text per request", self.endpoint)
            return 1
        return max(1, batch_size)

    def embed_documents(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for lo in range(0, len(texts), self.batch_size):
            batch = list(texts[lo:lo + self.batch_size])
            out[lo:lo + len(batch)] = self._post(batch)
            if progress:
                progress(min(lo + self.batch_size, len(texts)), len(texts))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._post([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """An over-estimate, as the server does not say (text.estimate_tokens)."""
        return [estimate_tokens(text) for text in texts]

    def _post(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.name, "input": texts, "encoding_format": "float"}).encode()
        request = urllib.request.Request(self.endpoint, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())["data"]
            rows = sorted(data, key=lambda row: int(row.get("index", 0)))
            vectors = np.array([_pooled(row["embedding"]) for row in rows], dtype=np.float32)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, LookupError, TypeError) as exc:
            raise EmbeddingServerError(
                f"the embedding server at {self.endpoint} failed: {one_line(exc)}; is it running and serving "
                f"{self.name!r}? Start it, or unset RAG_EMBED_URL to embed on this machine") from None
        if vectors.ndim != 2 or len(vectors) != len(texts) or (self.dim and vectors.shape[1] != self.dim):
            raise EmbeddingServerError(
                f"the embedding server at {self.endpoint} sent {vectors.shape} for {len(texts)} texts"
                + (f" of {self.dim} dims" if self.dim else "") + "; is it serving the same model "
                f"as when the index was built ({self.name!r})?")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def _pooled(embedding: list) -> list[float]:
    """One vector per text. A server running a model without a pooling layer (llama.cpp with a chat model) sends
    one vector per token: their mean is the text's."""
    if embedding and isinstance(embedding[0], list):
        return [float(x) for x in np.mean(np.array(embedding, dtype=np.float32), axis=0)]
    return embedding
