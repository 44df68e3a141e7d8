"""A plain (non-editable) `pip install .` searches, answers and chats away from the repository: prompts/ and ui/
install with the package as rag.prompts and rag_ui."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from .conftest import DATA, ROOT, free_port

SOURCES = ("pyproject.toml", "README.md", "NOTICE", "rag", "prompts", "ui")  # what the wheel is built from
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, site): the repository built as a wheel offline, from a copy so the tree stays clean, and
    installed without dependencies into a folder of its own (the dependencies come from this interpreter)."""
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(base / "dist"),
                          str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((base / "dist").glob("rag-*.whl"))
    site = base / "site"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return wheel, site


def _run(site: Path, args: list[str], cwd: Path, timeout: float = 120,
         extra_path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """This interpreter with the installed copy first on the path, from a folder outside the repository."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(site, *extra_path), capture_output=True,
                          text=True, timeout=timeout)


def _env(site: Path, *extra_path: Path) -> dict[str, str]:
    """The installed copy first on the path (before any PYTHONPATH already set), the packaged prompts in use."""
    env = {k: v for k, v in os.environ.items() if k != "RAG_PROMPTS_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), *map(str, extra_path), env.get("PYTHONPATH")) if p)
    return env


def test_wheel_ships_the_prompts_and_the_chat_app(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = {f"rag/prompts/{p.name}" for p in (ROOT / "prompts").glob("*.txt")}
    app = {f"rag_ui/{p.name}" for p in (ROOT / "ui").iterdir() if p.suffix in (".py", ".css")}
    assert {"rag/prompts/system.txt", "rag/prompts/answer.txt", "rag/prompts/rewrite.txt"} <= prompts
    assert "rag_ui/app.py" in app
    assert prompts | app <= names, sorted((prompts | app) - names)
    assert not [n for n in names if n.split("/")[0] in ("prompts", "ui")]  # no bare top-level names


def test_installed_copy_searches_and_answers_away_from_the_repository(installed: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    _, site = installed
    code = f"""
import json, rag, fakes
from rag.config import DEFAULT_PROMPTS_DIR
settings = rag.Settings(index_dir="index", cache_dir="cache")
rag.build_index({str(DATA / "articles")!r}, settings=settings, embedder=fakes.HashEmbedder())
reply = "Thieves stole 42 Roman gold coins [1]."
pipeline = rag.Pipeline(settings, embedder=fakes.HashEmbedder(), generator=fakes.ScriptedGenerator([reply]))
hits = pipeline.retrieve("volcano eruption near Grindavik")
answer = pipeline.ask("What did the thieves steal from the museum?")
override = rag.Settings.from_env({{"RAG_PROMPTS_DIR": "my-prompts"}}).prompts_dir
print(json.dumps({{"rag": rag.__file__, "prompts": str(DEFAULT_PROMPTS_DIR), "top": hits[0].title,
                  "cited": len(answer.citations), "refused": answer.refused, "override": str(override)}}))
"""
    out = _run(site, ["-c", code], cwd=tmp_path, extra_path=(TESTS,))  # tests/ for fakes.py, not the repository
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert Path(result["rag"]).is_relative_to(site) and Path(result["prompts"]) == site / "rag" / "prompts"
    assert "Iceland" in result["top"] or "eruption" in result["top"].lower(), result
    assert result["cited"] == 1 and not result["refused"]
    assert result["override"] == "my-prompts"  # RAG_PROMPTS_DIR still wins over the installed copy


def test_installed_chat_command_starts_the_installed_app(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, site = installed
    code = ("import json, os, sys, rag.cli\n"
            "os.execve = lambda exe, argv, env: print(json.dumps(argv))\n"
            "sys.exit(rag.cli.main(['chat', '--port', '7999']))\n")
    out = _run(site, ["-c", code], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    argv = json.loads(out.stdout)
    assert argv[1:3] == ["-m", "rag_ui.app"] and argv[3:] == ["--host", "127.0.0.1", "--port", "7999"]
    assert not [a for a in argv[1:] if str(ROOT) in a]  # (argv[0] is the interpreter, which may sit in ROOT/.venv)
    help_text = _run(site, ["-m", "rag_ui.app", "--help"], cwd=tmp_path)  # the module runs from the install
    assert help_text.returncode == 0 and "--index-dir" in help_text.stdout, help_text.stderr


# ---------------------------------------------------------------- the installed commands with the real models


@pytest.mark.models
def test_installed_commands_index_search_ask_and_chat(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, site = installed
    cli = ["-m", "rag.cli"]
    index = ["--index-dir", str(tmp_path / "index")]
    built = _run(site, cli + ["index", str(DATA / "articles"), *index], cwd=tmp_path, timeout=600)
    assert built.returncode == 0, built.stderr
    found = _run(site, cli + ["search", "volcano eruption near Grindavik", "--json", *index], cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "Grindavik" in json.loads(found.stdout)[0]["text"]
    asked = _run(site, cli + ["ask", "What did the thieves steal from the museum?", "--json", *index],
                 cwd=tmp_path, timeout=600)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["refused"] and answer["citations"], answer

    port = free_port()
    log = tmp_path / "chat.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, *cli, "chat", "--port", str(port), *index], cwd=tmp_path,
                                env=_env(site), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, f"rag chat exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"rag chat did not serve within 300 s:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        assert "News Q&amp;A" in page or "News Q&A" in page
        command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"rag_ui.app" in command, command  # the installed app, not a path into the repository
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
