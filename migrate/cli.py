"""The ``bhyvesnap`` command line: a thin dispatcher over :mod:`migrate.commands`.

Only the module of the command being run is imported, so ``bhyvesnap info`` does not pay for
the gate's or the migration registry's imports (start-up cost is measured in ``bench/``).
Every command module exposes ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text with an
example), ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from migrate import __version__
from migrate.findings import BhyvesnapError
from migrate.verdicts import EXIT_USAGE

COMMANDS: dict[str, str] = {
    "info": "what an image is: format, IDENT, sections, state entries, config",
    "validate": "check an image's structure (and, with --verify, its checksums)",
    "check": "can a bhyve build restore this image, and if not, why and what to do",
    "migrate": "rewrite an image into another format, section by section",
    "targets": "list the bhyve builds (target profiles) the checker knows",
    "gate": "run the image x target matrix over a corpus for release gating",
    "corpus": "build the sample corpus of images",
    "registry": "inspect and lint the migration registry",
    "nvlist": "decode and encode FreeBSD libnv packed nvlists by hand",
}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"migrate.commands.{name}")


def _requested_command(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with full options only for the command named in ``argv``."""
    parser = argparse.ArgumentParser(
        prog="bhyvesnap",
        description="Keep bhyve snapshots usable across bhyve releases: inspect, validate, "
        "check restorability against a bhyve build, and migrate between formats.",
        epilog="Run 'bhyvesnap COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"bhyvesnap {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    requested = _requested_command(argv)
    for name, summary in COMMANDS.items():
        if name == requested:
            module = _command_module(name)
            child = sub.add_parser(name, help=summary, parents=[common],
                                   description=module.DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
            module.configure(child)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments).parse_args(arguments)
    try:
        status: int = _command_module(args.command).run(args)
    except BhyvesnapError as exc:
        print(f"bhyvesnap: {exc.finding.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bhyvesnap: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the one place that turns a bug into a report
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"bhyvesnap: internal error ({type(exc).__name__}: {exc}) [BHS-X005]; please "
              "report it with the command line (run again with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_USAGE
    return status


def entry_point() -> None:
    sys.exit(main())
