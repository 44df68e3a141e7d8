"""Every install takes the same versions: constraints.txt pins each dependency pyproject.toml names (torch is
pinned there), `make install` installs with it, and this interpreter runs exactly those versions. Without that, a
fresh install resolves newer releases and the same code scores differently on the eval sets."""

from __future__ import annotations

import re
from importlib import metadata

from .conftest import ROOT


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement ("llama-cpp-python[server]==0.3.36" -> llama-cpp-python)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()  # type: ignore[union-attr]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[_name(name)] = version.strip()
    return pins


def test_every_dependency_is_pinned_and_make_install_uses_the_pins() -> None:
    # what the installed project asks for, its extras included ("torch==2.13.0; extra == 'models'")
    wanted = {_name(r): r.partition(";")[2] for r in metadata.requires("rag") or []}
    optional = {name for name, marker in wanted.items() if re.search(r"extra == .(qwen-small|e5).", marker)}
    missing = sorted(set(wanted) - optional - {"rag", "torch", "setuptools"} - set(_pins()))
    assert len(wanted) > 20 and not missing, f"add {missing} to constraints.txt (see its header)"
    assert "pip install -c constraints.txt -e '.[all]'" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_this_interpreter_runs_the_pinned_versions() -> None:
    differ = {name: (version, installed) for name, version in _pins().items()
              if (installed := _installed(name)) is not None and installed != version}
    assert not differ, f"installed versions differ from constraints.txt (name: pinned, installed): {differ}"


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
