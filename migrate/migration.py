"""Run a migration: read the source, plan, apply the steps, write safely, verify, rename.

A snapshot is often the only copy of a running machine, so a migration follows the storage
rules of :mod:`migrate.storage` and adds its own:

* Everything that can refuse is decided before a byte is written, by the same code a dry run
  runs: the destination (``--to`` is a format id or a target profile), the source image (read
  and validated by its reader), the plan, each step's blockers, the plan's losses (refused
  without ``allow_lossy``) and the output paths (refused when they exist, without ``force``,
  or when they are the input itself). A dry run therefore answers exactly as the real run.
* The steps are pure model transforms; the writer writes the resulting model to hidden
  temporaries next to the outputs (:class:`~migrate.storage.AtomicOutputs`), which are
  fsynced, read back and compared with the model (header, small sections, recorded
  checksums; guest memory too with ``verify``), and only then renamed into place, the legacy
  ``F.meta`` last. Any error or SIGINT/SIGTERM/SIGHUP removes the temporaries.
* Inputs are only ever opened read-only, and guest memory is never read into Python: it is
  copied by the kernel with its holes and, when verified, hashed in bounded chunks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from migrate.config import load_config_file
from migrate.findings import (
    BhyvesnapError,
    Finding,
    ImageError,
    NotInterpretedError,
    UsageError,
    error,
)
from migrate.formats import output_paths, read_image, read_image_files, write_image
from migrate.image import FORMATS, FileRange, Image, StateEntry
from migrate.nvlist import NvPair, NvType
from migrate.registry import REGISTRY, Plan, Step, StepBlocked, StepContext, run_steps
from migrate.rules import RuleKind
from migrate.steps.flatten import base_path
from migrate.storage import AtomicOutputs, Progress, fsync_file, hash_range
from migrate.targets import Target, load_targets, resolve_target
from migrate.verdicts import Verdict

__all__ = ["MigrationError", "MigrationFailed", "MigrationRefused", "MigrationResult",
           "PlannedMigration", "plan_migration", "resolve_destination", "run_migration"]


SMALL_SECTIONS = ("config", "kernel", "devices")
"""The sections verification always compares, whatever ``verify`` says: they are small."""

_TO_OPTION = "--to"


@dataclass(frozen=True)
class MigrationResult:
    """What a migration did (or, for a dry run, would do).

    ``outputs`` are the final paths in rename order; ``findings`` the warnings the steps made
    (such as an incomplete config, BHS-C005), or the reasons of a refusal; ``written`` is
    false for a dry run and for a refusal.
    """

    source: str
    outputs: tuple[str, ...]
    plan: Plan
    findings: tuple[Finding, ...]
    written: bool

    def to_json(self) -> dict[str, Any]:
        """The ``migrate --json`` document: CLI.md's ``{"plan", "lossy"}`` and what happened."""
        document = self.plan.to_json()
        document.update({
            "source": self.source,
            "outputs": list(self.outputs),
            "written": self.written,
            "findings": [finding.to_json() for finding in self.findings],
        })
        return document


class MigrationError(BhyvesnapError):
    """A migration that did not happen; nothing is at the output paths (exit status 1).

    ``findings`` holds every reason, the first one also being :attr:`finding`; ``result`` is
    the unwritten result (with the plan) when the refusal came after planning, else ``None``.
    """

    def __init__(self, findings: Iterable[Finding], result: MigrationResult | None = None
                 ) -> None:
        self.findings = tuple(findings)
        super().__init__(self.findings[0])
        self.result = result


class MigrationRefused(MigrationError):
    """Refused before anything was written: invalid source, no path, a blocked step, a lossy
    plan without ``allow_lossy`` (BHS-M001), an existing output without ``force``
    (BHS-M004)."""


class MigrationFailed(MigrationError):
    """Writing (BHS-M006) or verifying (BHS-M005) failed; the temporaries were removed."""


# --------------------------------------------------------------------------------------------
# planning


def resolve_destination(to: str, targets_dir: str | None = None) -> tuple[str, Target | None]:
    """The format id ``--to`` means, with the target profile it names if it names one: a
    format id itself, else a profile name, IDENT or FreeBSD release as ``--target`` takes them.

    Target profiles are only loaded when ``to`` is not a format id. Anything else is a
    UsageError BHS-X003 listing the formats and, from the target resolver, the profiles.
    """
    if to in FORMATS:
        return to, None
    try:
        target = resolve_target(to, load_targets(targets_dir))
    except UsageError as exc:
        if exc.finding.rule != "BHS-X003":
            raise
        raise UsageError(error(
            "BHS-X003", _TO_OPTION, None,
            f"{to!r} is no format ({', '.join(FORMATS)}) and names no single target: "
            f"{exc.finding.message}", exc.finding.remedy)) from None
    return target.format, target


def removal_steps(image: Image, destination: str, target: Target | None) -> tuple[Step, ...]:
    """The feature-removing steps (``flatten``) to run before the path, as the checker plans
    them: for a target, every compat feature it does not know; for a bare format id, every
    feature when the image leaves ``r2`` (no other format can hold one), none when it stays.
    A feature no step removes is left for the path's own blockers to refuse."""
    features = () if image.compat is None else image.compat.features
    if target is not None:
        features = tuple(f for f in features if target.feature(f) is None)
    elif destination == image.format:
        features = ()
    return REGISTRY.removals(features)[0]


def _context(config_file: str | None) -> StepContext:
    """The steps' context with the parsed ``--config`` file (a UsageError if it is unusable)."""
    if config_file is None:
        return StepContext()
    return StepContext(user_config=load_config_file(config_file), user_config_file=config_file)


def _read_source(path: str) -> Image:
    """The source image; an image its reader refuses is a refused migration, an unreadable
    path a UsageError."""
    try:
        return read_image(path)
    except NotInterpretedError as exc:
        raise MigrationRefused([exc.finding]) from None
    except ImageError as exc:
        if exc.finding.kind is RuleKind.USAGE:
            raise UsageError(exc.finding) from None
        raise MigrationRefused([exc.finding]) from None


@dataclass(frozen=True)
class PlannedMigration:
    """A read source image, its plan, the steps' context, and the target ``--to`` named
    (``None`` for a bare format id)."""

    image: Image
    plan: Plan
    context: StepContext
    target: Target | None


def plan_migration(path: str, to: str, *, config_file: str | None = None,
                   targets_dir: str | None = None) -> PlannedMigration:
    """Read the image at ``path`` and plan its migration to ``to`` (a format id or target).

    Raises UsageError for an unknown ``--to``, an unreadable input or ``--config`` file;
    MigrationRefused for an image its reader refuses (the reader's finding) and when no
    chain of steps leads to the destination (BHS-M007).
    """
    destination, target = resolve_destination(to, targets_dir)
    context = _context(config_file)
    image = _read_source(path)
    try:
        path_plan = REGISTRY.plan(image.format, destination, file=path)
    except UsageError as exc:
        if exc.finding.kind is RuleKind.USAGE:
            raise
        raise MigrationRefused([exc.finding]) from None
    removal = removal_steps(image, destination, target)
    plan = Plan(image.format, destination, (*removal, *path_plan.steps))
    return PlannedMigration(image, plan, context, target)


def _target_refusals(planned: PlannedMigration) -> list[Finding]:
    """Why the target ``--to`` named could not restore the result, as ``check`` says it (a
    migration that would exit 0 with an output its target refuses helps nobody): the error
    findings of an ``incompatible`` verdict, else nothing. Steps' own blockers and losses
    are the runner's to report, so only target rules count here."""
    if planned.target is None:
        return []
    from migrate.checker import check
    from migrate.validation import ValidationReport

    image = planned.image
    report = ValidationReport(image.path, True, True, image.findings, image)
    result = check(report, planned.target, user_config=planned.context.user_config,
                   user_config_file=planned.context.user_config_file)
    if result.verdict is not Verdict.INCOMPATIBLE:
        return []
    return [f for f in result.findings if f.is_error and f.kind is RuleKind.TARGET
            and f.rule != "BHS-T010"]


def _damaged_source(image: Image, *, progress: bool) -> list[Finding]:
    """The source's recorded checksums, verified before a plan that drops or recomputes them
    (r2 -> r1, flatten): otherwise damage the checksums would have caught is carried into an
    output that no longer records them, and it would then read as sound."""
    from migrate.validation import verify_checksums

    factory = Progress if progress else None
    return [f for f in verify_checksums(image, factory) if f.is_error]


def _lossy_finding(path: str, plan: Plan) -> Finding:
    losses = [loss for step in plan.steps for loss in step.losses if not loss.informational]
    return error(
        "BHS-M001", path, None,
        f"migrating {plan.source} -> {plan.destination} drops data: "
        + "; ".join(f"{loss.what}: {loss.message}" for loss in losses),
        "pass --allow-lossy to accept the loss, or migrate to a format that keeps the data")


def _check_outputs(image: Image, outputs: Sequence[str], force: bool,
                   unwritten: MigrationResult) -> None:
    """Refuse outputs that exist (without ``force``) or that are one of the input's files.

    The existence rules are :class:`AtomicOutputs`'s own (constructing one creates nothing),
    so a dry run refuses exactly what the real run would.
    """
    inputs = list(image.files)
    base = base_path(image) if image.memory_type == "diff-pages" else None
    if base is not None:  # flattening reads the base: it is an input too
        inputs.append(base)
    for output in outputs:
        for source in inputs:
            if os.path.lexists(output) and os.path.exists(source) and _same_file(output,
                                                                                   source):
                raise MigrationRefused([error(
                    "BHS-M004", output, None,
                    f"the output is the input file {source}: refusing to replace it, "
                    "even with --force", "write to a new path, check it, then rename it "
                    "yourself")], unwritten)
    try:
        AtomicOutputs(outputs, force=force)
    except UsageError as exc:
        if exc.finding.rule != "BHS-M004":
            raise
        raise MigrationRefused([exc.finding], unwritten) from None


def _same_file(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # a dangling symlink is not the input (AtomicOutputs refuses it anyway)
        return False


# --------------------------------------------------------------------------------------------
# running


def _rebased(model: Image, out: str) -> Image:
    """A diff-pages image names its base relative to its own directory (FORMAT.md 3.5); one
    written elsewhere must still find the same base, so the name is made relative to the
    output's directory. Nothing else changes: ``base_checksum`` still identifies the base."""
    section = model.section("memory")
    base = base_path(model) if model.memory_type == "diff-pages" else None
    if section is None or base is None:
        return model
    relative = os.path.relpath(base, os.path.dirname(os.path.abspath(out)))
    attributes = {**section.attributes, "base": NvPair("base", NvType.STRING, relative)}
    sections = tuple(replace(s, attributes=attributes) if s is section else s
                     for s in model.sections)
    return model.evolve(sections=sections)



def run_migration(path: str, to: str, out: str, *, config_file: str | None = None,
                  allow_lossy: bool = False, dry_run: bool = False, force: bool = False,
                  verify: bool = False, targets_dir: str | None = None,
                  progress: bool = True) -> MigrationResult:
    """Migrate the image at ``path`` to ``to`` (a format id or target), writing ``out``.

    Legacy destinations write ``out``, ``out.kern`` and ``out.meta``. With ``dry_run``
    everything is decided and nothing is written. ``verify`` also compares guest memory and
    unknown sections after writing (hashing the output, and the source unless the written
    image records a checksum of it). ``progress`` allows a progress bar on a terminal's
    stderr for verification hashes above 256 MiB.

    Raises MigrationRefused (nothing written) for an invalid source, no path, a blocked step
    (the step's findings), a lossy plan without ``allow_lossy`` (BHS-M001) or an output that
    exists without ``force`` or is the input (BHS-M004); MigrationFailed when writing
    (BHS-M006) or verification (BHS-M005) fails, after removing the temporaries; UsageError
    for an unknown ``to``, an unreadable input or ``--config`` file, or a missing output
    directory.
    """
    planned = plan_migration(path, to, config_file=config_file, targets_dir=targets_dir)
    image, plan, context = planned.image, planned.plan, planned.context
    outputs = tuple(output_paths(plan.destination, out))
    unwritten = MigrationResult(path, outputs, plan, (), written=False)
    refusals = _target_refusals(planned)
    try:
        model = run_steps(image, plan, context)
    except StepBlocked as blocked:
        refusals.extend(blocked.findings)
    if plan.lossy() and not allow_lossy:
        refusals.append(_lossy_finding(path, plan))
    if not refusals and not dry_run and plan.steps and image.checksums:
        refusals.extend(_damaged_source(image, progress=progress))
    if refusals:
        raise MigrationRefused(refusals, replace(unwritten, findings=tuple(refusals)))
    model = _rebased(model, out)
    _check_outputs(image, outputs, force, unwritten)
    result = replace(unwritten, findings=model.findings)
    if dry_run:
        return result
    mode = stat.S_IMODE(os.stat(image.files[0]).st_mode) & 0o666
    try:
        with AtomicOutputs(outputs, force=force, mode=mode) as atomic:
            bar = Progress(model.memory.size, "copying memory") if progress else None
            write_image(model, atomic.temps, progress=bar)
            if bar is not None:
                bar.close()
            for temp in atomic.temps:  # durable before it is judged, as before it is renamed
                fsync_file(temp)
            _verify(model, atomic.temps, out, verify=verify, progress=progress)
            atomic.commit()
    except MigrationError as exc:
        raise type(exc)(exc.findings, replace(unwritten, findings=exc.findings)) from exc
    except UsageError as exc:
        if exc.finding.rule == "BHS-M004":  # an output that appeared while writing
            raise MigrationRefused([exc.finding], replace(unwritten, findings=(exc.finding,))
                                   ) from exc
        # The source became unreadable mid-write (truncated, removed): whichever thread, the
        # copy or the checksum, noticed first, the migration failed and nothing was written.
        failed = error("BHS-M006", out, None,
                       f"writing the output failed: {exc.finding.one_line()}; nothing was "
                       "written")
        raise MigrationFailed([failed], replace(unwritten, findings=(failed,))) from exc
    except ImageError as exc:
        raise MigrationFailed([exc.finding], replace(unwritten, findings=(exc.finding,))
                              ) from exc
    except OSError as exc:
        failed = error("BHS-M006", out, None,
                       f"writing the output failed: {exc.strerror or exc}; nothing was written")
        raise MigrationFailed([failed], replace(unwritten, findings=(failed,))) from exc
    return replace(result, written=True)


# --------------------------------------------------------------------------------------------
# verification


def _verify(model: Image, temps: Sequence[str], out: str, *, verify: bool,
            progress: bool) -> None:
    """Read the temporaries back and compare them with ``model`` (MigrationFailed BHS-M005)."""
    try:
        written = read_image_files(model.format, temps, out)
    except BhyvesnapError as exc:
        raise MigrationFailed([error(
            "BHS-M005", out, exc.finding.location,
            f"the written image does not read back: {exc.finding.message} "
            f"[{exc.finding.rule}]")]) from exc
    problems = _differences(model, written)
    if not problems:
        problems = _checksum_problems(model, written, verify=verify, progress=progress)
    if problems:
        raise MigrationFailed([error("BHS-M005", out, None,
                                     f"the written image differs from what was meant: {p}")
                               for p in problems])


def _entries(entries: Iterable[StateEntry]) -> dict[str, tuple[str, bytes]]:
    return {entry.name: (entry.generation, entry.read()) for entry in entries}


def _differences(model: Image, written: Image) -> list[str]:
    """What the written header and small sections say differently from the model."""
    problems = [f"{what} is {theirs!r}, not {mine!r}" for what, mine, theirs in (
        ("the format", model.format, written.format),
        ("the IDENT", model.ident, written.ident),
        ("the legacy metadata", model.legacy, written.legacy),
        ("the compat record", model.compat, written.compat),
        ("the producer record", model.producer, written.producer),
        ("the memory type", model.memory_type, written.memory_type),
        ("the memory size", model.memory.size, written.memory.size),
        ("the config section", model.config_text, written.config_text),
    ) if mine != theirs]
    for kind, mine_entries, their_entries in (("kernel", model.kernel, written.kernel),
                                              ("devices", model.devices, written.devices)):
        mine, theirs = _entries(mine_entries), _entries(their_entries)
        if mine.keys() != theirs.keys():
            problems.append(f"the {kind} entries are {sorted(theirs)}, not {sorted(mine)}")
            continue
        problems.extend(f"{kind} entry {name!r} differs" for name in mine
                        if mine[name] != theirs[name])
    mine_extras = {e.name: (e.type, e.data.size, dict(e.attributes))
                   for e in model.extra_sections}
    their_extras = {e.name: (e.type, e.data.size, dict(e.attributes))
                    for e in written.extra_sections}
    if mine_extras != their_extras:
        problems.append(f"the unknown sections are {sorted(their_extras)}, not "
                        f"{sorted(mine_extras)} (or differ in type, size or attributes)")
    return problems


def _checksum_problems(model: Image, written: Image, *, verify: bool,
                       progress: bool) -> list[str]:
    """Recorded checksums of the small sections against the written bytes; with ``verify``
    also unknown sections and guest memory (:func:`_memory_problems`)."""
    problems: list[str] = []
    for section in written.sections:
        if section.name == "memory" or (section.name not in SMALL_SECTIONS and not verify):
            continue
        checksum = _usable(written.checksums.get(section.name))
        source = next((extra.data for extra in model.extra_sections
                       if extra.name == section.name), None)
        if checksum is None and source is None:
            continue  # an r1 small section: already compared byte for byte
        target = FileRange(written.files[0], section.offset, section.size)
        if checksum is not None:
            algorithm, _, expected = checksum.partition(":")
        else:
            assert source is not None
            algorithm = "sha256"
            expected = _hash(source, algorithm, f"hashing the source {section.name}", progress)
        actual = _hash(target, algorithm, f"verifying {section.name}", progress)
        if actual != expected:
            problems.append(f"section {section.name!r} hashes to {algorithm}:{actual[:16]}..., "
                            f"not {algorithm}:{expected[:16]}...")
    if verify:
        problems.extend(_memory_problems(model, written, progress))
    return problems


def _memory_problems(model: Image, written: Image, progress: bool) -> list[str]:
    """Written guest memory against the checksum the r2 writer recorded (it hashed the source
    while writing), or else against the source, hashed piece by piece."""
    assert isinstance(written.memory, FileRange)  # readers never merge pages
    checksum = _usable(written.checksums.get("memory"))
    if checksum is not None:
        algorithm, _, expected = checksum.partition(":")
        actual = _hash(written.memory, algorithm, "verifying memory", progress)
        return [] if actual == expected else [
            f"memory hashes to {algorithm}:{actual[:16]}..., not the recorded "
            f"{algorithm}:{expected[:16]}..."]
    pieces = [(0, model.memory)] if isinstance(model.memory, FileRange) else list(
        model.memory.pieces())
    for offset, source in pieces:
        target = FileRange(written.memory.path, written.memory.offset + offset, source.size)
        if (_hash(source, "sha256", "hashing the source memory", progress)
                != _hash(target, "sha256", "verifying memory", progress)):
            return [f"memory bytes {offset} to {offset + source.size} differ from the source"]
    return []


def _usable(checksum: str | None) -> str | None:
    """``checksum`` if this Python can compute its algorithm, else ``None`` (compare with the
    source instead: a carried-over checksum may use an algorithm only its writer knows)."""
    if checksum is None or checksum.partition(":")[0] not in hashlib.algorithms_available:
        return None
    return checksum


def _hash(source: FileRange, algorithm: str, label: str, progress: bool) -> str:
    bar = Progress(source.size, label) if progress else None
    try:
        return hash_range(source, algorithm, bar)
    finally:
        if bar is not None:
            bar.close()
