"""``bhyvesnap targets``: list the target profiles the checker knows."""

from __future__ import annotations

import argparse

from migrate.render import print_json, table
from migrate.targets import Target, load_targets, sort_key

HELP = "list the bhyve builds (target profiles) the checker knows"

DESCRIPTION = """\
List the target profiles: the bhyve builds that `check --target` and `gate` can answer
for. A profile is resolved by its name, by its IDENT (single-file formats) or by a FreeBSD
release in its `releases` specifier set (14.1-RELEASE-p3 -> freebsd-14). Proposed targets
(the single-file image proposals) cover no release.

Add or correct profiles with --targets-dir: every *.json file there is a profile in the
form of schemas/target.schema.json; one with a bundled profile's name replaces it.

examples:
  bhyvesnap targets
  bhyvesnap targets --json
  bhyvesnap targets --targets-dir ./my-targets
"""

_MIB = 1 << 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document {\"targets\": [...]} with every field")
    parser.add_argument("--targets-dir", metavar="DIR",
                        help="also load the target profiles (*.json) of DIR; a profile named "
                             "like a bundled one replaces it")


def _blob_limit(size: int) -> str:
    return f"{size // _MIB} MiB" if size % _MIB == 0 else f"{size} bytes"


def _row(target: Target) -> tuple[str, ...]:
    container = target.format if target.ident is None else f"{target.format} ({target.ident})"
    releases = target.releases_text or "-"
    return (target.name, target.status, releases, container, target.generation,
            _blob_limit(target.blob_limit))


def run(args: argparse.Namespace) -> int:
    targets = sorted(load_targets(args.targets_dir).values(), key=sort_key)
    if args.json:
        print_json({"targets": [target.to_document() for target in targets]})
    else:
        print(table((_row(t) for t in targets),
                    ("name", "status", "releases", "format / IDENT", "generation",
                     "blob limit")))
    return 0
