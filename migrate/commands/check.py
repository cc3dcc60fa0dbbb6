"""``bhyvesnap check IMAGE --target T``: can this bhyve build restore this image?"""

from __future__ import annotations

import argparse

from migrate.checker import CheckResult, check_path
from migrate.render import print_findings, print_json, table
from migrate.targets import Target, load_targets, resolve_target

HELP = "can a bhyve build restore this image, and if not, why and what to do"
DESCRIPTION = """\
Answer, for each --target, whether that bhyve build restores the image: native (as it is),
upgrade or downgrade (after a lossless migration), lossy (after a migration that drops named
data), incompatible (no migration helps; every reason is listed) or invalid (the image is
damaged; the first problem is located). Every answer other than native comes with findings
(rule id, file, location, message, remedy); the remedy of upgrade, downgrade and lossy is the
exact 'bhyvesnap migrate' command to run. Only the header and the small sections are read.

A target is a profile name (freebsd-14, bhyve-image-2.0; see 'bhyvesnap targets'), an IDENT
('BHYVE CHECKPOINT IMAGE 2.0') or a FreeBSD release (14.1-RELEASE-p3 -> freebsd-14).
With --config FILE (a bhyve -k file, or the output of bhyve -o config.dump=1), the devices of
the configuration you will restore with are compared with the image's: a device added,
removed or moved to another slot makes a legacy target incompatible.

examples:
  bhyvesnap check vm.ckp --target 14.1-RELEASE
  bhyvesnap check vm.ckp --target freebsd-14 --target bhyve-image-2.0 --json
  bhyvesnap check vm.ckp --target freebsd-14 --config vm.conf
  bhyvesnap check image.bhyve --target bhyve-image-2.0 --verify

exit status: 0 native, 10 upgrade, 11 downgrade, 12 lossy, 20 incompatible, 30 invalid
(with several targets: the highest); 2 usage error, unreadable input, unknown target.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image (a legacy F, or a single file)")
    parser.add_argument("--target", "-t", metavar="T", action="append", required=True,
                        help="a target: profile name, IDENT or FreeBSD release (repeatable), "
                             "e.g. --target 14.1-RELEASE --target bhyve-image-2.0")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout ({\"results\": [...]} with "
                             "several targets)")
    parser.add_argument("--verify", action="store_true",
                        help="also verify section checksums (reads the whole image)")
    parser.add_argument("--targets-dir", metavar="DIR",
                        help="also load the target profiles (*.json) of DIR, e.g. "
                             "--targets-dir ./my-targets")
    parser.add_argument("--config", metavar="FILE",
                        help="the configuration you will restore with (bhyve -k file or "
                             "bhyve -o config.dump=1 output), e.g. --config vm.conf")


def run(args: argparse.Namespace) -> int:
    profiles = load_targets(args.targets_dir)
    targets: dict[str, Target] = {}
    for spec in args.target:
        target = resolve_target(spec, profiles)
        targets.setdefault(target.name, target)
    results = check_path(args.image, list(targets.values()), verify=args.verify,
                         config_file=args.config)
    if args.json:
        if len(results) == 1:
            print_json(results[0].to_json())
        else:
            print_json({"results": [result.to_json() for result in results]})
    else:
        _print_human(results)
    return max(result.verdict.exit_status for result in results)


def _print_human(results: list[CheckResult]) -> None:
    """Findings (with remedies) on stderr, one table row per target on stdout."""
    for result in results:
        print_findings(result.findings)
    print(table(((r.image, r.target, r.verdict.value,
                  " → ".join(s.name for s in r.plan.steps) if r.plan else "")
                 for r in results), ("image", "target", "verdict", "migration")))
