"""``bhyvesnap nvlist decode|encode``: FreeBSD libnv packed nvlists by hand.

For debugging images and crafting test input: ``decode`` prints the description JSON of
the test vectors (tests/data/nvlist/README.md), ``encode`` packs such a description back
into bytes. Both sit directly on :mod:`migrate.nvlist`; an invalid nvlist exits 30 like an
invalid image, a usage problem or unreadable file exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from migrate.findings import ImageError, UsageError, error
from migrate.nvlist import MAX_SIZE, NvlistError, from_description, pack, to_description, unpack
from migrate.render import print_json
from migrate.rules import RuleKind
from migrate.storage import AtomicOutputs, write_bytes_at
from migrate.verdicts import EXIT_INVALID, EXIT_OK

HELP = "decode and encode FreeBSD libnv packed nvlists by hand"

DESCRIPTION = """\
Decode a packed FreeBSD libnv nvlist (nvlist_pack() bytes) into JSON, or encode such JSON
back into bytes. The JSON is {"flags": N, "pairs": [{"name", "type", "value"}, ...]} with
libnv type names (NULL, BOOL, NUMBER, STRING, NVLIST, BINARY as lowercase hex, BOOL_ARRAY,
NUMBER_ARRAY, STRING_ARRAY, NVLIST_ARRAY, DESCRIPTOR as {"fd_index": n}, ...). Names and
strings that are not UTF-8 show their odd bytes as \\udc80-\\udcff escapes and encode back
to the same bytes.

decode checks everything nvlist_unpack() checks. Without --flags it accepts the flags the
buffer's top header carries; with --flags N it insists on them as nvlist_unpack(buf, len,
N) does. encode refuses to overwrite OUT unless --force, and writes it atomically
(temporary file, fsync, rename).

Exit status: 0 done, 30 the nvlist (or JSON description) is invalid, 2 usage error or
unreadable file.

examples:
  bhyvesnap nvlist decode header.nvl > header.json
  bhyvesnap nvlist decode header.nvl --flags 0x1
  bhyvesnap nvlist encode header.json -o header.nvl --size-rule legacy --force
"""


def _flags(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value & ~0x03 or value < 0:
        raise argparse.ArgumentTypeError("flags may only combine 0x1 (IGNORE_CASE) and "
                                         "0x2 (NO_UNIQUE)")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    decode = actions.add_parser(
        "decode", help="print a packed nvlist file as description JSON",
        description="Print the packed nvlist in FILE as description JSON on stdout.")
    decode.add_argument("file", metavar="FILE", help="the packed nvlist (at most 64 MiB)")
    decode.add_argument("--flags", type=_flags, default=None, metavar="N",
                        help="require these top-level flags, as nvlist_unpack(..., N) "
                        "(0, 1 IGNORE_CASE, 2 NO_UNIQUE, 3; decimal or 0x..); default: "
                        "accept the header's")
    encode = actions.add_parser(
        "encode", help="pack a description JSON file into nvlist bytes",
        description="Pack the description in JSONFILE into OUT, as nvlist_pack() would.")
    encode.add_argument("json_file", metavar="JSONFILE", help="the description JSON")
    encode.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="where to write the packed bytes")
    encode.add_argument("--size-rule", choices=("modern", "legacy"), default="modern",
                        help="datasize of NVLIST pairs: modern (FreeBSD 14+, default) or "
                        "legacy (FreeBSD 13 and older, the Linux ports)")
    encode.add_argument("--descriptors", action="store_true",
                        help="write DESCRIPTOR types as nvlist_send() does instead of "
                        "refusing them like nvlist_pack()")
    encode.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    for action in (decode, encode):
        # also after the action; SUPPRESS keeps a --debug given before it from being reset
        action.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show the Python traceback of an internal error")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "decode":
            return _decode(args)
        return _encode(args)
    except ImageError as exc:
        if exc.finding.kind is not RuleKind.VALIDATION:
            raise  # e.g. writing the output failed: the dispatcher reports it (exit 2)
        print(f"bhyvesnap: {exc.finding.one_line()}", file=sys.stderr)
        return EXIT_INVALID


def _unreadable(path: str, exc: OSError) -> UsageError:
    return UsageError(error("BHS-X002", path, None, f"cannot read: {exc.strerror or exc}"))


def _decode(args: argparse.Namespace) -> int:
    path: str = args.file
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIZE + 1)  # bounded: one byte more proves "too large"
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        nvl = unpack(data, args.flags)
    except NvlistError as exc:
        raise exc.at(path) from None
    print_json(to_description(nvl))
    return EXIT_OK


def _encode(args: argparse.Namespace) -> int:
    path: str = args.json_file
    out: str = args.output
    outputs = AtomicOutputs([out], force=args.force)  # refuses an existing OUT before any work
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        doc: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = exc.pos if isinstance(exc, json.JSONDecodeError) else None
        raise UsageError(error("BHS-X001", path, where,
                               f"not a JSON description: {exc}")) from None
    data = pack(from_description(doc, file=path), size_rule=args.size_rule,
                descriptors=args.descriptors)
    with outputs:
        write_bytes_at(outputs.fd(0), 0, data)
        outputs.commit()
    print(f"bhyvesnap: wrote {len(data)} bytes to {out}", file=sys.stderr)
    return EXIT_OK
