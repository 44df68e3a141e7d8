from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.cli import main
from rag.config import Settings

from .conftest import DATA, SEED_CORPUS, scripted_pipeline

RAG = [sys.executable, "-m", "rag.cli"]


def test_errors_are_one_line_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--index-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no index at" in err and "rag index" in err
    assert main(["index", str(tmp_path / "missing"), "--index-dir", str(tmp_path / "i")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_config_prints_settings_from_env(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAG_TOP_K", "7")
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out)["top_k"] == 7
    monkeypatch.setenv("RAG_TOP_K", "seven")
    assert main(["config"]) == 1
    assert "RAG_TOP_K" in capsys.readouterr().err


@pytest.mark.models
def test_index_info_search_on_seed_corpus(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    run = subprocess.run(RAG + ["index", str(SEED_CORPUS), "--index-dir", str(index)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 added" in run.stdout and "embedding" in run.stderr  # summary on stdout, progress on stderr
    again = subprocess.run(RAG + ["index", str(SEED_CORPUS), "--index-dir", str(index), "--json"],
                           capture_output=True, text=True, timeout=300)
    summary = json.loads(again.stdout)
    assert summary["chunks_embedded"] == 0 and summary["files"]["unchanged"] == 2
    info = json.loads(subprocess.run(RAG + ["info", "--index-dir", str(index), "--json"], capture_output=True,
                                     text=True, timeout=120).stdout)
    assert info["counts"]["articles"] == 2 and info["embedder"]["name"] == "all-MiniLM-L6-v2"
    assert info["embedder"]["dim"] == 384 and info["embedder"]["documents"] in ("bf16", "fp32")  # as the CPU has
    question = "How large was SenseTime's market capitalization when it held its IPO?"
    out = subprocess.run(RAG + ["search", question, "--json",
                                "--top-k", "3", "--index-dir", str(index)], capture_output=True, text=True,
                         timeout=120)
    hits = json.loads(out.stdout)
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    assert {"rank", "score", "article_id", "title", "source", "chunk_id", "start", "end", "text"} <= set(hits[0])
    assert "16.5 billion" in hits[0]["text"]
    assert hits[0]["source"].endswith("000_a7d993feac82c43b.txt")


@pytest.mark.models
def test_sigkill_mid_run_leaves_previous_index_complete(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for src in (DATA / "articles").glob("*.txt"):
        (corpus / src.name).write_bytes(src.read_bytes())
    index = tmp_path / "idx"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    assert subprocess.run(RAG + ["index", str(corpus), "--index-dir", str(index)], env=env,
                          capture_output=True, timeout=300).returncode == 0
    before = (index / "manifest.json").read_text()
    for i in range(400):  # enough new text that embedding takes a while
        (corpus / f"extra{i:03d}.txt").write_text(f"Council meeting {i}\n\n" + (
            f"The council of district {i} discussed the new budget for roads, parks and schools. " * 12))
    proc = subprocess.Popen(RAG + ["index", str(corpus), "--index-dir", str(index)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        if line.startswith("embedding") or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (index / "manifest.json").read_text() == before
    info = json.loads(subprocess.run(RAG + ["info", "--index-dir", str(index), "--json"], capture_output=True,
                                     text=True, timeout=120).stdout)
    assert info["counts"]["articles"] == 5
    out = subprocess.run(RAG + ["search", "volcano eruption near Grindavik", "--json", "--index-dir", str(index)],
                         capture_output=True, text=True, timeout=120)
    hits = json.loads(out.stdout)
    assert hits and "Grindavik" in hits[0]["text"]
    again = subprocess.run(RAG + ["index", str(corpus), "--index-dir", str(index), "--json"], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["counts"]["articles"] == 405, again.stderr[-500:]


def test_chat_starts_the_ui_app_in_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execve", lambda exe, argv, env: calls.append((list(argv), env)))
    assert main(["chat", "--index-dir", str(tmp_path), "--port", "7999"]) == 0
    argv, env = calls[0]
    assert argv[1:3] == ["-m", "ui.app"]  # a checkout chats with its own ui/ (tests/test_packaging: installed)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(Path(__file__).resolve().parents[1])
    assert argv[3:] == ["--host", "127.0.0.1", "--port", "7999", "--index-dir", str(tmp_path)]


def test_thread_settings_resolve_to_the_measured_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.config import Settings
    from rag.errors import ConfigError

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    default = Settings()
    assert (default.generate_threads, default.prompt_threads) == (1, 2)  # one writing, both reading
    chosen = Settings.from_env({"RAG_THREADS": "2", "RAG_BATCH_THREADS": "1"})
    assert (chosen.generate_threads, chosen.prompt_threads) == (2, 1)
    with pytest.raises(ConfigError, match="batch_threads"):
        Settings(batch_threads=-1)


def test_ask_prints_the_checked_answer_once_with_its_sources(
        indexed: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import rag.api

    reply = "Thieves stole 42 Roman gold coins [1] [7]."  # [7] was never shown: the checked answer drops it
    monkeypatch.setattr(rag.api, "Pipeline", lambda settings: scripted_pipeline(settings, reply, reply, reply)[0])
    args = ["ask", "What did the thieves steal from the museum?", "--index-dir", str(indexed.index_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out  # not a terminal: no draft, the answer once
    assert out.count("Thieves stole") == 1 and "[7]" not in out
    assert out.startswith("Thieves stole 42 Roman gold coins [1].\n") and "  [1] " in out and "“" in out
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "Thieves stole 42 Roman gold coins [1]." and data["citations"][0]["marker"] == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal: the draft streams, then is replaced
    assert main(args) == 0
    out = capsys.readouterr().out
    draft, final = out.split("\033[J", 1)
    assert draft.startswith(reply) and final.startswith("Thieves stole 42 Roman gold coins [1].\n")


def test_ask_in_a_terminal_erases_a_corrected_draft_before_the_new_words(
        indexed: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import rag.api
    from rag import REVISED

    question = "What did the thieves steal from the museum?"
    final = scripted_pipeline(indexed, "Thieves stole 42 Roman gold coins [1].")[0].ask(question)

    class Corrected:
        def stream(self, question: str, **_: object):  # type: ignore[no-untyped-def]
            yield from ((), "the museum", REVISED, final.text, final)

    monkeypatch.setattr(rag.api, "Pipeline", lambda settings: Corrected())
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["ask", question, "--index-dir", str(indexed.index_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("the museum\r\033[J" + final.text)  # the draft erased, then the new words
    assert out.count("\033[J") == 2 and out.split("\033[J")[-1].startswith(final.text + "\n")


def test_screen_rows_counts_wrapped_lines() -> None:
    from rag.cli import _screen_rows

    assert _screen_rows("abc", 80) == 1
    assert _screen_rows("x" * 81, 80) == 2 and _screen_rows("x" * 80, 80) == 1
    assert _screen_rows("one\n\nthree", 80) == 3


@pytest.mark.parametrize("argv,message", [
    (["search", "tram", "--top-k", "0"], "argument --top-k: '0' is not a whole number above 0"),
    (["search", "tram", "--top-k", "-3"], "argument --top-k: '-3' is not a whole number above 0"),
    (["eval", "qa.jsonl", "--corpus", "news", "--limit", "0"], "argument --limit: '0' is not a whole number above 0"),
    (["chat", "--port", "70000"], "argument --port: '70000' is not a port number (1 to 65535)"),
])
def test_numbers_out_of_range_are_refused_before_any_work(argv: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and capsys.readouterr().err.strip().endswith(message)
