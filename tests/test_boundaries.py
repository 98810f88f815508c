"""The import graph keeps the design's boundaries (style.md: Boundaries)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"yunying", "dicomweb", "dimse", "storage", "index", "frontends", "conformance", "benchmarks"}
FORBIDDEN = {
    "index": OURS - {"index"} | {"starlette", "pynetdicom", "uvicorn", "zarr"},
    "storage": OURS - {"storage"} | {"starlette", "pynetdicom", "uvicorn", "duckdb"},
    "dicomweb": {"dimse", "pynetdicom", "frontends"},
    "dimse": {"dicomweb", "starlette", "uvicorn", "frontends"},
    "frontends": {"yunying", "index", "storage", "dimse", "dicomweb"},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_inside_its_boundary(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    bad = {str(f.relative_to(ROOT)): sorted(imports(f) & FORBIDDEN[package]) for f in files}
    assert not {k: v for k, v in bad.items() if v}


def test_the_yunying_package_does_not_import_a_face_except_in_the_cli() -> None:
    for f in (ROOT / "yunying").rglob("*.py"):
        if f.name in ("cli.py",):
            continue
        assert not imports(f) & {"dicomweb", "dimse", "starlette", "pynetdicom"}, f


def test_every_package_is_installed_by_pip_install_dot() -> None:
    """The README's `pip install .` must ship every subpackage (yunying.pixels, conformance.checks ...)."""
    import fnmatch
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for top in OURS:
        for init in (ROOT / top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert any(fnmatch.fnmatch(name, pat) for pat in include), name
