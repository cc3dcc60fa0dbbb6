"""``bhyvesnap corpus build DIR``: write the sample corpus and its manifest."""

from __future__ import annotations

import argparse
import sys

from migrate.corpusgen import build_corpus, stray_files
from migrate.verdicts import EXIT_OK

HELP = "build the sample corpus of images"
DESCRIPTION = """\
Write the sample corpus the release gate runs: images of every format (legacy-a of FreeBSD
13.0 and 13.2, legacy-b with several device sets and vCPU counts, r1, r2 with checksums), a
foreign-producer and an unknown-version image, damaged images of each kind, and
manifest.json (per image: how it was made, the sha256 of each file, the verdict expected on
every bundled target). The build is deterministic: the same bytes on every run, so the
corpus committed with the tool can be checked against it. Images of the same names are
replaced; other files in DIR are left alone and listed on stderr.

examples:
  bhyvesnap corpus build ./corpus
  bhyvesnap corpus build /tmp/corpus && bhyvesnap gate --corpus /tmp/corpus
"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="write the corpus and manifest.json into DIR",
                               description="Write the sample corpus and manifest.json into "
                                           "DIR (created if missing), e.g. corpus build ./corpus")
    build.add_argument("directory", metavar="DIR", help="the folder to write, e.g. ./corpus")


def run(args: argparse.Namespace) -> int:
    manifest = build_corpus(args.directory)
    for name in stray_files(args.directory, manifest):
        print(f"bhyvesnap: {args.directory}: {name} is not part of the corpus (left alone)",
              file=sys.stderr)
    count = len(manifest["images"])
    print(f"wrote {count} images and manifest.json to {args.directory}", file=sys.stderr)
    return EXIT_OK
