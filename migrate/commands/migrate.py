"""``bhyvesnap migrate IMAGE --to FORMAT_OR_TARGET -o OUT``: rewrite an image safely."""

from __future__ import annotations

import argparse
import sys

from migrate.findings import BhyvesnapError
from migrate.migration import MigrationError, MigrationResult, run_migration
from migrate.registry import Plan
from migrate.render import print_findings, print_json, table
from migrate.rules import RuleKind
from migrate.verdicts import EXIT_OK, EXIT_REFUSED, EXIT_USAGE

HELP = "rewrite an image into another format, section by section"
DESCRIPTION = """\
Rewrite a snapshot image into another format (legacy-a, legacy-b, r1, r2) by the shortest
chain of registered steps ('bhyvesnap registry show' lists them). --to takes a format id or
a target (a profile name such as freebsd-14 or bhyve-image-2.0, an IDENT, or a FreeBSD
release such as 14.1-RELEASE): the target's format is the destination. A legacy output is
three files: OUT, OUT.kern and OUT.meta.

Data safety: the input is only ever read. The output is written under hidden temporary names
next to OUT, flushed to disk, read back and compared with what was meant (header, config,
kernel and device state; guest memory too with --verify), and only then renamed into place,
OUT.meta last, so an interrupted run never leaves something that reads as an image. Guest
memory is copied by the kernel and holes stay holes. An existing OUT is refused without
--force, and OUT may never be one of the input's files.

Refused (exit 1, nothing written): a plan that drops data (the r1 -> legacy-b config, for
example) without --allow-lossy [BHS-M001]; a step that cannot run on this image, with every
reason [BHS-M002, BHS-M003, BHS-M009, BHS-C004]; no chain of steps [BHS-M007]; an existing
output [BHS-M004]; an input that is not a valid image (the reader's finding, as 'bhyvesnap
validate' reports it; exit 1, not 30: the migration is what was refused); with --to TARGET,
an image that target could not restore even after the migration (the reasons 'bhyvesnap
check' gives, BHS-T...); a plan that drops or recomputes the source's checksums (r2 -> r1,
flatten) when the source fails them [BHS-S014]. A write or verification failure
[BHS-M006, BHS-M005] also exits 1 and leaves nothing at OUT.

--dry-run prints the plan (steps, what each rewrites, what it loses) and writes nothing; it
exits as the real run would, except that it reads no guest memory, so a checksum mismatch is
found only by the real run (or by 'bhyvesnap validate --verify').

--config FILE (a bhyve -k file, or the output of bhyve -o config.dump=1) supplies what
legacy images do not record: the PCI slots of legacy-a devices and the disk and network
settings of the config section r1/r2 carry.

examples:
  bhyvesnap migrate vm.ckp --to r2 -o vm.bhyve --config vm.conf
  bhyvesnap migrate vm.bhyve --to freebsd-14 -o old/vm.ckp --allow-lossy --dry-run --json

exit status: 0 migrated (or, with --dry-run, would migrate); 1 refused or failed, nothing
written; 2 usage error (unknown format or target, unreadable input or --config file, missing
output directory).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image (a legacy F, or a single file)")
    parser.add_argument("--to", required=True, metavar="FORMAT_OR_TARGET",
                        help="destination format (legacy-a, legacy-b, r1, r2) or target "
                        "(freebsd-14, bhyve-image-2.0, 14.1-RELEASE, ...)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output path (legacy formats also write OUT.kern and OUT.meta)")
    parser.add_argument("--config", metavar="FILE",
                        help="the VM's configuration: a bhyve -k file or bhyve -o "
                        "config.dump=1 output (config.dump itself is ignored)")
    parser.add_argument("--allow-lossy", action="store_true",
                        help="accept a plan that drops data (each loss is listed)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and whether it would succeed; write nothing")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    parser.add_argument("--verify", action="store_true",
                        help="also compare guest memory after writing (hashes it)")
    parser.add_argument("--targets-dir", metavar="DIR",
                        help="extra target profiles (*.json); same name replaces a bundled one")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout: plan, lossy, outputs, "
                        "written, findings")


def run(args: argparse.Namespace) -> int:
    try:
        result = run_migration(
            args.image, args.to, args.output, config_file=args.config,
            allow_lossy=args.allow_lossy, dry_run=args.dry_run, force=args.force,
            verify=args.verify, targets_dir=args.targets_dir, progress=not args.json)
    except MigrationError as exc:
        _report(exc.result, args, refused=True)
        print_findings(exc.findings)
        if exc.result is None and args.json:
            print_json({"plan": [], "lossy": False, "source": args.image, "outputs": [],
                        "written": False,
                        "findings": [finding.to_json() for finding in exc.findings]})
        return EXIT_REFUSED
    except BhyvesnapError as exc:
        print(f"bhyvesnap: {exc.finding.one_line()}", file=sys.stderr)
        return EXIT_USAGE if exc.finding.kind is RuleKind.USAGE else EXIT_REFUSED
    print_findings(result.findings)
    _report(result, args, refused=False)
    return EXIT_OK


def _report(result: MigrationResult | None, args: argparse.Namespace, *, refused: bool) -> None:
    """The JSON document, or the plan table and a summary line (stdout)."""
    if result is None:
        return
    if args.json:
        print_json(result.to_json())
        return
    plan = result.plan
    if args.dry_run or refused:
        print(_plan_table(plan))
    outputs = ", ".join(result.outputs)
    if refused:
        state = "would be refused" if args.dry_run else "refused; nothing written"
        print(f"{result.source} -> {outputs} ({plan.destination}): {state}")
    elif args.dry_run:
        print(f"dry run: {result.source} ({plan.source}) -> {outputs} ({plan.destination}) "
              "would succeed; nothing written")
    else:
        print(f"wrote {outputs} ({plan.destination}) from {result.source} ({plan.source}) in "
              f"{len(plan.steps)} step(s)")


def _plan_table(plan: Plan) -> str:
    if not plan.steps:
        return f"plan: {plan.source} is already the destination format; the image is copied"
    rows = [(str(number), step.name, f"{step.source} -> {step.destination}",
             "\n".join(step.rewrites),
             "\n".join(f"{loss.what}{' (informational)' if loss.informational else ''}: "
                       f"{loss.message}" for loss in step.losses) or "nothing")
            for number, step in enumerate(plan.steps, 1)]
    lossy = "yes" if plan.lossy() else "no"
    return table(rows, ("#", "step", "formats", "rewrites", "losses")) + f"\nlossy: {lossy}"
