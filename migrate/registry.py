"""The format graph: declared migration steps, the planner, and the registry's lint.

Modelled on Alembic's revision graph: every step declares its edge (source and destination
format), what it rewrites and what it loses, and the planner only walks declared edges. A new
revision is a new module under :mod:`migrate.steps` (found with :mod:`pkgutil`), never an edit
of an old step. ``lint`` keeps the graph honest: the upgrade chain of FORMAT.md section 1 is
complete, ``legacy-a`` is a source only, every later format reaches every other, and every
step is exercised by a test image.

Steps are pure model transforms (docs/ARCHITECTURE.md): ``apply`` maps an :class:`Image` of
the source format to one of the destination format without touching guest memory, which stays
the same :class:`~migrate.image.FileRange`. Whether a step may run on a given image is a
separate question, answered by ``blockers`` as findings, so that a dry run, the checker and
the real run refuse for the same reasons.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from migrate.findings import BhyvesnapError, Finding, UsageError, error
from migrate.image import FORMATS, Image
from migrate.steps.base import Direction, Loss, Step, StepContext

__all__ = ["REGISTRY", "Direction", "Loss", "Plan", "Registry", "Step", "StepBlocked",
           "StepContext", "build_registry", "discover_steps", "run_steps"]


@dataclass(frozen=True)
class Plan:
    """An ordered chain of steps from ``source`` to ``destination`` (empty if they are equal)."""

    source: str
    destination: str
    steps: tuple[Step, ...] = ()

    def lossy(self) -> bool:
        """Whether any step drops data a restore may need (informational losses do not count)."""
        return any(step.lossy for step in self.steps)

    def losses(self) -> list[Loss]:
        return [loss for step in self.steps for loss in step.losses]

    def to_json(self) -> dict[str, Any]:
        return {"plan": [step.to_json() for step in self.steps], "lossy": self.lossy()}


class StepBlocked(BhyvesnapError):
    """A step of a plan refuses to run on the image; ``findings`` holds every reason."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings = tuple(findings)
        super().__init__(self.findings[0])


class Registry:
    """The declared steps between :data:`formats`, with the planner and the lint."""

    def __init__(self, formats: tuple[str, ...] = FORMATS) -> None:
        self.formats = formats
        self._steps: list[Step] = []

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps)

    def register(self, step: Step) -> None:
        """Declare ``step``. Consistency (unknown formats, duplicate edges) is :meth:`lint`'s
        job, so that a broken registry can still be built and shown."""
        self._steps.append(step)

    def path(self, source: str, destination: str) -> Plan | None:
        """The shortest plan from ``source`` to ``destination``, or ``None`` if there is none.

        Breadth-first over declared edges between different formats (a same-format step such
        as ``flatten`` is never part of a path). Ties go to the step whose destination comes
        first in the chain order, then by step name, so the plan is the same on every run.
        """
        if source == destination:
            return Plan(source, destination)
        previous: dict[str, Step] = {}
        seen = {source}
        queue = deque([source])
        while queue:
            here = queue.popleft()
            for step in self._edges_from(here):
                if step.destination in seen:
                    continue
                seen.add(step.destination)
                previous[step.destination] = step
                if step.destination == destination:
                    return Plan(source, destination, _walk_back(previous, source, destination))
                queue.append(step.destination)
        return None

    def removal_step(self, feature: str) -> Step | None:
        """The declared step that removes r2 compat ``feature`` (``flatten``: ``diff-pages``),
        if any: a same-format step, run before the path when the destination lacks the
        feature. Nothing assumes one exists."""
        return next((step for step in self._steps if step.removes_feature == feature), None)

    def removals(self, features: Iterable[str]) -> tuple[tuple[Step, ...], tuple[str, ...]]:
        """The steps that remove ``features`` (each step once, in feature order), and the
        features no declared step removes."""
        steps: dict[Step, None] = {}
        unremovable: list[str] = []
        for feature in features:
            step = self.removal_step(feature)
            if step is None:
                unremovable.append(feature)
            else:
                steps[step] = None
        return tuple(steps), tuple(unremovable)

    def plan(self, source: str, destination: str, file: str = "") -> Plan:
        """Like :meth:`path`, but asking for an impossible migration is a :class:`UsageError`.

        An unknown format id is ``BHS-X001``; no path (anything into ``legacy-a``) is
        ``BHS-M007``. ``file`` is the image path the user gave, for the finding.
        """
        for name in (source, destination):
            if name not in self.formats:
                raise UsageError(error(
                    "BHS-X001", file, None,
                    f"unknown format {name!r}; known formats: {', '.join(self.formats)}"))
        found = self.path(source, destination)
        if found is None:
            raise UsageError(error(
                "BHS-M007", file, None,
                f"no chain of migration steps leads from {source} to {destination}",
                "run 'bhyvesnap registry show' for the steps that exist"))
        return found

    def lint(self, test_images: Collection[str] | None = None) -> list[Finding]:
        """Every broken invariant of the graph, as ``BHS-M008`` findings (empty when clean).

        The invariants: every step's formats are known; step names are unique; no two steps
        share an edge; ``direction`` is ``up`` exactly when the destination is later in the
        chain (a same-format step is ``down``: it removes a feature); every step rewrites
        something and every loss says what and why; every format after the first is
        reachable from the first (the upgrade chain), the first is a source only, and every
        format after the first reaches every other (each upgrade has a downgrade partner).
        With ``test_images``, every step's ``test_image`` must be one of them (the test suite
        passes its table of image factories; the CLI cannot see the tests and only requires
        a name).
        """
        found: list[Finding] = []
        names: set[str] = set()
        edges: dict[tuple[str, str], str] = {}
        for step in self._steps:
            where = type(step).__module__
            found.extend(error("BHS-M008", where, None, f"step {step.name!r} {problem}")
                         for problem in self._lint_step(step, names, edges, test_images))
        found.extend(error("BHS-M008", "migrate.steps", None, problem)
                     for problem in self._lint_graph())
        return found

    def _lint_step(self, step: Step, names: set[str], edges: dict[tuple[str, str], str],
                   test_images: Collection[str] | None) -> list[str]:
        """What is wrong with one step, given the names and edges of the steps before it."""
        found = [f"names unknown format {end!r}" for end in (step.source, step.destination)
                 if end not in self.formats]
        if step.name in names:
            found.append("is declared twice")
        names.add(step.name)
        edge = (step.source, step.destination)
        if edge in edges:
            found.append(f"duplicates the edge {edge[0]} -> {edge[1]} of step {edges[edge]!r}")
        edges.setdefault(edge, step.name)
        if all(end in self.formats for end in edge):
            expected = "up" if self._rank(edge[1]) > self._rank(edge[0]) else "down"
            if step.direction != expected:
                found.append(f"goes {edge[0]} -> {edge[1]} but says direction "
                             f"{step.direction!r} instead of {expected!r}")
        if not step.rewrites or not all(line.strip() for line in step.rewrites):
            found.append("does not say what it rewrites")
        found.extend(f"declares a loss {loss.what!r} without a message"
                     for loss in step.losses if not loss.what.strip() or not loss.message.strip())
        if not step.test_image.strip():
            found.append("names no test image")
        elif test_images is not None and step.test_image not in test_images:
            found.append(f"names test image {step.test_image!r}, which does not exist")
        return found

    def _lint_graph(self) -> list[str]:
        if not self.formats:
            return ["the registry knows no format"]
        first, *later = self.formats
        found = [f"step {step.name!r} migrates into {first}, which is a source only"
                 for step in self._steps if step.destination == first]
        found.extend(f"format {name} is not reachable from {first}"
                     for name in later if self.path(first, name) is None)
        found.extend(f"no path from {a} to {b}" for a in later for b in later
                     if a != b and self.path(a, b) is None and self.path(first, a) is not None)
        return found

    def _rank(self, name: str) -> int:
        return self.formats.index(name)

    def _edges_from(self, source: str) -> list[Step]:
        return sorted((step for step in self._steps
                       if step.source == source and step.destination != source
                       and step.destination in self.formats),
                      key=lambda step: (self._rank(step.destination), step.name))


def _walk_back(previous: dict[str, Step], source: str, destination: str) -> tuple[Step, ...]:
    steps: list[Step] = []
    here = destination
    while here != source:
        step = previous[here]
        steps.append(step)
        here = step.source
    return tuple(reversed(steps))


def run_steps(image: Image, plan: Plan, context: StepContext) -> Image:
    """``image`` carried through every step of ``plan``.

    Each step's blockers are checked on the image it would receive; the first step with any
    raises :class:`StepBlocked` with all of its findings (nothing is written: steps are pure).
    The reader's findings describe the input file, not the output, so the result's
    ``findings`` hold only what the steps reported (such as an incomplete config).
    """
    if image.format != plan.source:
        raise UsageError(error("BHS-X001", image.path, None,
                               f"the plan starts from {plan.source} but the image is "
                               f"{image.format}"))
    current = image.evolve(findings=())
    for step in plan.steps:
        refused = [finding for finding in step.blockers(current, context) if finding.is_error]
        if refused:
            raise StepBlocked(refused)
        current = step.apply(current, context)
    return current


def discover_steps(package: str = "migrate.steps") -> list[Step]:
    """One instance of every :class:`Step` subclass defined in the modules of ``package``.

    Modules are imported in name order and each step class is taken from the module that
    defines it, so adding a revision is adding a file.
    """
    root = importlib.import_module(package)
    found: list[Step] = []
    for module_info in sorted(pkgutil.iter_modules(root.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package}.{module_info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Step) and value is not Step
                    and value.__module__ == module.__name__ and not _is_abstract(value)):
                found.append(value())
    return found


def _is_abstract(cls: type) -> bool:
    return bool(getattr(cls, "__abstractmethods__", False))


def build_registry(package: str = "migrate.steps") -> Registry:
    registry = Registry()
    for step in discover_steps(package):
        registry.register(step)
    return registry


REGISTRY: Registry = build_registry()
"""Every step under :mod:`migrate.steps`, the registry the tool plans with."""
