"""``bhyvesnap check``: JSON shapes and exit statuses of CLI.md, run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult
from legacy_factory import build_legacy
from single_factory import build, craft_r1

from migrate.data import corpus_root, schemas_root
from migrate.targets import load_targets

Run = Callable[..., CliResult]
MIB = 1 << 20


@pytest.fixture
def legacy_b(tmp_path: Path) -> str:
    return str(build_legacy(tmp_path / "b", "legacy-b", memsize=MIB).memory)


@pytest.mark.parametrize(("target", "status", "verdict"), [
    ("freebsd-14", 0, "native"), ("bhyve-image-2.0", 10, "upgrade"),
    ("freebsd-13.0", 20, "incompatible"),
])
def test_exit_status_per_verdict_legacy_b(run_cli: Run, legacy_b: str, target: str,
                                          status: int, verdict: str) -> None:
    result = run_cli("check", legacy_b, "--target", target, "--json")
    assert result.status == status
    document = json.loads(result.stdout)
    assert list(document) == ["image", "target", "verdict", "findings", "plan"]
    assert (document["image"], document["target"], document["verdict"]) == (
        legacy_b, target, verdict)


def test_downgrade_lossy_and_invalid_statuses(run_cli: Run, tmp_path: Path) -> None:
    r2 = str(build(tmp_path, "r2"))
    assert run_cli("check", r2, "--target", "bhyve-image-1.0").status == 11
    assert run_cli("check", r2, "--target", "freebsd-14").status == 12
    broken = str(craft_r1(tmp_path / "broken.img", ident=b"NOVERSION"))
    result = run_cli("check", broken, "--target", "freebsd-14", "--json")
    assert result.status == 30
    (finding,) = json.loads(result.stdout)["findings"]
    assert (finding["rule"], finding["location"]) == ("BHS-S002", 0)


def test_release_and_ident_resolve_to_profile_names(run_cli: Run, legacy_b: str) -> None:
    result = run_cli("check", legacy_b, "--target", "14.1-RELEASE-p3", "--target",
                     "BHYVE CHECKPOINT IMAGE 2.0", "--target", "13.2-STABLE", "--json")
    document = json.loads(result.stdout)
    assert [(r["target"], r["verdict"]) for r in document["results"]] == [
        ("freebsd-14", "native"), ("bhyve-image-2.0", "upgrade"),
        ("freebsd-13.2", "incompatible")]
    assert result.status == 20  # the worst of 0, 10, 20


def test_a_target_named_twice_is_checked_once(run_cli: Run, legacy_b: str) -> None:
    result = run_cli("check", legacy_b, "--target", "freebsd-14", "--target", "14.0-RELEASE",
                     "--json")
    assert json.loads(result.stdout)["target"] == "freebsd-14"


def test_upgrade_json_carries_the_plan_and_the_command(run_cli: Run, legacy_b: str) -> None:
    document = json.loads(run_cli("check", legacy_b, "--target", "bhyve-image-1.0",
                                  "--json").stdout)
    (plan,) = document["plan"]
    assert (plan["step"], plan["from"], plan["to"], plan["losses"]) == (
        "legacy-b-to-r1", "legacy-b", "r1", [])
    (finding,) = [f for f in document["findings"] if f["rule"] == "BHS-T012"]
    assert finding["remedy"] == (f"bhyvesnap migrate {legacy_b} --to bhyve-image-1.0 "
                                 f"-o {legacy_b}.r1")


def test_config_drift_makes_freebsd_14_incompatible(run_cli: Run, legacy_b: str,
                                                    tmp_path: Path) -> None:
    conf = tmp_path / "vm.conf"
    conf.write_text("name=testvm\ncpus=2\nmemory.size=1M\npci.0.4.0.device=virtio-blk\n"
                    "pci.0.31.0.device=lpc\n")
    result = run_cli("check", legacy_b, "--target", "freebsd-14", "--config", str(conf),
                     "--json")
    assert result.status == 20
    (drift,) = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == "BHS-T009"]
    assert drift["file"] == str(conf)
    assert drift["severity"] == "error"


def test_verify_option(run_cli: Run, tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    raw = bytearray(path.read_bytes())
    raw[-MIB + 5] ^= 0xFF  # inside the memory section, the last section of the file
    path.write_bytes(bytes(raw))
    assert run_cli("check", str(path), "--target", "bhyve-image-2.0").status == 0
    assert run_cli("check", str(path), "--target", "bhyve-image-2.0", "--verify").status == 30


def test_human_output_is_a_table_and_findings_on_stderr(run_cli: Run, legacy_b: str) -> None:
    result = run_cli("check", legacy_b, "--target", "bhyve-image-2.0")
    assert result.status == 10
    assert "upgrade" in result.stdout
    assert "legacy-b-to-r1 → r1-to-r2" in result.stdout
    assert "[BHS-T012]" in result.stderr
    assert "remedy: bhyvesnap migrate" in result.stderr


@pytest.mark.parametrize("args", [
    ("--target", "freebsd-99"), ("--target", "12.4-RELEASE"), (),
])
def test_usage_errors_exit_2(run_cli: Run, legacy_b: str, args: tuple[str, ...]) -> None:
    assert run_cli("check", legacy_b, *args).status == 2


def test_unreadable_inputs_exit_2(run_cli: Run, legacy_b: str, tmp_path: Path) -> None:
    missing = run_cli("check", str(tmp_path / "none"), "--target", "freebsd-14")
    assert missing.status == 2
    assert "BHS-X002" in missing.stderr
    no_conf = run_cli("check", legacy_b, "--target", "freebsd-14", "--config",
                      str(tmp_path / "none.conf"))
    assert no_conf.status == 2
    assert "BHS-X002" in no_conf.stderr


def test_targets_dir_profile_replaces_a_bundled_one(run_cli: Run, legacy_b: str,
                                                    tmp_path: Path) -> None:
    source = Path(load_targets()["freebsd-14"].source)
    folder = tmp_path / "targets"
    folder.mkdir()
    document = json.loads(source.read_text())
    document["devices"] = [d for d in document["devices"] if d != "virtio-blk"]
    (folder / "freebsd-14.json").write_text(json.dumps(document))
    result = run_cli("check", legacy_b, "--target", "freebsd-14", "--targets-dir", str(folder),
                     "--json")
    assert result.status == 20
    rules = [f["rule"] for f in json.loads(result.stdout)["findings"]]
    assert rules == ["BHS-T002"]


def test_remedy_for_a_user_profile_names_its_directory(run_cli: Run, tmp_path: Path) -> None:
    """The printed command must work as printed: a target found through --targets-dir is
    found again only with it."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    document = json.loads(schemas_root().joinpath("targets").joinpath(
        "bhyve-image-2.0.json").read_text(encoding="utf-8"))
    document["name"] = "acme-2.0"
    (profiles / "acme-2.0.json").write_text(json.dumps(document))
    image = str(corpus_root() / "r1.bhyve")
    result = run_cli("check", image, "--target", "acme-2.0", "--targets-dir", str(profiles),
                     "--json")
    assert result.status == 10
    remedies = [f["remedy"] for f in json.loads(result.stdout)["findings"]
                if f["rule"] == "BHS-T012"]
    assert remedies == [f"bhyvesnap migrate {image} --to acme-2.0 -o {image}.r2 "
                        f"--targets-dir {profiles}"]
