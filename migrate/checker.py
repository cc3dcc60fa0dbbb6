"""The checker: can this bhyve build restore this image, and if not, why and what to do?

FORMAT.md sections 5 and 6, decided over an image that has already been read and validated
(``validate`` reads the header and the small sections only), so the gate can read each image
once and check it against every target. Nothing here knows a release by name: what a build
restores is its target profile (:mod:`migrate.targets`), which migrations exist is the
registry (:mod:`migrate.registry`), which blob layouts convert is :mod:`migrate.transforms`.

The decision, in the order of FORMAT.md 6:

1. producer: an image that was not interpreted (foreign producer, unknown version) is
   ``incompatible``; a malformed prefix is a validation error, hence ``invalid``;
2. validation: any validation error is ``invalid`` (the reader located the first one);
3. content: generations, kernel structures, device emulations and entries, blob sizes, r2
   features and the diff-pages base, and the ``--config`` drift; every error is a target
   rule and makes the verdict ``incompatible``;
4. container: the same format is ``native``; otherwise the shortest plan, simulated with the
   same steps a migration runs (so ``check`` refuses for the same reasons as ``migrate``),
   is ``upgrade``/``downgrade`` when lossless and ``lossy`` when a step drops data;
5. precedence: the worst verdict wins.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from migrate.config import BhyveConfig, load_config_file, parse_config
from migrate.data import json_pointer
from migrate.devices import parse_device_name
from migrate.findings import (
    BhyvesnapError,
    Finding,
    Severity,
    error,
    info,
    warning,
)
from migrate.formats import LEGACY_FORMATS
from migrate.ident import parse_ident
from migrate.image import Image, StateEntry
from migrate.registry import REGISTRY, Plan, Registry, Step, StepBlocked, StepContext, run_steps
from migrate.steps.base import entry_location
from migrate.steps.flatten import base_image
from migrate.steps.legacy_a_to_legacy_b import UNADDRESSED
from migrate.targets import Target, user_targets_dir
from migrate.transforms import TRANSFORMS, TransformRegistry, structure_key
from migrate.validation import ValidationReport, validate
from migrate.verdicts import Verdict

INVALID_REMEDY = ("the image is damaged or malformed: restore it from a backup copy, or take "
                  "the snapshot again")

Address = tuple[int, int, int]


@dataclass(frozen=True)
class CheckResult:
    """The verdict for one (image, target) pair; ``to_json`` is the ``check --json`` object.

    ``target`` is the resolved profile name (``--target 14.1-RELEASE`` gives ``freebsd-14``);
    ``plan`` is the migration the verdict relies on (empty for ``native``), or ``None`` when
    no plan was found or the image could not be interpreted.
    """

    image: str
    target: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    plan: Plan | None

    def to_json(self) -> dict[str, Any]:
        steps = () if self.plan is None else self.plan.steps
        return {
            "image": self.image,
            "target": self.target,
            "verdict": self.verdict.value,
            "findings": [finding.to_json() for finding in self.findings],
            "plan": [step.to_json() for step in steps],
        }


def check(report: ValidationReport, target: Target, *, user_config: BhyveConfig | None = None,
          user_config_file: str | None = None, registry: Registry = REGISTRY,
          transforms: TransformRegistry = TRANSFORMS) -> CheckResult:
    """The verdict of FORMAT.md 6 for the image of ``report`` on ``target``.

    Pure over the already-read image: guest memory is never read, only the header of a
    diff-pages image's base and, when a plan is simulated, what its steps read (a bitmap).
    ``user_config`` is the configuration the user will restore with (``--config``,
    ``user_config_file`` its path as given): its devices are compared with the image's, and
    the simulated migration merges it as ``migrate --config`` would. ``registry`` and
    ``transforms`` are the tool's own unless a test passes others.
    """
    if not report.interpreted:
        return CheckResult(report.path, target.name, Verdict.INCOMPATIBLE,
                           _with_remedies(report.findings, None), None)
    if not report.valid or report.image is None:
        return CheckResult(report.path, target.name, Verdict.INVALID,
                           _with_remedies(report.findings, INVALID_REMEDY), None)
    judge = _Judge(report.path, report.image, target, user_config=user_config,
                   user_config_file=user_config_file, registry=registry, transforms=transforms)
    verdict, plan = judge.decide()
    found = [*judge.findings, *report.image.findings]
    found += [info("BHS-T011", target.source, "/known_defects", f"{target.name}: {defect}")
              for defect in target.known_defects]
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    found.sort(key=lambda finding: order[finding.severity])
    return CheckResult(report.path, target.name, verdict, tuple(found), plan)


def check_path(path: str, targets: Sequence[Target], *, verify: bool = False,
               config_file: str | None = None) -> list[CheckResult]:
    """Read and validate the image at ``path`` once, then check it against every target.

    ``verify`` also hashes every checksummed section (``--verify``); ``config_file`` is a
    ``bhyve -k`` file or ``bhyve -o config.dump=1`` output to check for drift. An unreadable
    path or config file is a :class:`UsageError` (BHS-X002), and so is a config file that
    does not parse (its BHS-C00x finding, located in that file).
    """
    user_config = None if config_file is None else load_config_file(config_file)
    report = validate(path, verify=verify)
    return [check(report, target, user_config=user_config, user_config_file=config_file)
            for target in targets]


def migrate_command(image_path: str, output_base: str, target: Target, *, lossy: bool,
                    config_file: str | None) -> str:
    """The exact ``bhyvesnap migrate`` command line that makes the image restorable."""
    words = ["bhyvesnap", "migrate", image_path, "--to", target.name,
             "-o", f"{output_base}.{target.format}"]
    targets_dir = user_targets_dir(target)
    if targets_dir is not None:
        words += ["--targets-dir", targets_dir]
    if config_file is not None:
        words += ["--config", config_file]
    if lossy:
        words.append("--allow-lossy")
    return shlex.join(words)


def _with_remedies(findings: Sequence[Finding], remedy: str | None) -> tuple[Finding, ...]:
    """The findings, every error without a remedy given ``remedy``."""
    if remedy is None:
        return tuple(findings)
    return tuple(replace(f, remedy=remedy) if f.is_error and f.remedy is None else f
                 for f in findings)


class _Judge:
    """One decision: collects findings while walking steps 3 and 4 of FORMAT.md 6."""

    def __init__(self, path: str, image: Image, target: Target, *,
                 user_config: BhyveConfig | None, user_config_file: str | None,
                 registry: Registry, transforms: TransformRegistry) -> None:
        self.path = path
        self.image = image
        self.target = target
        self.user_config = user_config
        self.user_config_file = user_config_file
        self.registry = registry
        self.transforms = transforms
        self.findings: list[Finding] = []

    # -- helpers

    def fail(self, rule: str, location: tuple[str, int | str | None], message: str,
             remedy: str | None) -> None:
        self.findings.append(error(rule, location[0], location[1], message, remedy))

    def where(self, kind: str, index: int) -> tuple[str, int | str | None]:
        """The file and location of the ``index``-th kernel structure or device."""
        if self.image.format in LEGACY_FORMATS:
            return entry_location(self.image, kind, index)
        section = "kernel" if kind == "kernel structure" else "devices"
        entries = self.image.kernel if section == "kernel" else self.image.devices
        return self.image.path, json_pointer([section, entries[index].name])

    def kept_kernel(self) -> list[tuple[int, StateEntry]]:
        """Kernel structures the target has (others, such as ``vmx``, are dropped on the
        way to it), with their index in the image."""
        return [(i, e) for i, e in enumerate(self.image.kernel)
                if e.name in self.target.kernel_structures]

    def present_devices(self) -> list[tuple[int, StateEntry]]:
        """Device entries with state (a size-0 layout-A entry is a device the VM lacked)."""
        return [(i, e) for i, e in enumerate(self.image.devices) if e.size > 0]

    # -- the decision

    def decide(self) -> tuple[Verdict, Plan | None]:
        transformed = self.generations()
        self.kernel_structures()
        self.devices()
        self.device_entries()
        if self.user_config is not None:
            self.drift(self.user_config)
        removal = self.features()
        plan = self.container(removal)
        if any(f.is_error for f in self.findings) or plan is None:
            return Verdict.INCOMPATIBLE, plan
        if not plan.steps:
            if not transformed:
                return Verdict.NATIVE, plan
            # Steps carry blobs to the generation of their destination format; within one
            # format no step runs, so a registered transform would never be applied.
            self.fail("BHS-T010", (self.path, None),
                      f"registered blob transforms lead to generation {self.target.generation},"
                      f" but no migration step applies them within format {self.image.format}",
                      "restore with a build of the image's own generation")
            return Verdict.INCOMPATIBLE, plan
        return self.simulate(plan)

    def generations(self) -> bool:
        """T001 per structure whose blob cannot reach the target's generation; whether any
        blob needs a (registered) transform."""
        wanted = self.target.generation
        needed = False
        named: set[str] = set()
        for kind, entries in (("kernel structure", self.kept_kernel()),
                              ("device", self.present_devices())):
            for index, entry in entries:
                key = structure_key(entry.name)
                chain = self.transforms.chain(key, entry.generation, wanted)
                needed = needed or bool(chain)
                if chain is not None or key in named:
                    continue
                named.add(key)
                self.fail("BHS-T001", self.where(kind, index),
                          f"{kind} `{key}`: generation {entry.generation} → {wanted} has no "
                          "registered upgrade",
                          f"restore it with a bhyve build of generation {entry.generation} "
                          "('bhyvesnap targets' lists them); no blob transform between these "
                          "generations is known")
        return needed

    def kernel_structures(self) -> None:
        """T003 for a structure the target requires and the image lacks; T004 for an empty
        one where the target rejects those (13.x, FORMAT.md 2.4)."""
        present = {entry.name for entry in self.image.kernel}
        table = "/kernel" if self.image.format not in LEGACY_FORMATS else (
            "/structs" if self.image.format == "legacy-a" else "/kern_structs")
        file = self.image.files[-1] if self.image.format in LEGACY_FORMATS else self.path
        for name in self.target.kernel_structures:
            if name not in present:
                self.fail("BHS-T003", (file, table),
                          f"kernel structure `{name}`, which {self.target.name} requires, is "
                          "absent", "restore the image with the bhyve build that wrote it")
        if not self.target.rejects_zero_size:
            return
        for index, entry in self.kept_kernel():
            if entry.size == 0:
                self.fail("BHS-T004", self.where("kernel structure", index),
                          f"kernel structure `{entry.name}` has size 0, which "
                          f"{self.target.name} rejects on restore",
                          "no migration can supply the missing state; the snapshot cannot be "
                          "restored by this build")

    def devices(self) -> None:
        """T002 for a device emulation the target cannot restore; T005 for a blob larger
        than its save buffer."""
        limit = self.target.blob_limit
        for index, entry in self.present_devices():
            emulation = parse_device_name(entry.name).emulation
            if emulation not in self.target.devices:
                self.fail("BHS-T002", self.where("device", index),
                          f"device `{entry.name}`: {self.target.name} cannot restore the "
                          f"{emulation} emulation",
                          "restore with a build that supports it; a VM with this device "
                          "cannot be restored by this build")
        for kind, entries in (("kernel structure", self.kept_kernel()),
                              ("device", self.present_devices())):
            for index, entry in entries:
                if entry.size > limit:
                    self.fail("BHS-T005", self.where(kind, index),
                              f"{kind} `{entry.name}` is {entry.size} bytes, more than the "
                              f"{limit}-byte save buffer of {self.target.name}",
                              "restore with a build whose save buffer holds it")

    def device_entries(self) -> None:
        """T013 for a PCI device of the image's own config (r1, r2) without a state entry:
        fatal where the target requires an entry for every configured device (14.0+),
        a warning elsewhere (13.x). Devices the target cannot snapshot have no state."""
        if self.image.config_text is None:
            return
        section = self.image.section("config")
        config = parse_config(self.image.config_text, self.path,
                              0 if section is None else section.offset)
        saved = {parse_device_name(entry.name).address: parse_device_name(entry.name).emulation
                 for _, entry in self.present_devices()}
        make = error if self.target.device_entries_required else warning
        for bus, slot, function, emulation in config.pci_devices():
            if emulation not in self.target.devices or saved.get((bus, slot, function)) == \
                    emulation:
                continue
            self.findings.append(make(
                "BHS-T013", self.path, "/devices",
                f"the config has {emulation} at pci {bus}:{slot}:{function} but the image saved "
                f"no state for it; {self.target.name} "
                + ("refuses to restore it" if make is error else "restores it without that "
                   "device's state"),
                "take the snapshot again; the image does not hold that device's state"))

    def drift(self, config: BhyveConfig) -> None:
        """T009 per device added, removed or moved between the image and the ``--config``
        the user will restore with: bhyve needs the same device options, so it is an error
        for legacy targets (which restore with that config) and a warning otherwise."""
        file = self.user_config_file or "the --config file"
        configured = {(bus, slot, function): emulation
                      for bus, slot, function, emulation in config.pci_devices()
                      if emulation in self.target.devices}
        saved: dict[Address, str] = {}
        unaddressed: dict[str, int] = {}
        for index, entry in self.present_devices():
            device = parse_device_name(entry.name)
            if device.address is not None:
                saved[device.address] = device.emulation
            elif device.emulation not in UNADDRESSED:
                unaddressed.setdefault(device.emulation, index)
        problems = (_emulation_drift(unaddressed, configured) if unaddressed
                    else _address_drift(saved, configured))
        make = error if self.target.format in LEGACY_FORMATS else warning
        for message, key in problems:
            location = json_pointer(["values", key]) if key else None
            self.findings.append(make(
                "BHS-T009", file, location, f"{message} ({file} against the image)",
                "restore with the device configuration the snapshot was taken with"))

    def features(self) -> list[Step]:
        """T008 for a diff-pages image whose base is not at hand (no target restores it,
        FORMAT.md 3.5; the rule of "at hand" is the flatten step's own, :func:`base_image`);
        T006 per r2 feature the target does not know and no registered step removes; the
        removal steps of the others, to run first."""
        if self.image.memory_type == "diff-pages":
            try:
                base_image(self.image)
            except BhyvesnapError as exc:
                self.findings.append(exc.finding)
        compat = self.image.compat
        unknown = [f for f in (() if compat is None else compat.features)
                   if self.target.feature(f) is None]
        removal, unremovable = self.registry.removals(unknown)
        for feature in unremovable:
            self.fail("BHS-T006", (self.path, "/compat/features"),
                      f"the image uses the feature {feature}, which {self.target.name} "
                      "does not know and no registered migration step removes",
                      "restore with a bhyve build whose profile lists the feature")
        return list(removal)

    def container(self, removal: list[Step]) -> Plan | None:
        """The plan to the target's format (removal steps first); T007 for a same-format r2
        image whose min_reader is above the target and that nothing removable explains;
        T010 when no path exists."""
        image, target = self.image, self.target
        if image.format == target.format:
            if image.compat is not None and target.version is not None and not removal:
                parsed = parse_ident(image.compat.min_reader)
                if parsed is not None and parsed.version > target.version:
                    self.fail("BHS-T007", (self.path, "/compat/min_reader"),
                              f"the image needs reader {image.compat.min_reader}; "
                              f"{target.name} is {target.ident}",
                              f"restore with a reader of version {parsed.version} or later")
            return Plan(image.format, target.format, tuple(removal))
        path = self.registry.path(image.format, target.format)
        if path is None:
            self.fail("BHS-T010", (self.path, None),
                      f"no chain of migration steps leads from {image.format} to "
                      f"{target.format}, the format {target.name} reads",
                      "restore with a build that reads a format reachable from "
                      f"{image.format} ('bhyvesnap registry show' lists the steps)")
            return None
        return Plan(image.format, target.format, (*removal, *path.steps))

    def simulate(self, plan: Plan) -> tuple[Verdict, Plan]:
        """Run the plan's steps on the model (pure: nothing is written or hashed) so that a
        blocked step makes the verdict incompatible for the reasons ``migrate`` would give."""
        context = StepContext(self.user_config, self.user_config_file, self.transforms)
        names = " → ".join(step.name for step in plan.steps)
        try:
            migrated = run_steps(self.image, plan, context)
        except StepBlocked as blocked:
            self.fail("BHS-T010", (self.path, None),
                      f"the migration {names} to {self.target.name} cannot run on this image: "
                      f"{blocked.findings[0].message}", blocked.findings[0].remedy)
            self.findings.extend(blocked.findings)
            return Verdict.INCOMPATIBLE, plan
        notes = [f.message for f in migrated.findings if f.rule == "BHS-C005"]
        note = None if not notes or self.user_config is not None else (
            f"Pass --config FILE: without it, {notes[0]}")
        if plan.lossy():
            dropped = "; ".join(f"{loss.what} ({loss.message})" for loss in plan.losses()
                                if not loss.informational)
            self.migration_needed(Verdict.LOSSY, plan, f"the migration drops {dropped}", note)
            return Verdict.LOSSY, plan
        rank = self.registry.formats.index
        verdict = (Verdict.UPGRADE if rank(self.target.format) > rank(self.image.format)
                   else Verdict.DOWNGRADE)
        informational = [loss.what for loss in plan.losses()]
        detail = "nothing the restore needs is lost" + (
            f" (only informational data: {', '.join(informational)})" if informational else "")
        self.migration_needed(verdict, plan, detail, note)
        return verdict, plan

    def migration_needed(self, verdict: Verdict, plan: Plan, detail: str,
                         note: str | None) -> None:
        """The T012 finding whose remedy is the exact ``bhyvesnap migrate`` command."""
        steps = " → ".join(step.name for step in plan.steps) or "blob transforms"
        message = (f"{verdict.value}: {self.target.name} restores the image after the "
                   f"migration {steps}; {detail}")
        if note is not None:
            message += f". {note}"
        base = self.image.files[0] if self.image.format in LEGACY_FORMATS else self.path
        self.findings.append(info(
            "BHS-T012", self.path, None, message,
            migrate_command(self.path, base, self.target, lossy=verdict is Verdict.LOSSY,
                            config_file=self.user_config_file)))


def _address_drift(saved: Mapping[Address, str],
                   configured: Mapping[Address, str]) -> list[tuple[str, str | None]]:
    """Devices moved, removed or added between the image (by PCI address) and a config;
    each with the config key it concerns (``None`` when the config lacks the device)."""
    only_saved = {a: e for a, e in saved.items() if configured.get(a) != e}
    only_configured = {a: e for a, e in configured.items() if saved.get(a) != e}
    problems: list[tuple[str, str | None]] = []
    for address, emulation in sorted(only_saved.items()):
        moved_to = next((a for a, e in sorted(only_configured.items()) if e == emulation), None)
        if moved_to is not None:
            del only_configured[moved_to]
            problems.append((f"{emulation} moved from pci {_show(address)} to "
                             f"{_show(moved_to)}", _device_key(moved_to)))
        else:
            problems.append((f"{emulation} at pci {_show(address)} was removed from the "
                             "configuration", None))
    problems += [(f"{emulation} at pci {_show(address)} was added to the configuration",
                  _device_key(address)) for address, emulation in sorted(only_configured.items())]
    return problems


def _emulation_drift(saved: Mapping[str, int],
                     configured: Mapping[Address, str]) -> list[tuple[str, str | None]]:
    """Drift for layout-A images, whose device entries carry no PCI address: by emulation."""
    by_emulation: dict[str, Address] = {}
    for address, emulation in sorted(configured.items()):
        by_emulation.setdefault(emulation, address)
    problems: list[tuple[str, str | None]] = [
        (f"{emulation} was removed from the configuration", None)
        for emulation in saved if emulation not in by_emulation]
    problems += [(f"{emulation} at pci {_show(address)} was added to the configuration",
                  _device_key(address))
                 for emulation, address in by_emulation.items() if emulation not in saved]
    return problems


def _show(address: Address) -> str:
    return "{}:{}:{}".format(*address)


def _device_key(address: Address) -> str:
    return "pci.{}.{}.{}.device".format(*address)
