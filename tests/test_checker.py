"""The checker's verdicts: every example of FORMAT.md 6, and each target rule triggered.

Images are built on disk by the test factories (the real writers for single files, the
spec-copied legacy factory) and read back through ``validate``, so each verdict here is the
one ``bhyvesnap check`` would print. Expected verdicts, rule ids and remedies are written out
by hand from the spec, not computed with the checker's own helpers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from legacy_factory import blob, build_legacy, layout_a_kernel
from single_factory import build, build_diff, craft_r1, flip_byte, model

from migrate import storage
from migrate.checker import CheckResult, check, check_path, migrate_command
from migrate.config import load_config_file, parse_config
from migrate.findings import Severity, UsageError
from migrate.formats.single import write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, StateEntry
from migrate.registry import REGISTRY, Registry
from migrate.targets import Target, load_targets, resolve_target
from migrate.transforms import TransformRegistry
from migrate.validation import validate
from migrate.verdicts import Verdict

TARGETS = load_targets()
MIB = 1 << 20
CONFIG_B = ("name=testvm\ncpus=2\nmemory.size=1048576\npci.0.0.0.device=hostbridge\n"
            "pci.0.3.0.device=virtio-blk\npci.0.3.0.path=/vm/disk.img\n"
            "pci.0.31.0.device=lpc\n")
"""The configuration the default legacy-b factory image was taken with (hostbridge has no
snapshot state, so it never counts as drift)."""


def run(path: Path | str, target: str | Target, **kwargs: Any) -> CheckResult:
    verify = kwargs.pop("verify", False)
    profile = TARGETS[target] if isinstance(target, str) else target
    return check(validate(str(path), verify=verify), profile, **kwargs)


def rules(result: CheckResult, severity: Severity | None = None) -> list[str]:
    return [f.rule for f in result.findings if severity is None or f.severity is severity]


def only(result: CheckResult, rule: str) -> Any:
    (found,) = [f for f in result.findings if f.rule == rule]
    return found


def legacy_b(tmp: Path, **kwargs: Any) -> Path:
    return build_legacy(tmp / "b", "legacy-b", memsize=MIB, **kwargs).memory


def legacy_a(tmp: Path, vmx_size: int = 96) -> Path:
    return build_legacy(tmp / "a", "legacy-a", memsize=MIB,
                        kernel=layout_a_kernel(vmx_size)).memory


def r2_with(tmp: Path, name: str = "custom.bhyve", **changes: Any) -> Path:
    """An r2 image like the factory's, with model fields replaced."""
    out = tmp / name
    write_single(model(tmp, "r2").evolve(**changes), str(out))
    return out


def step_names(result: CheckResult) -> list[str]:
    return [] if result.plan is None else [step.name for step in result.plan.steps]


# --------------------------------------------------------------------------- FORMAT.md 6


@pytest.mark.parametrize(("target", "verdict", "steps"), [
    ("freebsd-14", Verdict.NATIVE, []),
    ("bhyve-image-1.0", Verdict.UPGRADE, ["legacy-b-to-r1"]),
    ("bhyve-image-2.0", Verdict.UPGRADE, ["legacy-b-to-r1", "r1-to-r2"]),
    ("freebsd-13.0", Verdict.INCOMPATIBLE, None),
    ("freebsd-13.2", Verdict.INCOMPATIBLE, None),
])
def test_legacy_b_example(tmp_path: Path, target: str, verdict: Verdict,
                          steps: list[str] | None) -> None:
    result = run(legacy_b(tmp_path), target)
    assert result.verdict is verdict
    assert result.target == target
    if steps is None:
        assert result.plan is None
        assert "BHS-T010" in rules(result, Severity.ERROR)
    else:
        assert step_names(result) == steps
    if verdict is Verdict.NATIVE:
        assert rules(result, Severity.ERROR) == []
        assert "BHS-T012" not in rules(result)


def test_legacy_b_upgrade_remedy_is_the_exact_migrate_command(tmp_path: Path) -> None:
    path = legacy_b(tmp_path)
    finding = only(run(path, "bhyve-image-2.0"), "BHS-T012")
    assert finding.severity is Severity.INFO
    assert finding.remedy == f"bhyvesnap migrate {path} --to bhyve-image-2.0 -o {path}.r2"
    # without --config the legacy-b -> r1 step builds an incomplete config: say how to avoid it
    assert "--config FILE" in finding.message


def test_legacy_b_on_13x_names_every_reason(tmp_path: Path) -> None:
    result = run(legacy_b(tmp_path), "freebsd-13.0")
    t001 = [f for f in result.findings if f.rule == "BHS-T001"]
    # one per structure: 9 kernel structures (vmx is absent) and 3 device emulations
    assert len(t001) == 12
    assert t001[1].message == ("kernel structure `vm`: generation fbsd14 → fbsd13.0 has no "
                               "registered upgrade")
    assert t001[1].file.endswith("vm.ckp.meta")
    assert t001[1].location == "/kern_structs/1"
    assert only(result, "BHS-T003").message.startswith("kernel structure `vmx`")
    assert all(f.remedy for f in result.findings if f.is_error)


def test_r1_is_lossy_on_freebsd_14(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    result = run(path, "freebsd-14")
    assert result.verdict is Verdict.LOSSY
    assert step_names(result) == ["r1-to-legacy-b"]
    finding = only(result, "BHS-T012")
    assert "config (the config section" in finding.message
    assert finding.remedy == (f"bhyvesnap migrate {path} --to freebsd-14 -o {path}.legacy-b "
                              "--allow-lossy")


@pytest.mark.parametrize(("target", "verdict"), [
    ("bhyve-image-2.0", Verdict.NATIVE), ("bhyve-image-2.1", Verdict.NATIVE),
    ("bhyve-image-1.0", Verdict.DOWNGRADE), ("freebsd-14", Verdict.LOSSY),
    ("freebsd-13.2", Verdict.INCOMPATIBLE),
])
def test_plain_r2_example(tmp_path: Path, target: str, verdict: Verdict) -> None:
    assert run(build(tmp_path, "r2"), target).verdict is verdict


def test_r2_downgrade_lists_informational_losses_only(tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    result = run(path, "bhyve-image-1.0")
    finding = only(result, "BHS-T012")
    assert "producer, checksums" in finding.message
    assert finding.remedy == f"bhyvesnap migrate {path} --to bhyve-image-1.0 -o {path}.r1"
    assert result.to_json()["plan"][0]["step"] == "r2-to-r1"


def test_diff_pages_without_base_is_incompatible_everywhere(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, {0: b"new page"})
    base.unlink()
    for target in ("bhyve-image-2.0", "bhyve-image-2.1", "freebsd-14"):
        result = run(diff, target)
        assert result.verdict is Verdict.INCOMPATIBLE, target
        finding = only(result, "BHS-T008")
        assert finding.location == "/sections/memory/base"
        assert str(base) in finding.message
        assert str(base) in (finding.remedy or "")


def test_diff_pages_with_its_base_is_a_flatten_downgrade(tmp_path: Path) -> None:
    _, diff = build_diff(tmp_path, {0: b"new page"})
    result = run(diff, "bhyve-image-2.0")
    assert result.verdict is Verdict.DOWNGRADE
    assert step_names(result) == ["flatten"]
    assert only(result, "BHS-T012").remedy == (
        f"bhyvesnap migrate {diff} --to bhyve-image-2.0 -o {diff}.r2")
    assert run(diff, "bhyve-image-2.1").verdict is Verdict.NATIVE
    assert step_names(run(diff, "bhyve-image-1.0")) == ["flatten", "r2-to-r1"]
    assert run(diff, "freebsd-14").verdict is Verdict.LOSSY


def test_diff_pages_against_another_base_is_not_at_hand(tmp_path: Path) -> None:
    _, diff = build_diff(tmp_path, {0: b"new page"})
    build(tmp_path, "r2", name="base.bhyve", memory_size=2 * MIB)  # same name, other memory
    assert "BHS-T008" in rules(run(diff, "bhyve-image-2.1"), Severity.ERROR)


def test_a_feature_without_a_registered_remover_is_incompatible(tmp_path: Path) -> None:
    _, diff = build_diff(tmp_path, {0: b"new page"})
    without_flatten = Registry()
    for step in REGISTRY.steps:
        if step.name != "flatten":
            without_flatten.register(step)
    result = run(diff, "bhyve-image-2.0", registry=without_flatten)
    assert result.verdict is Verdict.INCOMPATIBLE
    assert only(result, "BHS-T006").location == "/compat/features"


# --------------------------------------------------------------------------- producer, validity


@pytest.mark.parametrize(("ident", "rule"), [
    (b"ACME SNAPSHOT 1.0", "BHS-P001"), (b"BHYVE CHECKPOINT IMAGE 3.0", "BHS-P002"),
    (b"BHYVE CHECKPOINT IMAGE 1.1", "BHS-P002"),
])
def test_not_interpreted_images_are_incompatible(tmp_path: Path, ident: bytes,
                                                 rule: str) -> None:
    path = craft_r1(tmp_path / "x.img", ident=ident)
    for target in ("freebsd-14", "bhyve-image-2.1"):
        result = run(path, target)
        assert result.verdict is Verdict.INCOMPATIBLE
        assert rules(result) == [rule]
        assert result.plan is None
        assert result.findings[0].remedy


def test_unknown_r2_minor_is_decided_by_its_compat_record(tmp_path: Path) -> None:
    path = r2_with(tmp_path, ident=mainstream_ident("2.7"))
    assert run(path, "bhyve-image-2.0").verdict is Verdict.NATIVE


def test_malformed_prefix_is_invalid(tmp_path: Path) -> None:
    result = run(craft_r1(tmp_path / "x.img", ident=b"NOVERSION"), "freebsd-14")
    assert result.verdict is Verdict.INVALID
    assert [(f.rule, f.location) for f in result.findings] == [("BHS-S002", 0)]


def test_damaged_image_is_invalid_with_its_location(tmp_path: Path) -> None:
    path = legacy_b(tmp_path)
    with open(path, "r+b") as handle:
        handle.truncate(MIB - 4096)
    result = run(path, "freebsd-14")
    assert result.verdict is Verdict.INVALID
    (finding,) = result.findings
    assert (finding.rule, finding.file, finding.location) == ("BHS-L006", str(path), MIB - 4096)
    assert finding.remedy  # every error of a verdict other than native says what to do


def test_verify_catches_a_checksum_mismatch(tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    memory = validate(str(path)).image
    assert memory is not None
    section = memory.section("memory")
    assert section is not None
    flip_byte(path, section.offset + 10)
    assert run(path, "bhyve-image-2.0").verdict is Verdict.NATIVE
    result = run(path, "bhyve-image-2.0", verify=True)
    assert result.verdict is Verdict.INVALID
    assert [(f.rule, f.location) for f in result.findings if f.is_error] == [
        ("BHS-S014", "/sections/memory/checksum")]


def test_check_reads_no_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = build(tmp_path, "r2")

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("check hashed a section")

    monkeypatch.setattr(storage, "hash_range", refuse)
    assert run(path, "bhyve-image-1.0").verdict is Verdict.DOWNGRADE


# --------------------------------------------------------------------------- target rules


def test_t001_registered_transforms_are_applied_by_steps_that_rewrite(tmp_path: Path) -> None:
    image = model(tmp_path, "r2")
    path = r2_with(tmp_path, kernel=tuple(StateEntry(e.name, "fbsd15", e.read())
                                          for e in image.kernel))
    result = run(path, "bhyve-image-2.0")
    assert result.verdict is Verdict.INCOMPATIBLE
    found = [f for f in result.findings if f.rule == "BHS-T001"]
    assert [f.location for f in found] == [f"/kernel/{e.name}" for e in image.kernel]
    transforms = TransformRegistry()
    for entry in image.kernel:
        transforms.register(entry.name, "fbsd15", "fbsd14", bytes)
    # a step that rewrites the entries applies the transforms: r2 -> r1 does
    downgraded = run(path, "bhyve-image-1.0", transforms=transforms)
    assert downgraded.verdict is Verdict.DOWNGRADE
    assert "BHS-T012" in rules(downgraded)
    # within r2 no step runs, so nothing would apply them: refused, and said why
    same_format = run(path, "bhyve-image-2.0", transforms=transforms)
    assert same_format.verdict is Verdict.INCOMPATIBLE
    assert "no migration step applies them within format r2" in " ".join(
        f.message for f in same_format.findings if f.rule == "BHS-T010")


def test_t001_legacy_a_on_freebsd_14(tmp_path: Path) -> None:
    result = run(legacy_a(tmp_path), "freebsd-14")
    assert result.verdict is Verdict.INCOMPATIBLE
    messages = [f.message for f in result.findings if f.rule == "BHS-T001"]
    # vmx is dropped on the way to layout B and absent devices carry no state
    assert not any("`vmx`" in m for m in messages)
    assert "device `virtio-blk`: generation fbsd13.0 → fbsd14 has no registered upgrade" \
        in messages


def test_t002_device_the_target_cannot_restore(tmp_path: Path) -> None:
    image = model(tmp_path, "r2")
    nvme = StateEntry("nvme@pci.0.5.0", "fbsd14", b"nvme state")
    path = r2_with(tmp_path, devices=(*image.devices, nvme))
    result = run(path, "freebsd-14")  # a lossy plan exists, but content decides first
    assert result.verdict is Verdict.INCOMPATIBLE
    assert only(result, "BHS-T002").location == "/devices/nvme@pci.0.5.0"


def test_t003_kernel_structure_missing(tmp_path: Path) -> None:
    image = model(tmp_path, "r2")
    path = r2_with(tmp_path, kernel=tuple(e for e in image.kernel if e.name != "vrtc"))
    result = run(path, "bhyve-image-2.0")
    assert result.verdict is Verdict.INCOMPATIBLE
    assert rules(result, Severity.ERROR) == ["BHS-T003"]
    assert "`vrtc`" in only(result, "BHS-T003").message


def test_t004_zero_size_vmx_on_13_2_with_its_known_defect(tmp_path: Path) -> None:
    path = legacy_a(tmp_path, vmx_size=0)
    result = run(path, "freebsd-13.2")
    assert result.verdict is Verdict.INCOMPATIBLE
    assert rules(result, Severity.ERROR) == ["BHS-T004"]
    finding = only(result, "BHS-T004")
    assert finding.file.endswith("vm.ckp.meta")
    assert finding.location == "/structs/2"
    assert only(result, "BHS-T011").severity is Severity.INFO
    assert run(legacy_a(tmp_path / "13.0"), "freebsd-13.0").verdict is Verdict.NATIVE


def test_t005_blob_larger_than_the_save_buffer(tmp_path: Path) -> None:
    tight = dataclasses.replace(TARGETS["bhyve-image-2.0"], blob_limit=64)
    result = run(build(tmp_path, "r2"), tight)
    assert result.verdict is Verdict.INCOMPATIBLE
    # factory blobs are 32 + 8 i bytes: kernel entries 5.. and device entries 4.. exceed 64
    assert {f.location for f in result.findings if f.rule == "BHS-T005"} == {
        "/kernel/vatpit", "/kernel/vatpic", "/kernel/vpmtmr", "/kernel/vrtc"}


def test_t006_unknown_feature(tmp_path: Path) -> None:
    path = r2_with(tmp_path, compat=Compat(mainstream_ident("2.0"), ("zstd-memory",)))
    for target in ("bhyve-image-2.0", "bhyve-image-2.1", "freebsd-14"):
        result = run(path, target)
        assert result.verdict is Verdict.INCOMPATIBLE
        assert "zstd-memory" in only(result, "BHS-T006").message


def test_t007_min_reader_newer_than_the_target(tmp_path: Path) -> None:
    path = r2_with(tmp_path, ident=mainstream_ident("2.3"),
                   compat=Compat(mainstream_ident("2.3")))
    result = run(path, "bhyve-image-2.1")
    assert result.verdict is Verdict.INCOMPATIBLE
    assert only(result, "BHS-T007").location == "/compat/min_reader"


def test_t009_drift_is_incompatible_for_legacy_targets_only(tmp_path: Path) -> None:
    path = legacy_b(tmp_path)
    same = parse_config(CONFIG_B, "vm.conf")
    assert run(path, "freebsd-14", user_config=same, user_config_file="vm.conf").verdict \
        is Verdict.NATIVE
    drifted = parse_config(CONFIG_B.replace("pci.0.3.0", "pci.0.4.0")
                           + "pci.0.5.0.device=virtio-net\n", "vm.conf")
    result = run(path, "freebsd-14", user_config=drifted, user_config_file="vm.conf")
    assert result.verdict is Verdict.INCOMPATIBLE
    drift = [(f.message.split(" (")[0], f.location) for f in result.findings
             if f.rule == "BHS-T009"]
    assert drift == [
        ("virtio-blk moved from pci 0:3:0 to 0:4:0", "/values/pci.0.4.0.device"),
        ("virtio-net at pci 0:5:0 was added to the configuration", "/values/pci.0.5.0.device"),
    ]
    proposed = run(path, "bhyve-image-1.0", user_config=drifted, user_config_file="vm.conf")
    assert proposed.verdict is Verdict.UPGRADE
    assert {f.severity for f in proposed.findings if f.rule == "BHS-T009"} == {Severity.WARNING}
    assert "--config vm.conf" in (only(proposed, "BHS-T012").remedy or "")


def test_t009_removed_device_of_a_layout_a_image(tmp_path: Path) -> None:
    path = legacy_a(tmp_path)  # atkbdc, virtio-blk and lpc present
    config = parse_config("pci.0.31.0.device=lpc\n", "vm.conf")
    result = run(path, "freebsd-13.0", user_config=config, user_config_file="vm.conf")
    assert result.verdict is Verdict.INCOMPATIBLE
    assert only(result, "BHS-T009").message.startswith(
        "virtio-blk was removed from the configuration")


def test_t010_blocked_step_names_its_reason(tmp_path: Path) -> None:
    path = build_legacy(tmp_path, "legacy-b", memsize=256 << 10).memory  # below 1 MiB
    result = run(path, "bhyve-image-1.0")
    assert result.verdict is Verdict.INCOMPATIBLE
    assert "cannot run on this image" in only(result, "BHS-T010").message
    assert only(result, "BHS-C003").location == "/basic metadata/memsize"


def test_t011_known_defect_never_changes_a_verdict(tmp_path: Path) -> None:
    path = legacy_a(tmp_path)
    plain = TARGETS["freebsd-13.0"]
    flawed = dataclasses.replace(plain, known_defects=("loses the RTC alarm",))
    assert run(path, plain).verdict is Verdict.NATIVE
    result = run(path, flawed)
    assert result.verdict is Verdict.NATIVE
    assert only(result, "BHS-T011").message == "freebsd-13.0: loses the RTC alarm"


def test_t013_configured_device_without_state(tmp_path: Path) -> None:
    image = model(tmp_path, "r2")
    text = (image.config_text or "") + "pci.0.6.0.device=virtio-rnd\npci.0.0.0.device=hostbridge\n"
    path = r2_with(tmp_path, config_text=text)
    result = run(path, "bhyve-image-2.0")
    assert result.verdict is Verdict.INCOMPATIBLE
    finding = only(result, "BHS-T013")  # hostbridge has no snapshot support: no entry needed
    assert "virtio-rnd at pci 0:6:0" in finding.message
    relaxed = dataclasses.replace(TARGETS["bhyve-image-2.0"], device_entries_required=False)
    result = run(path, relaxed)
    assert result.verdict is Verdict.NATIVE
    assert only(result, "BHS-T013").severity is Severity.WARNING


# --------------------------------------------------------------------------- API


def test_check_path_reads_once_for_several_targets_resolved_by_release(tmp_path: Path) -> None:
    path = legacy_b(tmp_path)
    targets = [resolve_target(spec, TARGETS)
               for spec in ("14.1-RELEASE-p3", "BHYVE CHECKPOINT IMAGE 2.0")]
    results = check_path(str(path), targets)
    assert [(r.target, r.verdict) for r in results] == [
        ("freebsd-14", Verdict.NATIVE), ("bhyve-image-2.0", Verdict.UPGRADE)]
    document = results[1].to_json()
    assert list(document) == ["image", "target", "verdict", "findings", "plan"]
    assert document["image"] == str(path)
    assert document["verdict"] == "upgrade"
    assert [step["step"] for step in document["plan"]] == ["legacy-b-to-r1", "r1-to-r2"]


def test_check_path_with_a_config_file(tmp_path: Path) -> None:
    path = legacy_b(tmp_path)
    conf = tmp_path / "vm.conf"
    conf.write_text(CONFIG_B)
    (result,) = check_path(str(path), [TARGETS["bhyve-image-1.0"]], config_file=str(conf))
    finding = only(result, "BHS-T012")
    assert "--config FILE" not in finding.message
    assert finding.remedy == (f"bhyvesnap migrate {path} --to bhyve-image-1.0 -o {path}.r1 "
                              f"--config {conf}")


def test_config_file_errors_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as missing:
        load_config_file(str(tmp_path / "absent.conf"))
    assert missing.value.finding.rule == "BHS-X002"
    bad = tmp_path / "bad.conf"
    bad.write_text("name=vm\nno equals sign\n")
    with pytest.raises(UsageError) as syntax:
        load_config_file(str(bad))
    assert (syntax.value.finding.rule, syntax.value.finding.location) == ("BHS-C001", 8)


def test_migrate_command_quotes_paths() -> None:
    target = TARGETS["freebsd-14"]
    assert migrate_command("my vm.ckp", "my vm.ckp", target, lossy=True,
                           config_file="a b.conf") == (
        "bhyvesnap migrate 'my vm.ckp' --to freebsd-14 -o 'my vm.ckp.legacy-b' "
        "--config 'a b.conf' --allow-lossy")


def test_device_blobs_are_named_by_emulation_whatever_the_spelling(tmp_path: Path) -> None:
    devices: Sequence[tuple[str, bytes]] = (("virtio-blk-pci-0-3-0", blob("virtio-blk", 300)),
                                            ("lpc-pci-0-31-0", blob("lpc", 12)),
                                            ("atkbdc", blob("atkbdc", 20)))
    path = legacy_b(tmp_path, devices=devices)
    config = parse_config(CONFIG_B, "vm.conf")
    assert run(path, "freebsd-14", user_config=config, user_config_file="vm.conf").verdict \
        is Verdict.NATIVE
