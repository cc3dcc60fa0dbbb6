"""Bundled data: found through the package, schemas applied with JSON pointers."""

from __future__ import annotations

from migrate.data import corpus_root, json_pointer, load_json, schema_errors, schemas_root


def test_bundled_folders_are_found() -> None:
    assert schemas_root().joinpath("bhyve").joinpath("revisions.json").is_file()
    assert (corpus_root() / "manifest.json").is_file()
    assert load_json("bhyve/revisions.json")["producer"] == "BHYVE CHECKPOINT IMAGE"


def test_schema_errors_are_located_by_json_pointer() -> None:
    document = {"sections": {"memory": {"offset": -1, "size": 1, "type": "binary"}},
                "compat": {"min_reader": "BHYVE CHECKPOINT IMAGE 2.0"}}
    assert schema_errors("header-r2", document)[0][0] == "/sections/memory/offset"
    assert schema_errors("header-r2", {"sections": {}, "compat": {
        "min_reader": "BHYVE CHECKPOINT IMAGE 2.0"}}) == []


def test_json_pointer_escapes() -> None:
    assert json_pointer(["a/b", "c~d", 3]) == "/a~1b/c~0d/3"
    assert json_pointer([]) == ""
