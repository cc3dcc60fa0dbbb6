"""``bhyvesnap registry show|lint``: the migration steps the tool knows, and their lint.

``show`` is how a user learns which migrations exist and what each one drops before running
one; ``lint`` is the check a contributor runs after adding a step (a new file under
``migrate/steps/``), the way ``alembic check`` guards a revision graph.
"""

from __future__ import annotations

import argparse
from typing import Any

from migrate.registry import REGISTRY, Registry
from migrate.render import print_findings, print_json, table
from migrate.verdicts import EXIT_OK, EXIT_REFUSED

HELP = "inspect and lint the migration registry"
DESCRIPTION = """\
Show the formats and the declared migration steps (what each rewrites and loses), or check
the registry's invariants: every format after legacy-a reachable from it and from each other,
legacy-a a source only, one step per edge, directions that match the upgrade chain, every
loss explained, every step naming the test image that exercises it.

examples:
  bhyvesnap registry show
  bhyvesnap registry show --json
  bhyvesnap registry lint --json

exit status: 0 (show; lint: clean); 1 lint found a broken invariant (BHS-M008 findings).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="list formats and steps with rewrites and losses",
                              description="List the formats and every declared step.")
    lint = actions.add_parser("lint", help="check the registry's invariants",
                              description="Check the migration registry's invariants.")
    for child in (show, lint):
        child.add_argument("--json", action="store_true",
                           help="print one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    if args.action == "show":
        return _show(REGISTRY, json_output=args.json)
    return _lint(REGISTRY, json_output=args.json)


def show_document(registry: Registry) -> dict[str, Any]:
    """``registry show --json``: the formats in chain order and every step as in a plan."""
    return {
        "formats": list(registry.formats),
        "steps": [{**step.to_json(), "direction": step.direction, "lossy": step.lossy,
                   "test_image": step.test_image} for step in registry.steps],
    }


def _show(registry: Registry, *, json_output: bool) -> int:
    if json_output:
        print_json(show_document(registry))
        return EXIT_OK
    print("formats: " + " -> ".join(registry.formats))
    rows = [(step.name, step.source, step.destination, step.direction,
             "; ".join(_loss_text(loss.what, loss.informational) for loss in step.losses)
             or "none")
            for step in registry.steps]
    print(table(rows, ("step", "from", "to", "direction", "losses")))
    return EXIT_OK


def _loss_text(what: str, informational: bool) -> str:
    return f"{what} (informational)" if informational else what


def _lint(registry: Registry, *, json_output: bool) -> int:
    findings = registry.lint()
    if json_output:
        print_json({"ok": not findings, "findings": [f.to_json() for f in findings]})
    else:
        print_findings(findings)
        print(f"registry: {len(registry.steps)} steps, "
              + ("clean" if not findings else f"{len(findings)} problem(s)"))
    return EXIT_REFUSED if findings else EXIT_OK
