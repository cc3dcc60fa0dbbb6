"""The build configuration ships every subpackage and the bundled data."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the 3.10 run skips this file

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "migrate").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    mapped = config["tool"]["setuptools"]["package-dir"]
    assert mapped == {"migrate.schemas": "schemas", "migrate.corpus": "corpus"}


def test_bundled_data_is_found_through_the_installed_package() -> None:
    from migrate.data import corpus_root, schemas_root

    assert schemas_root().joinpath("target.schema.json").is_file()
    assert (corpus_root() / "manifest.json").is_file()
