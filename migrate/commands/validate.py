"""``bhyvesnap validate IMAGE``: is the image intact and well formed?"""

from __future__ import annotations

import argparse

from migrate.render import print_findings, print_json
from migrate.storage import Progress
from migrate.validation import validate
from migrate.verdicts import EXIT_INVALID, EXIT_NOT_INTERPRETED, EXIT_OK

HELP = "check an image's structure (and, with --verify, its checksums)"
DESCRIPTION = """\
Check every structural rule of the image's format: sizes and offsets inside the files, no
overlapping sections or blobs, the memory size, IDENT and header layout, the config section,
the kernel and device entries. With --verify, also hash every section that records a checksum
(r2) and compare; memory is streamed in chunks, so this reads the whole image once.

examples:
  bhyvesnap validate vm.ckp
  bhyvesnap validate image.bhyve --verify --json

exit status: 0 valid; 30 invalid (findings name the rule, file and byte offset or JSON
pointer); 20 not interpreted (foreign producer or unknown version); 2 unreadable path.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image (a legacy F, or a single file)")
    parser.add_argument("--verify", action="store_true",
                        help="also verify section checksums (reads the whole image)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    report = validate(args.image, verify=args.verify, progress=Progress)
    if args.json:
        print_json(report.to_json())
    else:
        print_findings(report.findings)
        state = "valid" if report.valid else (
            "not interpreted" if not report.interpreted else "invalid")
        print(f"{args.image}: {state}")
    if report.valid:
        return EXIT_OK
    return EXIT_INVALID if report.interpreted else EXIT_NOT_INTERPRETED
