"""The import direction of docs/ARCHITECTURE.md: a stage imports only from its own stage and earlier ones."""

from __future__ import annotations

import ast
from pathlib import Path

RAG = Path(__file__).resolve().parents[1] / "rag"

# The pipeline's stages, in order. A module may import from its own stage and from earlier ones, never from a
# later one; a new module joins the stage of its job (this test fails until it is listed).
STAGES: tuple[tuple[str, frozenset[str]], ...] = (
    ("foundation", frozenset({"errors", "config", "types", "text", "dates", "languages"})),
    ("read", frozenset({"files", "htmltext", "ingest", "uploads"})),
    ("chunk", frozenset({"chunk"})),
    ("embed", frozenset({"models", "embed", "embed_onnx", "embed_use", "embed_remote"})),
    ("index", frozenset({"manifest", "faiss_index", "vector_files", "lexical", "store", "builder", "embed_choice"})),
    ("indexing", frozenset({"indexing"})),
    ("signals", frozenset({"signals"})),
    ("retrieve", frozenset({"rerank", "retrieve"})),
    ("context", frozenset({"guard", "context"})),
    ("generate", frozenset({"budget", "generate"})),
    ("cite", frozenset({"cite", "crosscheck"})),
    ("answer", frozenset({"answer", "kinds", "events", "briefing"})),
    ("api", frozenset({"api", "corpus", "__init__"})),
    ("clients", frozenset({"cli", "eval"})),
)
STAGE_OF = {module: i for i, (_, modules) in enumerate(STAGES) for module in modules}
# After retrieval the answer is built from Hits alone: these never reach into the index or the retriever.
ANSWERING = ("context", "budget", "generate", "cite", "crosscheck", "kinds", "events", "briefing", "answer")
INDEX_SIDE = ("manifest", "faiss_index", "vector_files", "lexical", "store", "builder", "embed_choice", "indexing",
              "retrieve", "rerank")


def rag_imports(module: str) -> set[str]:
    """The rag modules that rag/<module>.py imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((RAG / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 1 or name == "rag" or name.startswith("rag."):
                inner = name.removeprefix("rag").lstrip(".") if node.level == 0 else name
                found |= {inner.split(".")[0]} if inner else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rag.")}
    return found - {module}


def test_every_module_has_a_stage() -> None:
    modules = {p.stem for p in RAG.glob("*.py")}
    assert modules - set(STAGE_OF) == set(), "add the new module to STAGES here and in docs/ARCHITECTURE.md"
    assert set(STAGE_OF) - modules == set(), "a module in STAGES is gone: remove it"


def test_no_stage_imports_from_a_later_stage() -> None:
    backwards = sorted(
        f"{module} ({STAGES[STAGE_OF[module]][0]}) imports {dep} ({STAGES[STAGE_OF[dep]][0]})"
        for module in STAGE_OF for dep in rag_imports(module) if STAGE_OF[dep] > STAGE_OF[module])
    assert backwards == []


def test_answering_reads_hits_not_the_index() -> None:
    reaching = sorted(f"{m} imports {dep}" for m in ANSWERING for dep in rag_imports(m) if dep in INDEX_SIDE)
    assert reaching == []


def test_the_architecture_page_lists_every_stage() -> None:
    page = (RAG.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = sorted(m for m in STAGE_OF if m != "__init__" and f"`{m}`" not in page and f"`{m}.py`" not in page)
    assert missing == [], "docs/ARCHITECTURE.md does not name these modules"
