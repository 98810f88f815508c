"""A setting that is not documented is a defect (datasette's rule)."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from yunying.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_and_its_environment_variable_is_in_the_readme() -> None:
    for f in fields(Settings):
        assert f"`{f.name}`" in README, f.name
        assert f"YUNYING_{f.name.upper()}" in README, f.name


def test_readme_has_the_two_commands() -> None:
    assert "python3 -m pip install . && yunying serve" in README
    assert "bash tools/test.sh" in README
    assert "bash tools/test.sh" in (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
