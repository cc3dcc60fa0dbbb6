"""Every bundled schema is a valid Draft 2020-12 schema, frozen by its sha256, and every
bundled data file that names a schema validates against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from schema_lock import SCHEMAS, digest, load_lock, schema_files

DATA_FILES = sorted(p for p in SCHEMAS.rglob("*.json")
                    if not p.name.endswith(".schema.json") and p.name != "lock.json")


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_schema_is_valid_against_its_metaschema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_schema_is_locked_and_unchanged() -> None:
    lock = load_lock()
    on_disk = {p.relative_to(SCHEMAS).as_posix(): digest(p) for p in schema_files()}
    unlocked = sorted(set(on_disk) - set(lock))
    assert not unlocked, f"new schemas must be locked: python tests/schema_lock.py --add {unlocked}"
    changed = sorted(name for name in lock if on_disk.get(name) != lock[name])
    assert not changed, f"shipped schemas are frozen; add a new revision, do not edit {changed}"


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.relative_to(SCHEMAS).as_posix())
def test_bundled_data_matches_its_schema(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    schema_ref = document.get("$schema")
    assert schema_ref, f"{path} must name its schema in $schema"
    schema = json.loads((path.parent / schema_ref).resolve().read_text(encoding="utf-8"))
    errors = sorted(Draft202012Validator(schema).iter_errors(document), key=str)
    assert not errors, errors[0].message
