"""The public API of ``migrate``: every advertised name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import migrate


@pytest.mark.parametrize("name", [n for n in migrate.__all__ if n != "__version__"])
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(migrate, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = migrate.no_such_thing


def test_importing_the_package_loads_nothing_heavy() -> None:
    code = "import sys, migrate; print(sorted(m for m in sys.modules if m.startswith('migrate')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert loaded.strip() == "['migrate']"


def test_errors_share_one_base_that_carries_the_finding() -> None:
    for name in ("ImageError", "NotInterpretedError", "UsageError"):
        assert issubclass(getattr(migrate, name), migrate.BhyvesnapError)


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert set(migrate.__all__) == {"__version__", *migrate._EXPORTS}


def test_public_functions_are_not_shadowed_by_submodules() -> None:
    """Importing every submodule must not replace a public name (``migrate.validate`` is the
    function, not a module of that name)."""
    import pkgutil

    for module in pkgutil.walk_packages(migrate.__path__, "migrate."):
        if not module.name.startswith(("migrate.schemas", "migrate.corpus", "migrate.__main__")):
            __import__(module.name)
    for name in migrate.__all__:
        value = getattr(migrate, name)
        assert type(value).__name__ != "module", name
