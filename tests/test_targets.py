"""Target profiles (FORMAT.md section 4): bundled data, loading user profiles, resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from migrate.data import schema_errors, schemas_root
from migrate.findings import UsageError
from migrate.targets import (
    MAX_PROFILE_SIZE,
    Feature,
    load_targets,
    normalise_release,
    parse_profile,
    resolve_target,
)

MIB = 1 << 20
LAYOUT_A_TABLE = ["atkbdc", "virtio-net", "virtio-blk", "virtio-rnd", "lpc", "fbuf", "xhci",
                  "e1000", "ahci", "ahci-hd", "ahci-cd"]
LAYOUT_B_KERNEL = ("vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr",
                   "vrtc")
LAYOUT_A_KERNEL = ("vhpet", "vm", "vmx", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic",
                   "vpmtmr", "vrtc")


def profile(**changes: Any) -> dict[str, Any]:
    """A valid user profile (a build of 14.1 with a bigger save buffer), with changes."""
    document: dict[str, Any] = {
        "name": "lab-14.1", "description": "our patched 14.1", "status": "real",
        "releases": "==14.1", "format": "legacy-b", "generation": "fbsd14",
        "devices": ["virtio-blk", "lpc"], "kernel_structures": list(LAYOUT_B_KERNEL),
        "rejects_zero_size": True, "blob_limit": 64 * MIB, "device_entries_required": True,
        "features": [], "known_defects": [], "unverified": [],
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def write(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def usage_error(targets_dir: Path) -> UsageError:
    with pytest.raises(UsageError) as caught:
        load_targets(str(targets_dir))
    return caught.value


# --- the bundled profiles --------------------------------------------------------------------

def test_bundled_profiles_are_the_six_builds() -> None:
    assert sorted(load_targets()) == ["bhyve-image-1.0", "bhyve-image-2.0", "bhyve-image-2.1",
                                      "freebsd-13.0", "freebsd-13.2", "freebsd-14"]


def test_each_bundled_file_matches_the_schema_and_is_named_after_its_profile() -> None:
    files = [e for e in schemas_root().joinpath("targets").iterdir() if e.name.endswith(".json")]
    assert len(files) == 6
    for entry in files:
        document = json.loads(entry.read_text())
        assert schema_errors("target", document) == []
        assert entry.name == f"{document['name']}.json"


def test_freebsd_13_profiles() -> None:
    targets = load_targets()
    old, new = targets["freebsd-13.0"], targets["freebsd-13.2"]
    assert (old.generation, new.generation) == ("fbsd13.0", "fbsd13.2")
    for target in (old, new):
        assert (target.status, target.format, target.ident, target.version) == (
            "real", "legacy-a", None, None)
        assert target.devices == frozenset(LAYOUT_A_TABLE)
        assert target.kernel_structures == LAYOUT_A_KERNEL
        assert target.rejects_zero_size
        assert not target.device_entries_required
        assert target.blob_limit == 20 * MIB
        assert target.features == ()
    assert old.known_defects == ()
    assert len(new.known_defects) == 1
    assert "own" in new.known_defects[0]
    assert "UNVERIFIED" in new.known_defects[0]
    assert new.unverified


def test_freebsd_14_profile() -> None:
    target = load_targets()["freebsd-14"]
    assert (target.status, target.format, target.generation) == ("real", "legacy-b", "fbsd14")
    assert str(target.releases) == ">=14.0"
    assert target.devices == frozenset(LAYOUT_A_TABLE)
    assert target.kernel_structures == LAYOUT_B_KERNEL
    assert target.device_entries_required
    assert target.blob_limit == 40 * MIB
    assert any("hostbridge" in note for note in target.unverified)


@pytest.mark.parametrize(("name", "fmt", "version"), [("bhyve-image-1.0", "r1", "1.0"),
                                                      ("bhyve-image-2.0", "r2", "2.0"),
                                                      ("bhyve-image-2.1", "r2", "2.1")])
def test_proposed_profiles(name: str, fmt: str, version: str) -> None:
    target = load_targets()[name]
    assert (target.status, target.format, target.releases) == ("proposed", fmt, None)
    assert target.ident == f"BHYVE CHECKPOINT IMAGE {version}"
    assert target.version == Version(version)
    assert (target.generation, target.blob_limit) == ("fbsd14", 40 * MIB)
    assert target.devices == frozenset(LAYOUT_A_TABLE)
    assert target.kernel_structures == LAYOUT_B_KERNEL
    expected = (Feature("diff-pages", Version("2.1"), "proposed"),) if version == "2.1" else ()
    assert target.features == expected
    assert "releases" not in json.loads(
        schemas_root().joinpath("targets").joinpath(f"{name}.json").read_text())


def test_feature_lookup_and_covers() -> None:
    targets = load_targets()
    assert targets["bhyve-image-2.1"].feature("diff-pages") is not None
    assert targets["bhyve-image-2.0"].feature("diff-pages") is None
    assert targets["freebsd-14"].covers(Version("16.0"))
    assert not targets["freebsd-14"].covers(Version("13.5"))
    assert not targets["bhyve-image-2.0"].covers(Version("14.0"))


def test_to_document_has_every_field() -> None:
    document = load_targets()["freebsd-13.0"].to_document()
    assert document["releases"] == ">=13.0,<13.2"
    assert document["devices"] == sorted(LAYOUT_A_TABLE)
    assert set(document) == {
        "name", "description", "status", "releases", "format", "ident", "version",
        "generation", "devices", "kernel_structures", "rejects_zero_size", "blob_limit",
        "device_entries_required", "features", "known_defects", "unverified", "source"}
    assert document["source"].endswith("freebsd-13.0.json")
    proposed = load_targets()["bhyve-image-2.1"].to_document()
    assert (proposed["releases"], proposed["version"]) == (None, "2.1")
    assert proposed["features"] == [{"name": "diff-pages", "introduced": "2.1",
                                     "status": "proposed"}]


# --- releases and resolution -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "release"),
                         [("14.1-RELEASE-p3", "14.1"), ("15.0-CURRENT", "15.0"),
                          ("13.2-STABLE", "13.2"), ("14.1", "14.1"), ("14.0-BETA1", "14.0"),
                          ("14.2-RC3", "14.2"), ("13.0-release", "13.0"),
                          ("16.0-CURRENT", "16.0")])
def test_normalise_release(text: str, release: str) -> None:
    assert normalise_release(text) == Version(release)


@pytest.mark.parametrize("text", ["14", "14.1.2", "v14.1", "14.1-FOO", "14.1-", "014.1",
                                  "14.1-p3", ""])
def test_normalise_release_refuses(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalise_release(text)
    assert caught.value.finding.rule == "BHS-X003"


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("14.1-RELEASE-p3", "freebsd-14"), ("15.0-CURRENT", "freebsd-14"),
        ("14.0", "freebsd-14"), ("13.0", "freebsd-13.0"), ("13.1", "freebsd-13.0"),
        ("13.2-RELEASE", "freebsd-13.2"), ("13.5-STABLE", "freebsd-13.2"),
        ("freebsd-13.2", "freebsd-13.2"), ("bhyve-image-1.0", "bhyve-image-1.0"),
        ("BHYVE CHECKPOINT IMAGE 1.0", "bhyve-image-1.0"),
        ("BHYVE CHECKPOINT IMAGE 2.0", "bhyve-image-2.0"),
        ("BHYVE CHECKPOINT IMAGE 2.1", "bhyve-image-2.1"),
    ],
)
def test_resolve_target(spec: str, name: str) -> None:
    assert resolve_target(spec, load_targets()).name == name


def test_release_matching_nothing_lists_candidates() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_target("12.4", load_targets())
    finding = caught.value.finding
    assert finding.rule == "BHS-X003"
    assert "12.4" in finding.message
    for name in ("freebsd-13.0 (releases >=13.0,<13.2)", "freebsd-14 (releases >=14.0)",
                 "bhyve-image-2.1"):
        assert name in finding.message


@pytest.mark.parametrize("spec", ["freebsd-12", "BHYVE CHECKPOINT IMAGE 3.0", "14"])
def test_unknown_target(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_target(spec, load_targets())
    assert caught.value.finding.rule == "BHS-X003"
    assert "freebsd-13.2" in caught.value.finding.message


def test_release_matching_two_profiles_lists_both(tmp_path: Path) -> None:
    write(tmp_path, "lab.json", profile())
    targets = load_targets(str(tmp_path))
    with pytest.raises(UsageError) as caught:
        resolve_target("14.1-RELEASE", targets)
    message = caught.value.finding.message
    assert "lab-14.1 (releases ==14.1)" in message
    assert "freebsd-14 (releases >=14.0)" in message
    assert resolve_target("14.2", targets).name == "freebsd-14"
    assert resolve_target("lab-14.1", targets).name == "lab-14.1"


def test_ident_shared_by_two_profiles_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path, "twin.json", profile(name="twin", status="proposed", releases=None,
                                         format="r2", ident="BHYVE CHECKPOINT IMAGE 2.0"))
    with pytest.raises(UsageError) as caught:
        resolve_target("BHYVE CHECKPOINT IMAGE 2.0", load_targets(str(tmp_path)))
    assert "bhyve-image-2.0, twin" in caught.value.finding.message


# --- user profiles ---------------------------------------------------------------------------

def test_targets_dir_adds_profiles(tmp_path: Path) -> None:
    write(tmp_path, "lab.json", {"$schema": "target.schema.json", **profile()})
    (tmp_path / "notes.txt").write_text("not a profile")
    targets = load_targets(str(tmp_path))
    assert len(targets) == 7
    lab = targets["lab-14.1"]
    assert lab.source == str(tmp_path / "lab.json")
    assert lab.blob_limit == 64 * MIB
    assert lab.devices == frozenset({"virtio-blk", "lpc"})


def test_user_profile_replaces_bundled_one_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path, "mine.json", profile(name="freebsd-14", releases=">=14.0",
                                         rejects_zero_size=False))
    targets = load_targets(str(tmp_path))
    assert len(targets) == 6
    assert not targets["freebsd-14"].rejects_zero_size
    assert targets["freebsd-14"].source == str(tmp_path / "mine.json")
    assert load_targets()["freebsd-14"].rejects_zero_size


@pytest.mark.parametrize(
    ("document", "location", "words"),
    [
        (profile(blob_limit=0), "/blob_limit", "minimum"),
        (profile(format="legacy-c"), "/format", ""),
        (profile(extra=1), "", "extra"),
        (profile(releases=None), "", "releases"),
        (profile(status="proposed"), "", "releases"),
        (profile(format="r1"), "", "ident"),
        (profile(ident="BHYVE CHECKPOINT IMAGE 1.0"), "", "ident"),
        (profile(releases="at least 14"), "/releases", "specifier"),
        (profile(format="r2", ident="BHYVE CHECKPOINT IMAGE 1.0"), "/ident", "major"),
        (profile(format="r2", ident="BHYVE CHECKPOINT IMAGE 2.0",
                 features=[{"name": "f", "introduced": "2.1", "status": "proposed"}]),
         "/features/0/introduced", "after"),
        (profile(format="r2", ident="BHYVE CHECKPOINT IMAGE 2.1",
                 features=[{"name": "f", "introduced": "2.1", "status": "real"},
                           {"name": "f", "introduced": "2.0", "status": "real"}]),
         "/features/1/name", "twice"),
        (profile(features=[{"name": "f", "introduced": "2.1", "status": "real"}]),
         "/features/0", "no compat record"),
        ("[1, 2", 5, "not JSON"),
        ('{"name": "é", ', 15, "not JSON"),
    ],
)
def test_invalid_profile_is_x004_with_location(tmp_path: Path, document: Any,
                                               location: int | str, words: str) -> None:
    path = write(tmp_path, "bad.json", document)
    finding = usage_error(tmp_path).finding
    assert (finding.rule, finding.file, finding.location) == ("BHS-X004", str(path), location)
    assert words in finding.message


def test_profile_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_bytes(b'{"name": "\xff"}')
    finding = usage_error(tmp_path).finding
    assert (finding.rule, finding.location) == ("BHS-X004", 10)


def test_two_user_files_with_one_name(tmp_path: Path) -> None:
    write(tmp_path, "a.json", profile())
    write(tmp_path, "b.json", profile())
    finding = usage_error(tmp_path).finding
    assert (finding.rule, finding.file, finding.location) == (
        "BHS-X004", str(tmp_path / "b.json"), "/name")
    assert str(tmp_path / "a.json") in finding.message


def test_profile_too_large(tmp_path: Path) -> None:
    write(tmp_path, "big.json", " " * (MAX_PROFILE_SIZE + 1))
    finding = usage_error(tmp_path).finding
    assert (finding.rule, finding.location) == ("BHS-X004", MAX_PROFILE_SIZE)


def test_unreadable_targets_dir(tmp_path: Path) -> None:
    for missing in (tmp_path / "nope", write(tmp_path, "file.json", profile())):
        finding = usage_error(missing).finding
        assert (finding.rule, finding.file) == ("BHS-X002", str(missing))


def test_unreadable_profile_file(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    finding = usage_error(tmp_path).finding
    assert (finding.rule, finding.file) == ("BHS-X002", str(tmp_path / "dir.json"))


def test_parse_profile_directly() -> None:
    target = parse_profile(json.dumps(profile()).encode(), "lab.json")
    assert (target.name, target.source, str(target.releases)) == ("lab-14.1", "lab.json",
                                                                  "==14.1")
