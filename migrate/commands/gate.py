"""``bhyvesnap gate``: the image x target matrix of a corpus, for release gating."""

from __future__ import annotations

import argparse
import sys

from migrate.gate import render_junit, render_markdown, render_table, run_gate
from migrate.render import print_findings, print_json
from migrate.targets import Target, load_targets, resolve_target, sort_key
from migrate.verdicts import EXIT_OK, EXIT_REFUSED

HELP = "run the image x target matrix over a corpus for release gating"
DESCRIPTION = """\
Validate every image of a corpus once (checksums verified), check it against every target
profile, and print the matrix: rows are images, columns are targets. Each verdict is compared
with the one the corpus manifest expects (a pair is ok, or changed: a failure) or, with
--baseline, with the verdict an earlier run found (ok, better, or worse: a failure). A target
with no expected verdict (a profile you just added) is reported as new and never fails.
Every failure is named on stderr (image x target: expected ..., got ...), and a corpus file
whose sha256 differs from the manifest fails the gate too. Without --corpus, the corpus
bundled with the tool is used.

examples:
  bhyvesnap gate
  bhyvesnap gate --targets-dir ./profiles --format markdown > gate.md
  bhyvesnap gate --target freebsd-14 --target bhyve-image-2.0 --json
  bhyvesnap gate --json > baseline.json; bhyvesnap gate --baseline baseline.json
  bhyvesnap gate --corpus ./my-corpus --format junit > gate.xml

exit status: 0 every pair passed, 1 at least one pair failed (or a corpus file changed),
2 usage error (unreadable or invalid manifest or baseline, unknown target).
"""

FORMATS = ("table", "json", "junit", "markdown")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", metavar="DIR",
                        help="a corpus folder with manifest.json (default: the bundled corpus), "
                             "e.g. --corpus ./corpus")
    parser.add_argument("--target", "-t", metavar="T", action="extend", nargs="+",
                        help="gate only these targets: profile name, IDENT or FreeBSD release "
                             "(repeatable; default: every profile), e.g. --target freebsd-14")
    parser.add_argument("--targets-dir", metavar="DIR",
                        help="also load the target profiles (*.json) of DIR, e.g. the new "
                             "build's profile: --targets-dir ./profiles")
    parser.add_argument("--baseline", metavar="FILE",
                        help="compare with an earlier 'gate --json' output instead of the "
                             "manifest: only a pair that got worse fails, e.g. "
                             "--baseline baseline.json")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--format", choices=FORMATS, default="table",
                        help="output form: table (default), json, junit (CI systems) or "
                             "markdown (pull-request comments), e.g. --format junit")
    output.add_argument("--json", dest="format", action="store_const", const="json",
                        help="short for --format json")
    parser.add_argument("--jobs", "-j", metavar="N", type=_positive,
                        help="worker processes (default: one per available CPU), e.g. -j 2")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of workers")
    return value


def _targets(args: argparse.Namespace) -> list[Target]:
    profiles = load_targets(args.targets_dir)
    if not args.target:
        return sorted(profiles.values(), key=sort_key)
    chosen: dict[str, Target] = {}
    for spec in args.target:
        target = resolve_target(spec, profiles)
        chosen.setdefault(target.name, target)
    return list(chosen.values())


def run(args: argparse.Namespace) -> int:
    result = run_gate(_targets(args), args.corpus, baseline=args.baseline, workers=args.jobs)
    print_findings([f for f in result.findings if f.is_error])
    if args.format == "json":
        print_json(result.to_json())
    elif args.format == "junit":
        sys.stdout.write(render_junit(result))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(result))
    else:
        sys.stdout.write(render_table(result))
    return EXIT_REFUSED if result.failed else EXIT_OK
