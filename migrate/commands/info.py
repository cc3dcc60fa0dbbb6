"""``bhyvesnap info IMAGE``: what an image is, read from its header and small sections."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from migrate.findings import ImageError, NotInterpretedError
from migrate.formats import read_image
from migrate.image import UNKNOWN_FORMAT
from migrate.render import print_findings, print_json, table
from migrate.rules import RuleKind
from migrate.show import describe
from migrate.verdicts import EXIT_INVALID, EXIT_NOT_INTERPRETED, EXIT_OK

HELP = "what an image is: format, IDENT, sections, state entries, config"
DESCRIPTION = """\
Show what a snapshot image is: its format (legacy-a, legacy-b, r1, r2), IDENT, kernel ABI
generation, sections with offset/size/type, the configuration summary, every kernel structure
and device with its size, and the producer record. Only the header and the small sections are
read; guest memory is never read, so this is instant for any memory size.

A legacy image is named by its memory file F (F.kern and F.meta beside it); the .kern or
.meta path works too.

examples:
  bhyvesnap info vm.ckp
  bhyvesnap info image.bhyve --json | jq .devices

exit status: 0 described; 20 not interpreted (foreign producer, unknown version);
30 damaged or malformed (the first problem is located); 2 unreadable path or usage error.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image (a legacy F, or a single file)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    try:
        image = read_image(args.image)
    except NotInterpretedError as exc:
        return _not_described(args, exc, EXIT_NOT_INTERPRETED, exc.ident)
    except ImageError as exc:
        if exc.finding.kind is not RuleKind.VALIDATION:
            raise
        return _not_described(args, exc, EXIT_INVALID, None)
    document = describe(image)
    if args.json:
        print_json(document)
    else:
        _print_human(document)
        print_findings(image.findings)
    errors = any(f.is_error and f.kind is RuleKind.VALIDATION for f in image.findings)
    return EXIT_INVALID if errors else EXIT_OK


def _not_described(args: argparse.Namespace, exc: ImageError, status: int,
                   ident: str | None) -> int:
    if args.json:
        print_json({"format": UNKNOWN_FORMAT, "ident": ident, "generation": None, "sections": [],
                    "config": None, "kernel": [], "devices": [], "producer": None,
                    "findings": [exc.finding.to_json()]})
    else:
        if ident is not None:
            print(f"format: {UNKNOWN_FORMAT}\nident:  {ident}")
        print_findings([exc.finding])
    return status


def _print_human(doc: dict[str, Any]) -> None:
    out = sys.stdout
    config = doc["config"]
    lines = [("format", doc["format"]), ("ident", doc["ident"] or "-"),
             ("generation", doc["generation"] or "mixed"),
             ("vm", f"{config['name']}: {config['cpus']} vCPUs, "
                    f"{config['memory_size']} bytes of memory ({doc['memory']['type']})")]
    if config["incomplete"]:
        lines.append(("config", "incomplete (built from legacy metadata alone)"))
    if doc["compat"]:
        features = ", ".join(doc["compat"]["features"]) or "none"
        lines.append(("compat", f"min_reader {doc['compat']['min_reader']}; features {features}"))
    memory = next((s for s in doc["sections"] if s["name"] == "memory"), None)
    if memory is not None and "base" in memory.get("attributes", {}):
        lines.append(("base", f"{memory['attributes']['base']} (memory "
                              f"{memory['attributes'].get('base_checksum', '?')})"))
    if doc["producer"]:
        producer = doc["producer"]
        lines.append(("producer", " ".join(str(v) for v in (
            producer["name"], producer["version"], producer["created"]) if v)))
    width = max(len(key) for key, _ in lines)
    for key, value in lines:
        out.write(f"{key:<{width}}  {value}\n")
    out.write("\n" + table(
        ((s["name"], s.get("file", ""), s["offset"], s["size"], s["type"], s["checksum"] or "")
         for s in doc["sections"]),
        ("section", "file", "offset", "size", "type", "checksum")) + "\n\n")
    out.write(table(
        [("kernel", e["name"], e["size"], e["generation"]) for e in doc["kernel"]]
        + [("device", e["name"], e["size"], e["generation"]) for e in doc["devices"]],
        ("kind", "name", "size", "generation")) + "\n")
