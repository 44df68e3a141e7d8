from __future__ import annotations

import subprocess
import sys

import rag

HEAVY = ("torch", "sentence_transformers", "llama_cpp", "gradio", "transformers")


def test_import_rag_loads_no_heavy_library() -> None:
    code = "import sys, rag; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_rag_works_when_heavy_libraries_are_missing() -> None:
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in HEAVY)
            + "import rag\nfrom rag.api import Pipeline\nprint(len(rag.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(rag.__all__)


def test_missing_sentence_transformers_gives_install_hint() -> None:
    code = ("import sys\nsys.modules['sentence_transformers'] = None\n"
            "from rag.embed import SentenceTransformerEmbedder\n"
            "from rag.errors import MissingDependencyError\ntry:\n    SentenceTransformerEmbedder()\n"
            "except MissingDependencyError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "pip install" in out.stdout, out.stderr


def test_public_names() -> None:
    assert sorted(rag.__all__) == sorted(set(rag.__all__))
    for name in rag.__all__:
        assert getattr(rag, name) is not None
    assert {"Pipeline", "build_index", "Settings", "Answer", "Hit", "Filters"} <= set(rag.__all__)
    assert issubclass(rag.IndexCorruptError, rag.RagError) and "IndexCorruptError" in rag.__all__
