"""The runner shared by the fuzz targets ``bench/fuzz_*.py`` (run by hand, not in CI).

Each target hands :func:`main` a one-input function that feeds bytes to one reader and lets
only :class:`~migrate.findings.BhyvesnapError` pass; anything else escaping it is a crash.
With `atheris <https://pypi.org/project/atheris/>`_ installed (``pip install atheris``), the
loaded code is instrumented and libFuzzer drives coverage-guided mutation, with a memory
limit (``-rss_limit_mb``) and a per-input time limit (``-timeout``) set unless given. Without
it, a plain seeded random-mutation loop runs instead (no coverage guidance), with the same
verdicts: an exception other than BhyvesnapError, an input slower than the time limit, or a
peak RSS above the memory limit is saved as ``crash-<sha1>`` and stops the run (exit 1).

Both understand ``-atheris_runs=N`` (inputs to run), ``-seed=N``, ``-timeout=S`` and
``-rss_limit_mb=M``; the fallback also ``-max_total_time=S``.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

OneInput = Callable[[bytes], None]

DEFAULT_TIMEOUT = 10
"""Seconds one input may take before it counts as a hang (every reader answers in ms)."""
DEFAULT_RSS_LIMIT_MB = 512
"""Peak resident memory, in MiB, above which an input counts as a huge allocation."""

_INTERESTING = (0, 1, 0x13, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 2**31 - 1, 2**31,
                2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
"""Sizes, counts and offsets at the edges of the field widths the formats use."""
_WORD = {2: "H", 4: "I", 8: "Q"}


def scratch_dir() -> Path:
    """A directory for the files a target writes, on tmpfs when there is one; removed at
    exit."""
    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(prefix="bhyvesnap-fuzz-",
                                 dir=str(shm) if shm.is_dir() else None))
    atexit.register(shutil.rmtree, path, True)
    return path


def tests_on_path() -> None:
    """Make the test suite's image builders importable (seeds are built with them)."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def _flag(argv: Sequence[str], name: str) -> str | None:
    for arg in argv:
        if arg.startswith(f"-{name}="):
            return arg.split("=", 1)[1]
    return None


def main(name: str, one_input: OneInput, seeds: Sequence[bytes],
         argv: Sequence[str] | None = None) -> int:
    """Fuzz ``one_input`` from ``seeds`` with atheris if installed, else the fallback loop."""
    args = list(sys.argv if argv is None else argv)
    try:
        atheris: Any = importlib.import_module("atheris")
    except ImportError:
        print(f"{name}: atheris is not installed (pip install atheris, which needs a "
              "manylinux wheel or clang with libFuzzer); running the plain random-mutation "
              "loop instead (no coverage guidance)", file=sys.stderr)
        return _fallback(name, one_input, seeds, args)
    return _atheris(atheris, one_input, seeds, args)


def _atheris(atheris: Any, one_input: OneInput, seeds: Sequence[bytes],
             args: list[str]) -> int:
    if _flag(args, "timeout") is None:
        args.append(f"-timeout={DEFAULT_TIMEOUT}")
    if _flag(args, "rss_limit_mb") is None:
        args.append(f"-rss_limit_mb={DEFAULT_RSS_LIMIT_MB}")
    if not any(not arg.startswith("-") for arg in args[1:]):
        corpus = scratch_dir() / "corpus"  # libFuzzer adds what it finds to the first dir
        corpus.mkdir()
        for seed in seeds:
            (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        args.append(str(corpus))
    atheris.instrument_all()
    atheris.Setup(args, one_input)
    atheris.Fuzz()
    return 0


class _Hang(Exception):
    """Raised by the alarm when one input runs past the time limit."""


def _on_alarm(signo: int, frame: FrameType | None) -> None:
    raise _Hang


def mutate(data: bytes, rng: random.Random, seeds: Sequence[bytes]) -> bytes:
    """One to four random edits of ``data`` (the fallback's only source of new inputs)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out)) if out else 0
        how = rng.randrange(8)
        if how == 0 and out:
            out[at] ^= 1 << rng.randrange(8)
        elif how == 1 and out:
            out[at] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif how == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        elif how == 3:
            del out[at:at + rng.randint(1, 64)]
        elif how == 4:  # a size, count or offset field made extreme
            width = rng.choice((2, 4, 8))
            value = rng.choice(_INTERESTING) & ((1 << (8 * width)) - 1)
            order = rng.choice("<>")
            if at + width <= len(out):
                out[at:at + width] = struct.pack(order + _WORD[width], value)
        elif how == 5:
            del out[at:]
        elif how == 6 and out:  # repeat a chunk (nesting, repeated pairs)
            chunk = out[at:at + rng.randint(1, 64)]
            out[at:at] = chunk * rng.randint(1, 8)
        else:  # splice the tail of another seed
            other = rng.choice(seeds)
            out[at:] = other[rng.randrange(len(other)) if other else 0:]
    return bytes(out)


def _fallback(name: str, one_input: OneInput, seeds: Sequence[bytes], args: list[str]) -> int:
    runs = int(_flag(args, "atheris_runs") or _flag(args, "runs") or 100_000)
    seed = int(_flag(args, "seed") or 0)
    timeout = int(_flag(args, "timeout") or DEFAULT_TIMEOUT)
    rss_limit = int(_flag(args, "rss_limit_mb") or DEFAULT_RSS_LIMIT_MB)
    total_time = float(_flag(args, "max_total_time") or 0) or None
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _on_alarm)
    started = time.monotonic()
    slowest = 0.0
    done = 0
    for done in range(1, runs + 1):
        data = seeds[done - 1] if done <= len(seeds) else mutate(rng.choice(seeds), rng, seeds)
        began = time.monotonic()
        signal.alarm(timeout)
        try:
            one_input(data)
        except _Hang:
            return _crash(name, data, f"input ran longer than {timeout} s (a hang)")
        except Exception:
            return _crash(name, data, traceback.format_exc())
        finally:
            signal.alarm(0)
        slowest = max(slowest, time.monotonic() - began)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if peak > rss_limit:
            return _crash(name, data, f"peak RSS {peak:.0f} MiB exceeds {rss_limit} MiB")
        if total_time is not None and time.monotonic() - started > total_time:
            break
        if done % 50_000 == 0:
            print(f"{name}: {done} runs, {time.monotonic() - started:.0f} s", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name}: Done {done} runs in {time.monotonic() - started:.0f} s (fallback loop, "
          f"seed {seed}): no crash; slowest input {slowest * 1000:.1f} ms, peak RSS "
          f"{peak:.0f} MiB", file=sys.stderr)
    return 0


def _crash(name: str, data: bytes, why: str) -> int:
    path = Path(f"crash-{hashlib.sha1(data).hexdigest()}")
    path.write_bytes(data)
    print(f"{name}: CRASH, input saved as {path}:\n{why}", file=sys.stderr)
    return 1
