"""What every benchmark in ``bench/`` shares: child runs, alternation, medians, peak RSS,
free-disk checks, Markdown tables and image builders.

The rules the benchmarks follow (they are what makes their ratios comparable):

* **Like with like, in one process tree.** Each contender (the tool, and what a user would
  run instead) is a child process of the benchmark; they run alternately (A B, then B A, ...)
  so drift of the machine affects both, and the median of >= 5 runs is reported.
* **Same durability.** The tool fsyncs its outputs, so a ``cp`` baseline is followed by
  ``sync`` of the copied files, and both are timed. Before each run ``sync`` settles the
  dirty pages left by earlier runs (untimed), and the previous run's outputs are removed
  (untimed) so no run pays for freeing another's blocks.
* **A child's own peak RSS.** ``ru_maxrss`` of a child spawned from this process also counts
  this process's memory (Linux carries the pre-exec high-water mark across ``exec``, and
  ``vfork`` shares it). So when GNU time works, each child runs under ``time -f %M``, forked
  from a 2 MiB process: the figure is the child's own. Otherwise ``wait4``'s figure is
  reported, an upper bound, and the tables say so.
* **Warm cache.** The page cache is not dropped (that needs root): sources stay cached after
  they are built, for every contender alike. Times include process start-up.

Images are built with the package's own canonical writers (:func:`build_image`), from the
bundled corpus definition's specs, with guest memory written by :func:`write_memory`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from migrate import storage
from migrate.corpusgen import build_model, load_definition
from migrate.formats import output_paths, write_image

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
PAGE = 4096
REPO = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time"
MIN_RUNS = 5
"""Fewer runs than this and the median is noise; every benchmark refuses fewer."""

DATA_BLOCK = 64 * MIB
DATA_PER_BLOCK = 48 * MIB
"""A "data" memory has 48 MiB of data then a 16 MiB hole in every 64 MiB: mostly data, as a
busy guest's memory is, with holes that a hole-keeping copy must keep."""

SPECS = {"legacy-b": "legacy-b-server", "r1": "r1", "r2": "r2"}
"""The bundled corpus spec each benchmark image format is built from (devices, blob sizes,
config): only its memory size is changed."""


class BenchError(SystemExit):
    """A benchmark cannot go on (a child failed, an output is wrong): exits with the message."""


# --------------------------------------------------------------------------------------------
# children


@dataclass(frozen=True)
class ChildRun:
    """One finished child: wall seconds, peak RSS in KiB, and what it printed on stdout."""

    seconds: float
    peak_rss_kib: int
    stdout: str


@functools.lru_cache(maxsize=1)
def gnu_time_works() -> bool:
    """Whether ``/usr/bin/time -f %M -o FILE`` works here (GNU time; BSD time has no -f)."""
    if not os.access(GNU_TIME, os.X_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="bench-probe-") as folder:
        report = Path(folder) / "rss"
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(report), "true"],
                              capture_output=True, check=False)
        return done.returncode == 0 and report.read_text().strip().isdigit()


def rss_note() -> str:
    """One sentence saying how the peak-RSS figures of this run were measured."""
    if gnu_time_works():
        return ("peak RSS is each child's own high-water mark (GNU time's %M, from "
                "wait4 of the child it forks)")
    return ("peak RSS is wait4's ru_maxrss of the child, an upper bound that includes the "
            "benchmark process's own memory (GNU time is not installed)")


PYCACHE = Path(tempfile.gettempdir()) / f"bhyvesnap-bench-pycache-{os.getuid()}"
"""Where Python children keep compiled bytecode (``PYTHONPYCACHEPREFIX``)."""


def child_env() -> dict[str, str]:
    """The environment of every child: this checkout first on PYTHONPATH, and bytecode
    caching on (in :data:`PYCACHE`, not in the checkout) even where the caller's environment
    sets ``PYTHONDONTWRITEBYTECODE``: an installed package has compiled bytecode, and without
    it every start of the tool recompiles ~150 modules (~50 ms on this benchmark's machine).
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(PYCACHE), PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@contextlib.contextmanager
def pinned(cores: int | None) -> Iterator[None]:
    """Restrict this process to its first ``cores`` CPUs for the block, so that children
    started in it inherit the restriction (no ``preexec_fn``, which is unsafe with threads).
    ``None``, or a platform without affinity, changes nothing."""
    if cores is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(previous)[:cores])
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def run_child(argv: Sequence[str], *, cores: int | None = None,
              ok: Iterable[int] = (0,)) -> ChildRun:
    """Run ``argv`` to completion; return its wall time, own peak RSS and stdout.

    Stdout and stderr go to temporary files (no pipe can fill up and stall the child).
    An exit status outside ``ok`` raises :class:`BenchError` with the child's stderr.
    """
    command = list(argv)
    with tempfile.TemporaryDirectory(prefix="bench-child-") as folder:
        report = Path(folder) / "rss"
        measured = gnu_time_works()
        if measured:
            command = [GNU_TIME, "-f", "%M", "-o", str(report), *command]
        with open(Path(folder) / "out", "w+b") as out, open(Path(folder) / "err", "w+b") as err:
            with pinned(cores):
                start = time.perf_counter()
                child = subprocess.Popen(command, stdout=out, stderr=err, env=child_env())
            _, status, usage = os.wait4(child.pid, 0)
            elapsed = time.perf_counter() - start
            child.returncode = code = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            if code not in tuple(ok):
                raise BenchError(f"{' '.join(argv)} failed with status {code}:\n"
                                 + err.read().decode(errors="replace")[-4000:])
        rss = int(report.read_text().split()[-1]) if measured else int(usage.ru_maxrss)
    if sys.platform == "darwin" and not measured:
        rss //= KIB  # macOS reports bytes
    return ChildRun(elapsed, rss, stdout)


# --------------------------------------------------------------------------------------------
# contenders and alternation


@dataclass
class Contender:
    """One way of doing the measured operation, and what it measured.

    ``commands`` run one after the other as one timed operation (``cp`` then ``sync``): the
    time is their sum, the peak RSS their maximum. ``prepare`` runs untimed before each run
    (remove the previous outputs); ``check`` runs untimed after it, with the last command's
    stdout (verify the output, record a digest). An exit status outside ``ok`` stops the
    benchmark.
    """

    name: str
    commands: Sequence[Sequence[str]]
    prepare: Callable[[], None] | None = None
    check: Callable[[str], None] | None = None
    cores: int | None = None
    ok: tuple[int, ...] = (0,)
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / KIB

    def run_once(self, *, settle: bool = True) -> None:
        """One timed run; ``settle`` first flushes every dirty page of earlier runs."""
        if self.prepare is not None:
            self.prepare()
        if settle:
            os.sync()
        total = 0.0
        stdout = ""
        for argv in self.commands:
            done = run_child(argv, cores=self.cores, ok=self.ok)
            total += done.seconds
            self.peak_rss_kib = max(self.peak_rss_kib, done.peak_rss_kib)
            stdout = done.stdout
        self.seconds.append(total)
        if self.check is not None:
            self.check(stdout)


def run_alternating(contenders: Sequence[Contender], runs: int, *, settle: bool = True) -> None:
    """``runs`` rounds, each running every contender once, in reversed order every other
    round, so that neither always runs first (after the other's writeback, or cold)."""
    if runs < MIN_RUNS:
        raise ValueError(f"{runs} runs: at least {MIN_RUNS} are needed for a median")
    for round_number in range(runs):
        order = contenders if round_number % 2 == 0 else list(reversed(contenders))
        for contender in order:
            contender.run_once(settle=settle)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, infinite for a zero denominator (never a crash)."""
    return numerator / denominator if denominator > 0 else float("inf")


# --------------------------------------------------------------------------------------------
# disk space


def disk_shortfall(directory: Path | str, needed: int, what: str) -> str | None:
    """``None`` when ``directory`` has ``needed`` bytes free, else the skip message to print."""
    free = shutil.disk_usage(directory).free
    if free >= needed:
        return None
    return (f"skipped {what}: {directory} has {free / GIB:.1f} GiB free, "
            f"{needed / GIB:.1f} GiB are needed")


def holes_supported(directory: Path) -> bool:
    """Whether a 64 MiB file with three data pages takes (much) less than 64 MiB on disk."""
    probe = directory / ".bench-hole-probe"
    try:
        write_memory(probe, 64 * MIB, data=False)
        return os.stat(probe).st_blocks * 512 < 8 * MIB
    finally:
        probe.unlink(missing_ok=True)


def on_disk(path: Path | str) -> int:
    """Bytes ``path`` actually occupies (allocated blocks), holes excluded."""
    return os.stat(path).st_blocks * 512


# --------------------------------------------------------------------------------------------
# Markdown


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                   numeric: Sequence[bool] | None = None) -> str:
    """A GitHub Markdown table; ``numeric`` columns are right-aligned. ``|`` in a cell is
    escaped so that a command line cannot break the table."""
    right = list(numeric) if numeric is not None else [False] * len(headers)
    if len(right) != len(headers):
        raise ValueError("numeric must have one flag per header")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if flag else "---" for flag in right) + "|"]
    for row in rows:
        cells = [str(cell).replace("|", "\\|") for cell in row]
        if len(cells) != len(headers):
            raise ValueError(f"row {cells} has {len(cells)} cells, not {len(headers)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def size_label(size: int) -> str:
    """``4 GiB``, ``512 MiB``, ``4 KiB``: the largest binary unit that divides ``size``."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size} B"


# --------------------------------------------------------------------------------------------
# images


def write_memory(path: Path, size: int, *, data: bool) -> None:
    """A guest-memory file of ``size`` bytes.

    ``data``: in every 64 MiB, 48 MiB of random bytes (nothing compresses or is all zero)
    then a 16 MiB hole. Otherwise sparse: one data page at the start, middle and end, holes
    between (the cost of ``info``/``check`` must not depend on the size). Fsynced, so the
    benchmark that follows does not pay for its writeback.
    """
    with open(path, "wb") as handle:
        if data:
            chunk = os.urandom(4 * MIB)
            for block in range(0, size, DATA_BLOCK):
                stop = min(block + DATA_PER_BLOCK, size)
                handle.seek(block)
                for offset in range(block, stop, len(chunk)):
                    handle.write(chunk[:stop - offset])
        else:
            for offset in sorted({0, size // 2 // PAGE * PAGE, max(0, size - PAGE)}):
                handle.seek(offset)
                handle.write(os.urandom(min(PAGE, size - offset)))
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def build_image(directory: Path, image_format: str, memory: Path, name: str) -> list[Path]:
    """Write a ``legacy-b``, ``r1`` or ``r2`` image of the guest memory in ``memory`` as
    ``directory/name`` with the package's canonical writer; return its files (a legacy
    image's memory file ``F`` first). The spec (devices, blob sizes, config) is the bundled
    corpus's (:data:`SPECS`); an r2 writer hashes the memory while copying it.
    """
    if image_format not in SPECS:
        raise ValueError(f"no benchmark image of format {image_format!r}")
    size = os.path.getsize(memory)
    definition = load_definition()
    spec = dataclasses.replace(definition.spec(SPECS[image_format]), name="bench", memory=size)
    model = build_model(spec, definition, str(memory))
    finals = output_paths(model.format, str(directory / name))
    with storage.AtomicOutputs(finals, force=True) as out:
        write_image(model, out.temps)
        out.commit()
    return [Path(path) for path in finals]


def build_images(directory: Path, size: int, formats: Iterable[str], *,
                 data: bool) -> dict[str, list[Path]]:
    """One image per format in ``formats``, all of the same ``size``-byte guest memory
    (:func:`write_memory`), named ``<format>-<size>``; the memory file is removed after."""
    memory = directory / f"memory-{size}.raw"
    write_memory(memory, size, data=data)
    try:
        return {image_format: build_image(directory, image_format, memory,
                                          f"{image_format}-{size}" + (
                                              ".ckp" if image_format == "legacy-b" else ".bhyve"))
                for image_format in formats}
    finally:
        memory.unlink()


def remove(paths: Iterable[Path | str]) -> None:
    """Delete the files that exist among ``paths``."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def sized_parser(description: str, default_gib: float) -> argparse.ArgumentParser:
    """The options every sized benchmark takes: ``--size-gib``, ``--runs``, ``--dir``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size-gib", type=float, default=default_gib,
                        help=f"guest memory size in GiB (default {default_gib:g})")
    parser.add_argument("--runs", type=int, default=MIN_RUNS,
                        help=f"runs per contender (default and minimum {MIN_RUNS})")
    parser.add_argument("--dir", default=None,
                        help="where to create the files (default: the temporary directory)")
    return parser


def sized_arguments(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, int]:
    """The parsed options and the memory size (a multiple of 4 MiB, at least 4 MiB)."""
    args = parser.parse_args()
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS} (the median of fewer is noise)")
    return args, max(int(args.size_gib * GIB) // (4 * MIB) * (4 * MIB), 4 * MIB)


@contextlib.contextmanager
def workspace(base: str | None, needed: int, what: str, prefix: str) -> Iterator[Path | None]:
    """A scratch directory removed afterwards, or ``None`` (the skip message printed) when
    ``base`` lacks ``needed`` free bytes."""
    skip = disk_shortfall(base or tempfile.gettempdir(), needed, what)
    if skip:
        print(skip)
        yield None
        return
    work = scratch_dir(base, prefix)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scratch_dir(base: str | None, prefix: str) -> Path:
    """A fresh private directory under ``base`` (default: the temporary directory)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def python_m_migrate(*args: str) -> list[str]:
    """The command line running this checkout's ``bhyvesnap`` with ``args``."""
    return [sys.executable, "-m", "migrate", *args]
