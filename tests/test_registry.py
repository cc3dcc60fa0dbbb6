"""The format graph: planner paths, lint on the real and on broken registries, running plans,
and the model-level round trip legacy-b -> r1 -> r2 -> r1 -> legacy-b."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import CliResult
from legacy_factory import build_legacy
from registry_images import (
    LEGACY,
    TEST_IMAGES,
    USER_CONFIG_TEXT,
    blob,
    legacy_a_image,
    legacy_b_image,
)

from migrate.config import BhyveConfig, parse_config
from migrate.findings import Finding, UsageError, warning
from migrate.formats.legacy import read_legacy
from migrate.formats.single import read_single, write_single
from migrate.image import FORMATS, FileRange, Image, PageMerge
from migrate.registry import (
    REGISTRY,
    Direction,
    Loss,
    Registry,
    Step,
    StepBlocked,
    StepContext,
    build_registry,
    run_steps,
)
from migrate.steps.base import current_generation
from migrate.transforms import TransformRegistry, structure_key

EXPECTED_PATHS: dict[tuple[str, str], list[str]] = {
    ("legacy-a", "legacy-b"): ["legacy-a-to-legacy-b"],
    ("legacy-a", "r1"): ["legacy-a-to-legacy-b", "legacy-b-to-r1"],
    ("legacy-a", "r2"): ["legacy-a-to-legacy-b", "legacy-b-to-r1", "r1-to-r2"],
    ("legacy-b", "r1"): ["legacy-b-to-r1"],
    ("legacy-b", "r2"): ["legacy-b-to-r1", "r1-to-r2"],
    ("r1", "legacy-b"): ["r1-to-legacy-b"],
    ("r1", "r2"): ["r1-to-r2"],
    ("r2", "r1"): ["r2-to-r1"],
    ("r2", "legacy-b"): ["r2-to-r1", "r1-to-legacy-b"],
}
LOSSY = {("r1", "legacy-b"), ("r2", "legacy-b")}


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("destination", FORMATS)
def test_plan_for_every_pair_of_formats(source: str, destination: str) -> None:
    if source == destination:
        plan = REGISTRY.plan(source, destination)
        assert plan.steps == ()
        assert plan.to_json() == {"plan": [], "lossy": False}
    elif destination == "legacy-a":
        assert REGISTRY.path(source, destination) is None
        with pytest.raises(UsageError) as caught:
            REGISTRY.plan(source, destination, file="vm.ckp")
        assert caught.value.finding.rule == "BHS-M007"
        assert caught.value.finding.file == "vm.ckp"
    else:
        plan = REGISTRY.plan(source, destination)
        assert [step.name for step in plan.steps] == EXPECTED_PATHS[(source, destination)]
        assert plan.lossy() == ((source, destination) in LOSSY)
        hops = [(step.source, step.destination) for step in plan.steps]
        assert hops[0][0] == source
        assert hops[-1][1] == destination
        assert all(a[1] == b[0] for a, b in itertools.pairwise(hops))


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as caught:
        REGISTRY.plan("r1", "r9")
    assert caught.value.finding.rule == "BHS-X001"
    assert "r9" in caught.value.finding.message


def test_plan_json_has_the_cli_shape_and_informational_losses_do_not_count() -> None:
    down = REGISTRY.plan("r2", "r1").to_json()
    assert down["lossy"] is False
    (entry,) = down["plan"]
    assert set(entry) == {"step", "from", "to", "rewrites", "losses"}
    assert (entry["step"], entry["from"], entry["to"]) == ("r2-to-r1", "r2", "r1")
    assert {loss["what"] for loss in entry["losses"]} == {"producer", "checksums"}
    assert all(loss["informational"] for loss in entry["losses"])
    lossy = REGISTRY.plan("r2", "legacy-b").to_json()
    assert lossy["lossy"] is True
    assert "config" in [loss["what"] for loss in lossy["plan"][1]["losses"]]
    up = REGISTRY.plan("legacy-b", "r2").to_json()
    assert up["lossy"] is False
    assert any("sha256" in line for line in up["plan"][1]["rewrites"])
    json.dumps(up)  # serialisable as it stands


def test_real_registry_is_lint_clean_and_discovered_from_the_package() -> None:
    assert REGISTRY.lint(test_images=TEST_IMAGES) == []
    assert sorted(step.name for step in build_registry().steps) == sorted(
        step.name for step in REGISTRY.steps)
    assert {(s.source, s.destination) for s in REGISTRY.steps} == {
        ("legacy-a", "legacy-b"), ("legacy-b", "r1"), ("r1", "r2"), ("r2", "r1"),
        ("r1", "legacy-b"), ("r2", "r2")}  # r2 -> r2 is flatten (FORMAT.md section 6's table)


@pytest.mark.parametrize("step", REGISTRY.steps, ids=lambda step: step.name)
def test_every_step_runs_on_its_test_image(step: Step, tmp_path: Path) -> None:
    image = TEST_IMAGES[step.test_image](tmp_path)
    transforms = _all_transforms(image)
    context = StepContext(user_config=_user_config(), user_config_file="vm.conf",
                          transforms=transforms)
    assert image.format == step.source
    assert step.blockers(image, context) == []
    result = step.apply(image, context)
    assert result.format == step.destination
    if isinstance(result.memory, PageMerge):  # flatten: the diff's own pages over its base
        assert isinstance(image.memory, FileRange)
        assert result.memory.pages.path == image.memory.path
        assert result.memory.size == result.memory.base.size
    else:
        assert result.memory is image.memory
    assert result.generations == {current_generation()}


# --------------------------------------------------------------------------- lint


class _Fake(Step):
    """A configurable step for building broken registries."""

    name: ClassVar[str] = "fake"
    source: ClassVar[str] = "r1"
    destination: ClassVar[str] = "r2"
    direction: ClassVar[Direction] = "up"
    rewrites: ClassVar[tuple[str, ...]] = ("everything",)
    losses: ClassVar[tuple[Loss, ...]] = ()
    test_image: ClassVar[str] = "r1"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        return []

    def apply(self, image: Image, context: StepContext) -> Image:
        return image.evolve(format=self.destination)


def _fake(name: str, source: str, destination: str, **attributes: object) -> Step:
    order = {name: rank for rank, name in enumerate(FORMATS)}
    direction = "up" if order.get(destination, 9) > order.get(source, 9) else "down"
    cls = type(f"Fake_{name}", (_Fake,), {"name": name, "source": source,
                                          "destination": destination,
                                          "direction": direction, **attributes})
    step: Step = cls()
    return step


def _chain(*extra: Step, drop: str | None = None) -> Registry:
    registry = Registry()
    for step in (_fake("a-b", "legacy-a", "legacy-b"), _fake("b-1", "legacy-b", "r1"),
                 _fake("1-2", "r1", "r2"), _fake("2-1", "r2", "r1"),
                 _fake("1-b", "r1", "legacy-b"), *extra):
        if step.name != drop:
            registry.register(step)
    return registry


def _lint_messages(registry: Registry, images: tuple[str, ...] = ("r1",)) -> list[str]:
    found = registry.lint(test_images=images)
    assert all(f.rule == "BHS-M008" and f.is_error for f in found)
    return [f.message for f in found]


def test_the_fake_chain_itself_is_clean() -> None:
    assert _lint_messages(_chain()) == []


@pytest.mark.parametrize(("registry", "expected"), [
    (_chain(drop="b-1"), "format r1 is not reachable from legacy-a"),
    (_chain(drop="1-b"), "no path from r1 to legacy-b"),
    (_chain(_fake("2-a", "r2", "legacy-a")), "migrates into legacy-a, which is a source only"),
    (_chain(_fake("again", "r1", "r2")), "duplicates the edge r1 -> r2 of step '1-2'"),
    (_chain(_fake("1-2", "r2", "legacy-b")), "step '1-2' is declared twice"),
    (_chain(_fake("to-r3", "r2", "r3")), "names unknown format 'r3'"),
    (_chain(_fake("odd", "r2", "legacy-b", direction="up")), "says direction 'up'"),
    (_chain(_fake("mute", "r2", "legacy-b", rewrites=())), "does not say what it rewrites"),
    (_chain(_fake("vague", "r2", "legacy-b", losses=(Loss("config", " "),))),
     "declares a loss 'config' without a message"),
    (_chain(_fake("untested", "r2", "legacy-b", test_image="r7")),
     "names test image 'r7', which does not exist"),
    (_chain(_fake("nameless", "r2", "legacy-b", test_image="")), "names no test image"),
], ids=["unreachable", "no-downgrade", "into-source", "duplicate-edge", "duplicate-name",
        "unknown-format", "direction", "no-rewrites", "loss-message", "test-image-missing",
        "no-test-image"])
def test_each_lint_rule_fires_on_a_broken_registry(registry: Registry, expected: str) -> None:
    messages = _lint_messages(registry)
    assert any(expected in message for message in messages), messages


def test_lint_without_a_test_image_table_only_requires_a_name() -> None:
    assert _chain(_fake("untested", "r2", "legacy-b", test_image="r7")).lint() == []


def test_planner_ties_break_by_chain_order_then_name() -> None:
    registry = _chain(_fake("b-2-direct", "legacy-b", "r2"), _fake("b-2-alt", "legacy-b", "r2"))
    plan = registry.plan("legacy-b", "r2")
    assert [step.name for step in plan.steps] == ["b-2-alt"]
    assert [s.name for s in registry.plan("legacy-a", "r2").steps] == ["a-b", "b-2-alt"]


def test_same_format_steps_are_declared_but_never_planned() -> None:
    registry = _chain(_fake("flatten", "r2", "r2", direction="down"))
    assert _lint_messages(registry) == []
    assert registry.plan("r2", "r2").steps == ()
    assert [s.name for s in registry.steps if s.source == s.destination] == ["flatten"]


def test_feature_removal_steps_are_found_by_the_feature() -> None:
    step = REGISTRY.removal_step("diff-pages")
    assert step is not None
    assert (step.name, step.source, step.destination) == ("flatten", "r2", "r2")
    assert REGISTRY.removal_step("no-such-feature") is None


# --------------------------------------------------------------------------- running plans


def _user_config() -> BhyveConfig:
    return parse_config(USER_CONFIG_TEXT, "vm.conf")


def _all_transforms(image: Image) -> TransformRegistry:
    """A fresh transform registry with a visible transform for every structure of ``image``."""
    transforms = TransformRegistry()
    for entry in (*image.kernel, *image.devices):
        key = structure_key(entry.name)
        if entry.generation != current_generation() and transforms.chain(
                key, entry.generation, current_generation()) is None:
            transforms.register(key, entry.generation, current_generation(),
                                lambda blob: blob + b"!")
    return transforms


def test_run_steps_carries_a_legacy_b_image_to_r2(tmp_path: Path) -> None:
    image = legacy_b_image(tmp_path)
    image = image.evolve(findings=(warning("BHS-L009", image.path, 3, "a reader warning"),))
    result = run_steps(image, REGISTRY.plan("legacy-b", "r2"), StepContext())
    assert result.format == "r2"
    assert result.ident == "BHYVE CHECKPOINT IMAGE 2.0"
    assert result.memory is image.memory
    # The reader's findings describe the input; only the steps' own findings remain.
    assert [f.rule for f in result.findings] == ["BHS-C005"]


def test_run_steps_refuses_a_blocked_step_with_every_reason(tmp_path: Path) -> None:
    image = legacy_a_image(tmp_path)
    plan = REGISTRY.plan("legacy-a", "r2")
    with pytest.raises(StepBlocked) as caught:
        run_steps(image, plan, StepContext())
    rules = [f.rule for f in caught.value.findings]
    assert rules.count("BHS-M003") == 1
    blocked = {f.message.split("`")[1] for f in caught.value.findings if f.rule == "BHS-M002"}
    assert blocked == {"vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic",
                       "vpmtmr", "vrtc", "atkbdc", "virtio-net", "virtio-blk", "lpc"}


def test_registered_transforms_unblock_legacy_a_all_the_way_to_r2(tmp_path: Path) -> None:
    image = legacy_a_image(tmp_path)
    context = StepContext(user_config=_user_config(), user_config_file="vm.conf",
                          transforms=_all_transforms(image))
    plan = REGISTRY.plan("legacy-a", "r2")
    result = run_steps(image, plan, context)
    assert result.format == "r2"
    assert result.memory is image.memory
    vm = next(entry for entry in result.kernel if entry.name == "vm")
    assert vm.blob == blob("vm") + b"!"
    assert [entry.name for entry in result.devices] == [
        "virtio-net@pci.0.2.0", "virtio-blk@pci.0.3.0", "lpc@pci.0.31.0", "atkbdc"]
    config = parse_config(result.config_text or "", "out")
    assert config.values["pci.0.3.0.path"] == "/vm/disk.img"
    assert "snapshot.config_incomplete" not in config.values


def test_run_steps_rejects_an_image_of_another_format(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_steps(legacy_b_image(tmp_path), REGISTRY.plan("r1", "r2"), StepContext())
    assert caught.value.finding.rule == "BHS-X001"


def test_round_trip_legacy_b_r1_r2_r1_legacy_b_keeps_blobs_memory_and_metadata(
        tmp_path: Path) -> None:
    start = legacy_b_image(tmp_path)
    context = StepContext()
    image = start
    formats = []
    for destination in ("r1", "r2", "r1", "legacy-b"):
        image = run_steps(image, REGISTRY.plan(image.format, destination), context)
        formats.append(image.format)
        assert image.memory is start.memory
    assert formats == ["r1", "r2", "r1", "legacy-b"]
    assert [(e.name, e.generation, e.read()) for e in image.kernel] == [
        (e.name, e.generation, e.read()) for e in start.kernel]
    assert [(e.name, e.generation, e.read()) for e in image.devices] == [
        (e.name, e.generation, e.read()) for e in start.devices]
    # The declared config loss: what is left of the config is exactly the basic metadata.
    assert image.legacy == LEGACY
    assert image.config_text is None
    assert replace(image, kernel=start.kernel, devices=start.devices,
                   findings=()) == start.evolve(findings=())


# --------------------------------------------------------------------------- command line


def test_cli_show_json_lists_formats_steps_and_losses(
        run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("registry", "show", "--json")
    assert result.status == 0
    document = json.loads(result.stdout)
    assert document["formats"] == list(FORMATS)
    steps = {step["step"]: step for step in document["steps"]}
    assert set(steps) == {step.name for step in REGISTRY.steps}
    assert steps["r1-to-legacy-b"]["lossy"] is True
    assert steps["r2-to-r1"]["lossy"] is False
    assert steps["r2-to-r1"]["direction"] == "down"
    assert steps["legacy-b-to-r1"]["test_image"] == "legacy-b"


def test_cli_show_table(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("registry", "show")
    assert result.status == 0
    assert "legacy-a -> legacy-b -> r1 -> r2" in result.stdout
    assert "config; unknown sections" in result.stdout
    assert "producer (informational)" in result.stdout


def test_cli_lint_clean(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("registry", "lint", "--json")
    assert (result.status, json.loads(result.stdout)) == (0, {"ok": True, "findings": []})
    human = run_cli("registry", "lint")
    assert human.status == 0
    assert f"{len(REGISTRY.steps)} steps, clean" in human.stdout


def test_cli_lint_reports_a_broken_registry(run_cli: Callable[..., CliResult],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("migrate.commands.registry.REGISTRY", _chain(drop="1-b"))
    result = run_cli("registry", "lint", "--json")
    assert result.status == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(f["rule"], f["message"]) for f in document["findings"]] == [
        ("BHS-M008", "no path from r1 to legacy-b"), ("BHS-M008", "no path from r2 to legacy-b")]
    human = run_cli("registry", "lint")
    assert human.status == 1
    assert "no path from r1 to legacy-b [BHS-M008]" in human.stderr


def test_steps_with_the_real_reader_and_writer_agree_byte_for_byte(tmp_path: Path) -> None:
    """legacy-b -> r1 written directly equals legacy-b -> r1 -> r2 -> r1 written."""
    source = read_legacy(str(build_legacy(tmp_path, "legacy-b", memsize=1 << 20).memory))
    direct = run_steps(source, REGISTRY.plan("legacy-b", "r1"), StepContext())
    write_single(direct, str(tmp_path / "direct.r1"))
    r2 = run_steps(source, REGISTRY.plan("legacy-b", "r2"), StepContext())
    write_single(r2, str(tmp_path / "via.r2"))
    back = run_steps(read_single(str(tmp_path / "via.r2")), REGISTRY.plan("r2", "r1"),
                     StepContext())
    write_single(back, str(tmp_path / "back.r1"))
    assert (tmp_path / "back.r1").read_bytes() == (tmp_path / "direct.r1").read_bytes()
    legacy = run_steps(read_single(str(tmp_path / "back.r1")), REGISTRY.plan("r1", "legacy-b"),
                       StepContext())
    assert legacy.legacy == source.legacy
    assert [(e.name, e.read()) for e in (*legacy.kernel, *legacy.devices)] == [
        (e.name, e.read()) for e in (*source.kernel, *source.devices)]
