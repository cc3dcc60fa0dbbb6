"""``bhyvesnap targets``: the table, the JSON document and --targets-dir."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import CliResult

Run = Callable[..., CliResult]

LAB_PROFILE = {
    "name": "lab-14.1", "description": "our patched 14.1", "status": "real",
    "releases": "==14.1", "format": "legacy-b", "generation": "fbsd14",
    "devices": ["virtio-blk"], "kernel_structures": ["vm"], "rejects_zero_size": True,
    "blob_limit": 1000, "device_entries_required": True, "features": [],
    "known_defects": [], "unverified": [],
}


def test_table(run_cli: Run) -> None:
    result = run_cli("targets")
    assert result.status == 0
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "status", "releases", "format", "/", "IDENT",
                                "generation", "blob", "limit"]
    rows = [line.split(None, 3) for line in lines[2:]]
    assert [row[0] for row in rows] == ["freebsd-13.0", "freebsd-13.2", "freebsd-14",
                                        "bhyve-image-1.0", "bhyve-image-2.0", "bhyve-image-2.1"]
    assert rows[0][1:3] == ["real", ">=13.0,<13.2"]
    assert rows[3][1:3] == ["proposed", "-"]
    assert "r2 (BHYVE CHECKPOINT IMAGE 2.1)" in lines[-1]
    assert lines[-1].rstrip().endswith("fbsd14        40 MiB")
    assert "20 MiB" in lines[2]


def test_json_is_one_document_with_every_field(run_cli: Run) -> None:
    result = run_cli("targets", "--json")
    assert result.status == 0
    document = json.loads(result.stdout)
    assert list(document) == ["targets"]
    by_name = {t["name"]: t for t in document["targets"]}
    assert len(by_name) == 6
    assert by_name["freebsd-14"]["releases"] == ">=14.0"
    assert by_name["freebsd-14"]["blob_limit"] == 40 << 20
    assert by_name["bhyve-image-2.0"]["ident"] == "BHYVE CHECKPOINT IMAGE 2.0"
    assert by_name["bhyve-image-2.0"]["releases"] is None
    assert by_name["freebsd-13.2"]["known_defects"]


def test_targets_dir_adds_a_row(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "lab.json").write_text(json.dumps(LAB_PROFILE))
    result = run_cli("targets", "--targets-dir", str(tmp_path))
    assert result.status == 0
    row = next(line for line in result.stdout.splitlines() if line.startswith("lab-14.1"))
    assert row.split() == ["lab-14.1", "real", "==14.1", "legacy-b", "fbsd14", "1000", "bytes"]
    listed = json.loads(run_cli("targets", "--json", "--targets-dir", str(tmp_path)).stdout)
    lab = next(t for t in listed["targets"] if t["name"] == "lab-14.1")
    assert lab["source"] == str(tmp_path / "lab.json")


def test_invalid_profile_is_a_usage_error(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "lab.json").write_text(json.dumps({**LAB_PROFILE, "blob_limit": -1}))
    result = run_cli("targets", "--json", "--targets-dir", str(tmp_path))
    assert result.status == 2
    assert result.stdout == ""
    assert f"{tmp_path / 'lab.json'}:/blob_limit:" in result.stderr
    assert "[BHS-X004]" in result.stderr


def test_help_has_an_example(run_cli: Run) -> None:
    result = run_cli("targets", "--help")
    assert result.status == 0
    assert "bhyvesnap targets --json" in result.stdout
    assert "--targets-dir DIR" in result.stdout
