"""migrate.migration: plans, refusals, data safety and round trips of real migrations.

Images are built by the test factories (legacy ones independently of the tool's writer);
results are checked by bytes: memory and state blobs are hashed straight from the files at
the offsets the format puts them, not through the tool's model.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from legacy_factory import LegacyFiles, blob, build_legacy
from single_factory import allocated_bytes, build, build_diff, flip_byte

from migrate import migration, storage
from migrate.data import schemas_root
from migrate.findings import ImageError, UsageError, error
from migrate.formats import read_image, read_image_files, write_image
from migrate.formats.single import read_single
from migrate.image import FileRange, Image
from migrate.migration import (
    MigrationFailed,
    MigrationRefused,
    plan_migration,
    resolve_destination,
    run_migration,
)
from migrate.registry import StepContext
from migrate.steps.flatten import Flatten
from migrate.validation import validate

MEMSIZE = 1 << 20
USER_CONFIG = ("name=testvm\ncpus=2\nmemory.size=1048576\nconfig.dump=1\n"
               "pci.0.3.0.device=virtio-blk\npci.0.3.0.path=/vm/disk.img\n"
               "pci.0.31.0.device=lpc\nlpc.com1.path=stdio\n")


def legacy_b(directory: Path, memsize: int = MEMSIZE) -> LegacyFiles:
    return build_legacy(directory, "legacy-b", memsize=memsize)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def memory_digest(image: Image) -> str:
    """sha256 of the guest memory bytes, read from the file at the image's memory range."""
    assert isinstance(image.memory, FileRange)
    with open(image.memory.path, "rb") as handle:
        handle.seek(image.memory.offset)
        data = handle.read(image.memory.size)
    assert len(data) == image.memory.size
    return sha(data)


def state_digests(image: Image) -> dict[str, str]:
    return {entry.name: sha(entry.read()) for entry in (*image.kernel, *image.devices)}


def directory_state(directory: Path) -> dict[str, str]:
    return {path.name: sha(path.read_bytes()) for path in sorted(directory.iterdir())}


def expected_state(files: LegacyFiles) -> dict[str, str]:
    """The factory's blobs by name, hashed from the blob generator itself."""
    document = files.meta_document()
    names = [row["device"] for row in (*document["kern_structs"], *document["devices"])]
    data = files.kern.read_bytes()
    rows = (*document["kern_structs"], *document["devices"])
    found = {name: sha(data[row["file_offset"]:row["file_offset"] + row["size"]])
             for name, row in zip(names, rows, strict=True)}
    assert found["atkbdc"] == sha(blob("atkbdc", 20))  # the factory's own bytes
    return found


# --------------------------------------------------------------------------------------------
# round trips


def test_legacy_b_to_r2_to_r1_keeps_memory_and_every_blob(tmp_path: Path) -> None:
    source = legacy_b(tmp_path / "src")
    memory = sha(source.memory.read_bytes())
    blobs = expected_state(source)
    r2 = tmp_path / "vm.r2"
    r1 = tmp_path / "vm.r1"
    first = run_migration(str(source.memory), "r2", str(r2))
    second = run_migration(str(r2), "r1", str(r1))
    assert [s.name for s in first.plan.steps] == ["legacy-b-to-r1", "r1-to-r2"]
    assert [s.name for s in second.plan.steps] == ["r2-to-r1"]
    assert first.written
    assert second.written
    assert validate(str(r2), verify=True).valid
    for path in (r2, r1):
        image = read_image(str(path))
        assert memory_digest(image) == memory
        assert state_digests(image) == blobs


def test_legacy_b_to_r1_and_back_is_byte_identical(tmp_path: Path) -> None:
    """The config is built from the metadata alone, so its declared loss loses nothing here."""
    source = legacy_b(tmp_path / "src")
    r1 = tmp_path / "vm.r1"
    back = tmp_path / "back.ckp"
    run_migration(str(source.memory), "r1", str(r1))
    result = run_migration(str(r1), "legacy-b", str(back), allow_lossy=True)
    assert result.outputs == (str(back), f"{back}.kern", f"{back}.meta")
    assert [Path(p).read_bytes() for p in result.outputs] == list(source.contents())


@pytest.mark.parametrize(("start", "to"), [("r1", "r2"), ("r2", "r1"), ("r1", "legacy-b")])
def test_every_single_file_step_keeps_memory_and_blobs(tmp_path: Path, start: str,
                                                       to: str) -> None:
    path = build(tmp_path, start)
    before = read_image(str(path))
    out = tmp_path / "out"
    result = run_migration(str(path), to, str(out), allow_lossy=True, verify=True)
    assert [(s.source, s.destination) for s in result.plan.steps] == [(start, to)]
    after = read_image(str(out))
    assert after.format == to
    assert memory_digest(after) == memory_digest(before)
    assert state_digests(after) == state_digests(before)
    if to == "r2":
        assert validate(str(out), verify=True).valid


def test_user_config_is_merged_and_config_dump_ignored(tmp_path: Path) -> None:
    source = legacy_b(tmp_path / "src")
    config = tmp_path / "vm.conf"
    config.write_text(USER_CONFIG)
    out = tmp_path / "vm.r2"
    result = run_migration(str(source.memory), "r2", str(out), config_file=str(config))
    text = read_image(str(out)).config_text or ""
    assert "pci.0.3.0.path=/vm/disk.img\n" in text
    assert "lpc.com1.path=stdio\n" in text
    assert "config.dump" not in text
    assert "config_incomplete" not in text
    assert result.findings == ()


def test_without_user_config_the_incomplete_config_is_a_warning(tmp_path: Path) -> None:
    source = legacy_b(tmp_path / "src")
    result = run_migration(str(source.memory), "r1", str(tmp_path / "vm.r1"))
    assert [f.rule for f in result.findings] == ["BHS-C005"]
    assert not any(f.is_error for f in result.findings)


# --------------------------------------------------------------------------------------------
# destinations and plans


@pytest.mark.parametrize(("to", "expected"), [
    ("r2", "r2"), ("bhyve-image-2.0", "r2"), ("bhyve-image-1.0", "r1"),
    ("freebsd-14", "legacy-b"), ("14.1-RELEASE-p3", "legacy-b"),
    ("BHYVE CHECKPOINT IMAGE 2.0", "r2")])
def test_to_takes_a_format_or_a_target(to: str, expected: str) -> None:
    destination, target = resolve_destination(to)
    assert destination == expected
    assert (target is None) == (to == "r2")


def test_unknown_to_is_a_usage_error_naming_the_option() -> None:
    with pytest.raises(UsageError) as caught:
        resolve_destination("r3")
    assert caught.value.finding.rule == "BHS-X003"
    assert caught.value.finding.file == "--to"
    assert "legacy-a, legacy-b, r1, r2" in caught.value.finding.message


def test_plan_migration_returns_the_image_plan_and_context(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    config = tmp_path / "vm.conf"
    config.write_text(USER_CONFIG)
    planned = plan_migration(str(source.memory), "bhyve-image-2.0", config_file=str(config))
    assert planned.image.format == "legacy-b"
    assert planned.plan.destination == "r2"
    assert planned.target is not None
    assert planned.target.name == "bhyve-image-2.0"
    assert planned.context.user_config is not None
    assert planned.context.user_config.values["pci.0.3.0.path"] == "/vm/disk.img"


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    config = tmp_path / "vm.conf"
    config.write_text("name=vm\nno equals sign\n")
    with pytest.raises(UsageError) as caught:
        plan_migration(str(source.memory), "r2", config_file=str(config))
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-C001", 8)
    with pytest.raises(UsageError) as missing:
        plan_migration(str(source.memory), "r2", config_file=str(tmp_path / "none"))
    assert missing.value.finding.rule == "BHS-X002"


def test_dry_run_writes_nothing_and_plans_what_the_real_run_does(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    before = directory_state(tmp_path)
    out = tmp_path / "vm.r2"
    dry = run_migration(str(source.memory), "r2", str(out), dry_run=True)
    assert not dry.written
    assert directory_state(tmp_path) == before
    real = run_migration(str(source.memory), "r2", str(out))
    assert dry.to_json() == {**real.to_json(), "written": False}
    assert dry.to_json()["plan"] == real.plan.to_json()["plan"]


# --------------------------------------------------------------------------------------------
# refusals


def test_lossy_plan_is_refused_without_allow_lossy(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    before = directory_state(tmp_path)
    for dry_run in (True, False):
        with pytest.raises(MigrationRefused) as caught:
            run_migration(str(path), "legacy-b", str(tmp_path / "old"), dry_run=dry_run)
        assert [f.rule for f in caught.value.findings] == ["BHS-M001"]
        assert caught.value.result is not None
        assert caught.value.result.plan.lossy()
        assert directory_state(tmp_path) == before
    assert run_migration(str(path), "legacy-b", str(tmp_path / "old"), allow_lossy=True).written


def test_informational_losses_do_not_need_allow_lossy(tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    result = run_migration(str(path), "r1", str(tmp_path / "vm.r1"))
    assert result.written
    assert not result.plan.lossy()
    assert result.plan.losses()


def test_blocked_step_is_refused_with_every_reason(tmp_path: Path) -> None:
    source = build_legacy(tmp_path, "legacy-a")
    before = directory_state(tmp_path)
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(source.memory), "r2", str(tmp_path / "vm.r2"), allow_lossy=True)
    rules = {f.rule for f in caught.value.findings}
    assert rules == {"BHS-M002", "BHS-M003"}
    assert directory_state(tmp_path) == before


def test_config_conflict_blocks_the_step(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    config = tmp_path / "vm.conf"
    config.write_text("memory.size=2G\n")
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(source.memory), "r1", str(tmp_path / "vm.r1"),
                      config_file=str(config))
    assert caught.value.finding.rule == "BHS-C004"
    assert not (tmp_path / "vm.r1").exists()


def test_no_path_into_legacy_a_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(build(tmp_path, "r2")), "legacy-a", str(tmp_path / "out"))
    assert caught.value.finding.rule == "BHS-M007"


def test_invalid_source_is_refused_with_its_validation_finding(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    document = source.meta_document()
    document["basic metadata"]["memsize"] = MEMSIZE * 2
    source.write_meta(document)
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(source.memory), "r2", str(tmp_path / "out"))
    assert caught.value.finding.rule == "BHS-L006"
    assert caught.value.result is None


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_migration(str(tmp_path / "nothing"), "r2", str(tmp_path / "out"))
    assert caught.value.finding.rule == "BHS-X002"


def test_existing_output_is_refused_without_force(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    out = tmp_path / "vm.r2"
    out.write_bytes(b"keep me")
    for dry_run in (True, False):
        with pytest.raises(MigrationRefused) as caught:
            run_migration(str(path), "r2", str(out), dry_run=dry_run)
        assert caught.value.finding.rule == "BHS-M004"
        assert out.read_bytes() == b"keep me"
    run_migration(str(path), "r2", str(out), force=True)
    assert read_image(str(out)).format == "r2"


def test_existing_legacy_part_is_refused(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    (tmp_path / "old.kern").write_bytes(b"x")
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(path), "legacy-b", str(tmp_path / "old"), allow_lossy=True)
    assert caught.value.finding.file == str(tmp_path / "old.kern")
    assert not (tmp_path / "old").exists()


def test_output_that_is_the_input_is_refused_even_with_force(tmp_path: Path) -> None:
    source = legacy_b(tmp_path)
    before = directory_state(tmp_path)
    with pytest.raises(MigrationRefused) as caught:
        run_migration(str(source.memory), "r1", str(source.memory), force=True)
    assert caught.value.finding.rule == "BHS-M004"
    assert f"is the input file {source.memory}: refusing to replace it, even with --force" \
        in caught.value.finding.message
    os.link(source.memory, tmp_path / "hardlink")
    with pytest.raises(MigrationRefused):
        run_migration(str(source.memory), "r1", str(tmp_path / "hardlink"), force=True)
    assert directory_state(tmp_path) == {**before, "hardlink": before["vm.ckp"]}


def test_missing_output_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_migration(str(build(tmp_path, "r1")), "r2", str(tmp_path / "no" / "out"))
    assert caught.value.finding.rule == "BHS-X001"


# --------------------------------------------------------------------------------------------
# data safety


WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def test_source_is_never_opened_for_writing_nor_changed(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = legacy_b(tmp_path / "src")
    watched = {os.path.realpath(p) for p in source.paths}
    stats = {p: os.stat(p) for p in source.paths}
    contents = source.contents()
    seen: list[str] = []
    violations: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def note(path: Any, writes: bool) -> None:
        if isinstance(path, (str, os.PathLike)) and os.path.realpath(path) in watched:
            seen.append(os.fspath(path))
            if writes:
                violations.append(os.fspath(path))

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        note(path, bool(flags & WRITE_FLAGS))
        return real_os_open(path, flags, *args, **kwargs)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        note(file, bool(set(mode) & set("wax+")))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    r2, r1, back = tmp_path / "vm.r2", tmp_path / "vm.r1", tmp_path / "back"
    run_migration(str(source.memory), "r2", str(r2), verify=True)
    run_migration(str(r2), "r1", str(r1), verify=True)
    watched |= {os.path.realpath(r2), os.path.realpath(r1)}
    run_migration(str(r1), "legacy-b", str(back), allow_lossy=True, verify=True)
    monkeypatch.undo()
    assert violations == []
    assert {os.path.realpath(p) for p in seen} >= {os.path.realpath(p) for p in source.paths}
    assert source.contents() == contents
    for path, before in stats.items():
        after = os.stat(path)
        assert (after.st_mtime_ns, after.st_ctime_ns) == (before.st_mtime_ns, before.st_ctime_ns)


def test_output_keeps_the_source_permissions(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    path.chmod(0o600)
    out = tmp_path / "vm.r2"
    run_migration(str(path), "r2", str(out))
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("to", ["r2", "legacy-b"])
def test_failure_while_writing_leaves_no_output_and_no_temporaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to: str) -> None:
    path = build(tmp_path, "r1")
    before = directory_state(tmp_path)

    def half_written(image: Image, paths: list[str], **options: Any) -> None:
        write_image(image, paths)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(migration, "write_image", half_written)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), to, str(tmp_path / "out"), allow_lossy=True)
    assert caught.value.finding.rule == "BHS-M006"
    assert directory_state(tmp_path) == before
    assert storage.stale_temps(str(tmp_path)) == []


def test_writer_image_error_is_a_failure_with_its_finding(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = build(tmp_path, "r1")

    def full_disk(image: Image, paths: list[str], **options: Any) -> None:
        raise ImageError(error("BHS-M006", str(tmp_path / "out"), 0, "disk full"))

    monkeypatch.setattr(migration, "write_image", full_disk)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), "r2", str(tmp_path / "out"))
    assert caught.value.result is not None
    assert caught.value.result.findings == (caught.value.finding,)
    assert storage.stale_temps(str(tmp_path)) == []


def corrupt_memory_after_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the writer flip the first memory byte of what it wrote (a bad disk, a bad copy)."""

    def corrupting(image: Image, paths: list[str], **options: Any) -> None:
        write_image(image, paths)
        memory = read_image(paths[0]).section("memory") if image.format in ("r1", "r2") else None
        offset = 0 if memory is None else memory.offset
        flip_byte(paths[0], offset)

    monkeypatch.setattr(migration, "write_image", corrupting)


@pytest.mark.parametrize(("start", "to"), [("r1", "r2"), ("r2", "r1"), ("r1", "legacy-b")])
def test_verify_compares_memory_and_refuses_a_bad_copy(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       start: str, to: str) -> None:
    path = build(tmp_path, start)
    corrupt_memory_after_writing(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), to, str(out), allow_lossy=True, verify=True)
    assert caught.value.finding.rule == "BHS-M005"
    assert "memory" in caught.value.finding.message
    assert not out.exists()
    assert storage.stale_temps(str(tmp_path)) == []
    # Without --verify guest memory is not re-read (CLI.md): the copy is trusted.
    assert run_migration(str(path), to, str(out), allow_lossy=True).written


def test_verification_compares_the_small_sections_always(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = build(tmp_path, "r1")
    real_read: Callable[..., Image] = read_image_files

    def misread(image_format: str, paths: list[str], display: str) -> Image:
        image = real_read(image_format, paths, display)
        return image.evolve(config_text=(image.config_text or "") + "extra=1\n")

    monkeypatch.setattr("migrate.migration.read_image_files", misread)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), "r2", str(tmp_path / "out"))
    assert caught.value.finding.rule == "BHS-M005"
    assert "config section" in caught.value.finding.message
    assert not (tmp_path / "out").exists()


def test_verification_checks_recorded_small_section_checksums(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = build(tmp_path, "r1")
    real_read: Callable[..., Image] = read_image_files

    def wrong_checksum(image_format: str, paths: list[str], display: str) -> Image:
        image = real_read(image_format, paths, display)
        return image.evolve(checksums={**image.checksums, "kernel": "sha256:" + "0" * 64})

    monkeypatch.setattr("migrate.migration.read_image_files", wrong_checksum)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), "r2", str(tmp_path / "out"))
    assert "'kernel'" in caught.value.finding.message


def test_unreadable_output_is_a_verification_failure(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = build(tmp_path, "r1")

    def truncating(image: Image, paths: list[str], **options: Any) -> None:
        write_image(image, paths)
        os.truncate(paths[0], 100)

    monkeypatch.setattr(migration, "write_image", truncating)
    with pytest.raises(MigrationFailed) as caught:
        run_migration(str(path), "r2", str(tmp_path / "out"))
    assert caught.value.finding.rule == "BHS-M005"
    assert "does not read back" in caught.value.finding.message


@pytest.mark.parametrize("to", ["r2", "r1"])
def test_sparse_memory_stays_sparse(tmp_path: Path, to: str) -> None:
    memsize = 64 << 20
    source = legacy_b(tmp_path / "src", memsize=memsize)
    if allocated_bytes(source.memory) > memsize // 4:
        pytest.skip("the file system does not keep holes")
    out = tmp_path / "out"
    run_migration(str(source.memory), to, str(out), verify=True)
    assert out.stat().st_size > memsize
    assert allocated_bytes(out) < 1 << 20
    back = tmp_path / "back"
    run_migration(str(out), "legacy-b", str(back), allow_lossy=True)
    assert allocated_bytes(back) < 1 << 20
    assert sha(back.read_bytes()) == sha(source.memory.read_bytes())


def test_result_json_has_the_cli_document_shape(tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    result = run_migration(str(path), "r1", str(tmp_path / "out"), dry_run=True)
    document = result.to_json()
    assert list(document) == ["plan", "lossy", "source", "outputs", "written", "findings"]
    assert document["lossy"] is False
    assert document["plan"][0]["step"] == "r2-to-r1"
    assert {loss["what"] for loss in document["plan"][0]["losses"]} == {"producer",
                                                                        "checksums"}
    assert set(document["plan"][0]) == {"step", "from", "to", "rewrites", "losses"}


# --------------------------------------------------------------------------------------------
# features: a diff-pages image is flattened first when the destination lacks the feature


@pytest.mark.parametrize(("to", "steps"), [
    ("bhyve-image-2.1", []),
    ("r2", []),
    ("bhyve-image-2.0", ["flatten"]),
    ("r1", ["flatten", "r2-to-r1"]),
    ("bhyve-image-1.0", ["flatten", "r2-to-r1"]),
])
def test_diff_pages_are_flattened_when_the_destination_lacks_them(
        tmp_path: Path, to: str, steps: list[str]) -> None:
    _, diff = build_diff(tmp_path, {0: b"new page"})
    assert [step.name for step in plan_migration(str(diff), to).plan.steps] == steps


def test_flattened_output_holds_the_merged_memory(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, {2: b"new page"})
    out = tmp_path / "flat.bhyve"
    run_migration(str(diff), "bhyve-image-2.0", str(out))
    written = read_single(str(out))
    assert written.ident == "BHYVE CHECKPOINT IMAGE 2.0"
    assert written.compat is not None
    assert written.compat.features == ()
    base_memory = read_single(str(base)).memory
    assert isinstance(base_memory, FileRange)
    assert isinstance(written.memory, FileRange)
    expected = bytearray(base_memory.read())
    expected[2 * 4096:3 * 4096] = b"new page".ljust(4096, b"\0")
    assert written.memory.read() == bytes(expected)
    assert validate(str(out), verify=True).valid


def test_diff_pages_written_elsewhere_still_finds_its_base(tmp_path: Path) -> None:
    _, diff = build_diff(tmp_path, {1: b"page"})
    elsewhere = tmp_path / "archive" / "2026"
    elsewhere.mkdir(parents=True)
    out = elsewhere / "copy.bhyve"
    run_migration(str(diff), "r2", str(out))
    written = read_single(str(out))
    memory = written.section("memory")
    assert memory is not None
    assert memory.attributes["base"].value == "../../base.bhyve"
    assert Flatten().blockers(written, StepContext()) == []
    assert validate(str(out), verify=True).valid


def test_a_damaged_source_is_refused_before_its_checksums_are_dropped(tmp_path: Path) -> None:
    """r2 -> r1 drops the checksums: a flipped memory byte must be caught first, or the r1
    output would carry the damage and read as sound."""
    source = build(tmp_path, "r2")
    memory = read_single(str(source)).section("memory")
    assert memory is not None
    flip_byte(source, memory.offset + 5)
    out = tmp_path / "out.bhyve"
    with pytest.raises(migration.MigrationRefused) as caught:
        run_migration(str(source), "r1", str(out))
    assert [f.rule for f in caught.value.findings] == ["BHS-S014"]
    assert not out.exists()


def test_the_base_of_a_diff_is_an_input_too(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, {1: b"page"})
    before = base.read_bytes()
    with pytest.raises(migration.MigrationRefused) as caught:
        run_migration(str(diff), "bhyve-image-2.0", str(base), force=True)
    assert caught.value.findings[0].rule == "BHS-M004"
    assert base.read_bytes() == before


def test_a_target_that_cannot_restore_the_result_refuses_the_migration(tmp_path: Path) -> None:
    """migrate --to TARGET refuses what check calls incompatible (here: a device emulation
    the 1.0 target profile lacks), instead of writing an output that target refuses."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    document = json.loads(schemas_root().joinpath("targets").joinpath(
        "bhyve-image-2.0.json").read_text(encoding="utf-8"))
    document["name"] = "no-virtio-blk"
    document["devices"] = [d for d in document["devices"] if d != "virtio-blk"]
    (profiles / "no-virtio-blk.json").write_text(json.dumps(document))
    source = build(tmp_path, "r1")
    with pytest.raises(migration.MigrationRefused) as caught:
        run_migration(str(source), "no-virtio-blk", str(tmp_path / "out.bhyve"),
                      targets_dir=str(profiles))
    assert {f.rule for f in caught.value.findings} == {"BHS-T002"}
