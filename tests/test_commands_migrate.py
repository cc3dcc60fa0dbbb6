"""``bhyvesnap migrate``: options, output forms, exit statuses (CLI.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import CliResult
from legacy_factory import build_legacy
from single_factory import build

from migrate.formats import read_image

Run = Callable[..., CliResult]


def listing(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_migrates_legacy_b_to_r2_and_says_so(tmp_path: Path, run_cli: Run) -> None:
    source = build_legacy(tmp_path, "legacy-b", memsize=1 << 20)
    out = tmp_path / "vm.bhyve"
    result = run_cli("migrate", str(source.memory), "--to", "r2", "-o", str(out))
    assert result.status == 0, result.stderr
    assert read_image(str(out)).format == "r2"
    assert result.stdout == (f"wrote {out} (r2) from {source.memory} (legacy-b) in 2 step(s)\n")
    assert "warning:" in result.stderr
    assert "[BHS-C005]" in result.stderr


def test_target_names_the_destination_and_legacy_writes_three_files(tmp_path: Path,
                                                                    run_cli: Run) -> None:
    path = build(tmp_path, "r1")
    result = run_cli("migrate", str(path), "--to", "freebsd-14", "-o", str(tmp_path / "old"),
                     "--allow-lossy")
    assert result.status == 0, result.stderr
    assert {"old", "old.kern", "old.meta"} <= set(listing(tmp_path))
    assert read_image(str(tmp_path / "old")).format == "legacy-b"


def test_dry_run_json_is_the_plan_the_real_run_executes(tmp_path: Path, run_cli: Run) -> None:
    source = build_legacy(tmp_path, "legacy-b", memsize=1 << 20)
    out = tmp_path / "vm.bhyve"
    before = listing(tmp_path)
    dry = run_cli("migrate", str(source.memory), "--to", "bhyve-image-2.0", "-o", str(out),
                  "--dry-run", "--json")
    assert dry.status == 0
    assert listing(tmp_path) == before
    planned = json.loads(dry.stdout)
    assert [(s["step"], s["from"], s["to"]) for s in planned["plan"]] == [
        ("legacy-b-to-r1", "legacy-b", "r1"), ("r1-to-r2", "r1", "r2")]
    assert planned["lossy"] is False
    assert planned["written"] is False
    assert all(step["rewrites"] and step["losses"] == [] for step in planned["plan"])
    real = run_cli("migrate", str(source.memory), "--to", "r2", "-o", str(out), "--json")
    done = json.loads(real.stdout)
    assert real.status == 0
    assert done["written"] is True
    assert done["plan"] == planned["plan"]
    assert done["outputs"] == [str(out)]


def test_dry_run_table_lists_steps_rewrites_and_losses(tmp_path: Path, run_cli: Run) -> None:
    path = build(tmp_path, "r1")
    result = run_cli("migrate", str(path), "--to", "legacy-b", "-o", str(tmp_path / "old"),
                     "--dry-run", "--allow-lossy")
    assert result.status == 0
    assert "r1-to-legacy-b" in result.stdout
    assert "r1 -> legacy-b" in result.stdout
    assert "config: the config section" in result.stdout
    assert "lossy: yes" in result.stdout
    assert "would succeed; nothing written" in result.stdout
    assert listing(tmp_path) == ["guest.mem", path.name]


def test_lossy_plan_exits_1_in_dry_run_and_real_run(tmp_path: Path, run_cli: Run) -> None:
    path = build(tmp_path, "r1")
    before = listing(tmp_path)
    for extra in (("--dry-run",), ()):
        result = run_cli("migrate", str(path), "--to", "legacy-b", "-o",
                         str(tmp_path / "old"), "--json", *extra)
        assert result.status == 1
        document = json.loads(result.stdout)
        assert document["lossy"] is True
        assert document["written"] is False
        assert [f["rule"] for f in document["findings"]] == ["BHS-M001"]
        assert f"error: {path}: migrating r1 -> legacy-b drops data" in result.stderr
        assert listing(tmp_path) == before


def test_refusal_message_is_one_line_naming_rule_and_file(tmp_path: Path, run_cli: Run) -> None:
    path = build(tmp_path, "r1")
    out = tmp_path / "taken"
    out.write_text("x")
    result = run_cli("migrate", str(path), "--to", "r2", "-o", str(out))
    assert result.status == 1
    first = result.stderr.splitlines()[0]
    assert first == f"error: {out}: the output already exists [BHS-M004]"
    assert "refused; nothing written" in result.stdout
    assert out.read_text() == "x"
    forced = run_cli("migrate", str(path), "--to", "r2", "-o", str(out), "--force")
    assert forced.status == 0
    assert read_image(str(out)).format == "r2"


def test_blocked_step_exits_1_with_every_reason(tmp_path: Path, run_cli: Run) -> None:
    source = build_legacy(tmp_path, "legacy-a")
    result = run_cli("migrate", str(source.memory), "--to", "legacy-b", "-o",
                     str(tmp_path / "b"), "--dry-run")
    assert result.status == 1
    assert "[BHS-M003]" in result.stderr
    assert "[BHS-M002]" in result.stderr
    assert "would be refused" in result.stdout


def test_invalid_source_exits_1_with_its_validation_finding(tmp_path: Path,
                                                            run_cli: Run) -> None:
    path = tmp_path / "junk"
    path.write_bytes(b"\x01" * 100)
    result = run_cli("migrate", str(path), "--to", "r2", "-o", str(tmp_path / "out"),
                     "--json")
    assert result.status == 1
    document = json.loads(result.stdout)
    assert document["written"] is False
    assert document["plan"] == []
    assert document["findings"][0]["rule"].startswith("BHS-S")
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path: Path, run_cli: Run) -> None:
    path = build(tmp_path, "r1")
    unknown = run_cli("migrate", str(path), "--to", "r9", "-o", str(tmp_path / "out"))
    assert unknown.status == 2
    assert "--to: 'r9' is no format" in unknown.stderr
    assert "[BHS-X003]" in unknown.stderr
    missing = run_cli("migrate", str(tmp_path / "none"), "--to", "r2", "-o",
                      str(tmp_path / "out"))
    assert missing.status == 2
    assert "[BHS-X002]" in missing.stderr
    no_dir = run_cli("migrate", str(path), "--to", "r2", "-o", str(tmp_path / "d" / "out"))
    assert no_dir.status == 2
    assert "[BHS-X001]" in no_dir.stderr
    no_to = run_cli("migrate", str(path), "-o", str(tmp_path / "out"))
    assert no_to.status == 2
    assert "--to" in no_to.stderr


def test_config_and_verify_options(tmp_path: Path, run_cli: Run) -> None:
    source = build_legacy(tmp_path, "legacy-b", memsize=1 << 20)
    config = tmp_path / "vm.conf"
    config.write_text("pci.0.3.0.path=/vm/disk.img\n")
    out = tmp_path / "vm.r1"
    result = run_cli("migrate", str(source.memory), "--to", "r1", "-o", str(out),
                     "--config", str(config), "--verify")
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    assert "pci.0.3.0.path=/vm/disk.img" in (read_image(str(out)).config_text or "")


def test_help_explains_options_with_examples(run_cli: Run) -> None:
    result = run_cli("migrate", "--help")
    assert result.status == 0
    for text in ("--allow-lossy", "--dry-run", "--force", "--verify", "--config",
                 "examples:", "exit status:", "bhyvesnap migrate vm.ckp --to r2"):
        assert text in result.stdout
