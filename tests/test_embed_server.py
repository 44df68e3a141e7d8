"""The embeddings-server client (RAG_EMBED_URL) against a small fake server on loopback; the real llama.cpp
server is in tests/test_models.py."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import ConfigError, EmbeddingServerError, Pipeline, Settings, build_index
from rag.embed_remote import RemoteEmbedder

from .conftest import free_port
from .fakes import HashEmbedder


class _Server(http.server.BaseHTTPRequestHandler):
    """An OpenAI-style /v1/embeddings: the hashing fake's vectors, unnormalised and sent in reverse order; with
    per_token, one vector per word (as llama.cpp sends for a model without pooling)."""

    mode = "ok"
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server hook's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.path != "/v1/embeddings":
            return self._send(404, {"error": "not found"})
        fake = HashEmbedder()
        if self.mode == "per_token":
            rows = [[(fake.embed_query(w) * 3).tolist() for w in text.split()] for text in body["input"]]
        else:
            rows = [(fake.embed_query(text) * 5).tolist() for text in body["input"]]
        if self.mode == "short":
            rows = rows[:-1]
        if self.mode == "mixes_batches" and len(rows) > 1:  # as llama-cpp-python's server does without pooling
            rows = rows[1:] + rows[:1]
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        self._send(200, {"object": "list", "data": data[::-1], "model": body["model"]})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Server]]]:
    handler = type("Handler", (_Server,), {"mode": "ok", "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_vectors_come_back_normalised_in_order_and_batched(server: tuple[str, type[_Server]]) -> None:
    url, handler = server
    embedder = RemoteEmbedder(url + "/v1", model="minilm-on-gpu", batch_size=2)
    assert embedder.dim == HashEmbedder.dim and embedder.name == "minilm-on-gpu"
    texts = ["volcano erupts near the town", "bridge opens to traffic", "chess title decided", "rice harvest"]
    got = embedder.embed_documents(texts, progress=lambda done, total: None)
    want = HashEmbedder().embed_documents(texts)
    assert np.allclose(got, want, atol=1e-6)  # in the texts' order, although the server sent them reversed
    # two probes together and each alone (does the server keep a batch's texts apart?), then batches of two
    assert [len(r["input"]) for r in handler.requests] == [2, 1, 1, 2, 2]
    assert {r["model"] for r in handler.requests} == {"minilm-on-gpu"}
    assert np.allclose(embedder.embed_query("bridge opens"), HashEmbedder().embed_query("bridge opens"), atol=1e-6)
    assert embedder.count_tokens(["four words in here", "共采集月球样品"]) == [4, 14]


def test_per_token_vectors_are_mean_pooled(server: tuple[str, type[_Server]]) -> None:
    url, handler = server
    handler.mode = "per_token"
    vec = RemoteEmbedder(url).embed_query("harbour fees rise")
    fake = HashEmbedder()
    mean = np.mean([fake.embed_query(w) for w in "harbour fees rise".split()], axis=0)
    assert np.allclose(vec, mean / np.linalg.norm(mean), atol=1e-6)


def test_a_server_that_mixes_up_batches_gets_one_text_at_a_time(server: tuple[str, type[_Server]],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    url, handler = server
    handler.mode = "mixes_batches"
    with caplog.at_level("WARNING", logger="rag.embed_remote"):
        embedder = RemoteEmbedder(url, batch_size=8)
    assert embedder.batch_size == 1 and "one text per request" in caplog.text
    texts = ["volcano erupts near the town", "bridge opens to traffic", "chess title decided"]
    assert np.allclose(embedder.embed_documents(texts), HashEmbedder().embed_documents(texts), atol=1e-6)


def test_the_server_model_must_be_named_and_its_index_needs_the_server(
        server: tuple[str, type[_Server]], articles_dir: Path, tmp_path: Path) -> None:
    url, _ = server
    with pytest.raises(ConfigError, match="RAG_EMBED_API_MODEL is not"):
        Settings(embed_url=url)
    settings = Settings(index_dir=tmp_path / "index", embed_url=url, embed_api_model="big-gpu-model",
                        cache_dir=tmp_path / "cache")
    build_index(articles_dir, settings=settings)
    with pytest.raises(ConfigError, match="embedded by a server as 'big-gpu-model'; set RAG_EMBED_URL"):
        Pipeline(settings.replace(embed_url="", embed_api_model="")).retrieve("When did the bridge open?")


def test_server_failures_are_one_line_errors(server: tuple[str, type[_Server]]) -> None:
    url, handler = server
    with pytest.raises(EmbeddingServerError, match=r"unset RAG_EMBED_URL") as refused:
        RemoteEmbedder(f"http://127.0.0.1:{free_port()}")
    assert "\n" not in str(refused.value)
    embedder = RemoteEmbedder(url)
    handler.mode = "short"
    with pytest.raises(EmbeddingServerError, match=r"for 2 texts of 256 dims"):
        embedder.embed_documents(["one text", "another text"])


def test_an_index_built_through_the_server_is_searched_through_it(server: tuple[str, type[_Server]],
                                                                 articles_dir: Path, tmp_path: Path) -> None:
    url, handler = server
    settings = Settings(index_dir=tmp_path / "index", embed_url=url, embed_api_model="hash-256",
                        chunk_tokens=60, chunk_overlap_tokens=12, cache_dir=tmp_path / "cache")
    report = build_index(articles_dir, settings=settings)
    assert report.manifest["embedder"] == {"name": "hash-256", "dim": 256, "documents": "server"}
    question = "When did the new bridge open to traffic?"
    remote = Pipeline(settings)
    assert isinstance(remote.embedder, RemoteEmbedder)
    asked = len(handler.requests)
    hits = remote.retrieve(question, mode="dense")
    assert len(handler.requests) == asked + 1  # the question went to the server
    assert remote.embedder.batch_size == 32  # this server keeps texts sent together apart
    assert hits and "bridge" in hits[0].title.lower()
    # the server ran the model the local fake is, under its name: the index opens without the server too
    local = Pipeline(settings.replace(embed_url=""), embedder=HashEmbedder()).retrieve(question, mode="dense")
    assert [h.chunk.id for h in local] == [h.chunk.id for h in hits]
