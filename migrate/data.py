"""Bundled data: JSON Schemas, bhyve facts and target profiles under ``schemas/``, the sample
corpus under ``corpus/``.

Both folders sit at the top of the repository and are mapped into the installed package
(``migrate.schemas``, ``migrate.corpus``), so they are found with :mod:`importlib.resources`
after a plain ``pip install .``. Validation uses Draft 2020-12 and reports JSON pointers.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


def schemas_root() -> Traversable:
    return _bundled("schemas")


def corpus_root() -> Path:
    """The bundled corpus as a real directory (it is installed unzipped)."""
    return Path(str(_bundled("corpus")))


def _bundled(folder: str) -> Traversable:
    """``migrate.<folder>`` of the installed package, or, when ``migrate`` is imported from a
    source checkout that was never installed (``python -m migrate`` in the repository), the
    top-level folder beside it: the same files either way."""
    try:
        return resources.files(f"migrate.{folder}")
    except ModuleNotFoundError:
        return resources.files("migrate").joinpath("..").joinpath(folder)


@cache
def load_json(relative: str) -> Any:
    """A bundled JSON file under ``schemas/``, parsed once per process."""
    return json.loads(schemas_root().joinpath(relative).read_text(encoding="utf-8"))


@cache
def validator(schema_name: str) -> Draft202012Validator:
    """A validator for ``schemas/<schema_name>.schema.json``.

    jsonschema is imported here, not at module level: it costs tens of milliseconds, and a
    command that validates nothing (``targets``, ``--help``) should not pay for it.
    """
    from jsonschema import Draft202012Validator

    # No check_schema() here: every bundled schema is checked against its metaschema by the
    # test suite and frozen by its sha256, so checking it again would only slow every start.
    return Draft202012Validator(load_json(f"{schema_name}.schema.json"))


def schema_errors(schema_name: str, document: Any) -> list[tuple[str, str]]:
    """Every violation of ``document`` as (JSON pointer, message), most relevant first."""
    found = sorted(validator(schema_name).iter_errors(document),
                   key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    return [(json_pointer(error.absolute_path), error.message) for error in found]


def json_pointer(parts: Any) -> str:
    """RFC 6901 pointer for a path of keys and indexes (``""`` is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
