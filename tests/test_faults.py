"""Fault injection on ``bhyvesnap migrate`` (issue 7, part 3).

Whatever goes wrong (the process killed at a random moment, the disk full, the source cut
short while it is read, an output path that is a link or an existing file) the source keeps
every byte, nothing appears under the output's name (after SIGKILL, only hidden temporaries
that :func:`migrate.storage.stale_temps` recognises may remain), and the user gets one
clear line naming the rule.

The SIGKILL campaign runs the real CLI in child processes on a 256 MiB sparse legacy-b image
with 1 MiB data extents, killing each at a seeded random moment of a run whose length is
measured first; the child's wrapper (test code, never the tool) only slows each kernel copy
and read call a little so that the moments spread over reading, hashing, copying, flushing,
verifying and renaming. Disk-full and truncation faults are injected in-process by wrapping
the ``os`` calls the tool writes and reads through; a real full file system is a small tmpfs
when this machine lets a root test mount one (skipped otherwise). The one-off kill points
are tests/test_migration_kill.py's.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult
from legacy_factory import LegacyFiles, build_legacy
from sparse_files import data_runs

from migrate.formats import read_image
from migrate.storage import stale_temps

MIB = 1 << 20
MEMSIZE = 256 * MIB
EXTENTS = tuple(range(0, MEMSIZE, 16 * MIB))
"""A 1 MiB data extent every 16 MiB of guest memory; holes between."""
TRIALS = 20
SEED = 20240607

CHILD = """
import os, sys, time
real_copy, real_preadv = os.copy_file_range, os.preadv

def slow_copy(*args):
    time.sleep(0.03)
    return real_copy(*args)

def slow_preadv(*args):
    time.sleep(0.02)
    return real_preadv(*args)

os.copy_file_range, os.preadv = slow_copy, slow_preadv
from migrate.cli import main
sys.exit(main(sys.argv[1:]))
"""

Run = Callable[..., CliResult]


# --------------------------------------------------------------------------------------------
# helpers


def fingerprint(path: Path) -> tuple[int, int, str]:
    """Size, mtime and a hash of every data extent with its offset: the whole content
    (holes read as zeros) without reading hundreds of MiB of holes."""
    digest = hashlib.sha256()
    info = os.stat(path)
    with open(path, "rb") as handle:
        for start, stop in data_runs(path):
            digest.update(start.to_bytes(8, "little"))
            for offset in range(start, stop, MIB):
                handle.seek(offset)
                chunk = handle.read(min(MIB, stop - offset))
                digest.update(chunk.rstrip(b"\0"))  # zeros in a data run equal a hole's
    return info.st_size, info.st_mtime_ns, digest.hexdigest()


def fingerprints(files: LegacyFiles) -> list[tuple[int, int, str]]:
    return [fingerprint(path) for path in files.paths]


def build_source(directory: Path, memsize: int = MEMSIZE) -> LegacyFiles:
    files = build_legacy(directory, "legacy-b", memsize=memsize)
    with open(files.memory, "r+b") as handle:
        for offset in range(0, memsize, 16 * MIB):
            handle.seek(offset)
            handle.write(hashlib.sha256(str(offset).encode()).digest() * (MIB // 32))
    return files


def one_error_line(stderr: str, *rules: str) -> str:
    """The single line of ``stderr`` that reports an error; it must carry one of ``rules``."""
    lines = [line for line in stderr.splitlines()
             if line.startswith(("error:", "bhyvesnap:"))]
    assert len(lines) == 1, stderr
    assert lines[0].endswith(tuple(f"[{rule}]" for rule in rules)), lines[0]
    return lines[0]


def leftovers(directory: Path, keep: set[str]) -> set[str]:
    return set(os.listdir(directory)) - keep


# --------------------------------------------------------------------------------------------
# SIGKILL at random moments


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> LegacyFiles:
    files = build_source(tmp_path_factory.mktemp("kill-source"))
    if os.stat(files.memory).st_blocks * 512 > MEMSIZE // 4:
        pytest.skip("the file system does not keep holes")
    return files


def start(source: LegacyFiles, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, "migrate", str(source.memory),
                             "--to", "r2", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def content(path: Path) -> tuple[int, str]:
    size, _, digest = fingerprint(path)
    return size, digest


@pytest.mark.slow
def test_sigkill_at_random_moments(big_source: LegacyFiles, tmp_path: Path) -> None:
    """At least :data:`TRIALS` kills at seeded random moments of a measured run: each leaves
    the source as it was and, under the output's name, nothing, or (killed after the rename,
    while exiting) the complete image; never a part of one."""
    before = fingerprints(big_source)
    control = tmp_path / "control" / "vm.bhyve"
    control.parent.mkdir()
    began = time.monotonic()
    child = start(big_source, control)
    _, stderr = child.communicate(timeout=120)
    length = time.monotonic() - began
    assert child.returncode == 0, stderr.decode()
    assert read_image(str(control)).format == "r2"
    complete = content(control)

    rng = random.Random(SEED)
    moments = sorted(rng.uniform(0.0, 0.9 * length) for _ in range(TRIALS + 4))
    outcomes: dict[str, int] = {"killed, nothing left": 0, "killed, temporaries left": 0,
                                "killed, image complete": 0, "finished first": 0}
    for trial, moment in enumerate(moments):
        directory = tmp_path / f"trial{trial}"
        directory.mkdir()
        out = directory / "vm.bhyve"
        child = start(big_source, out)
        try:
            time.sleep(moment)
            child.send_signal(signal.SIGKILL)
            status = child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            assert child.stderr is not None
            child.stderr.close()
        where = f"trial {trial}, killed {moment:.3f} s into a {length:.3f} s run"
        temps = {os.path.basename(temp) for temp in stale_temps(str(directory))}
        if out.exists():
            assert content(out) == complete, where
            assert read_image(str(out)).format == "r2", where
            temps.add(out.name)
        assert leftovers(directory, set()) == temps, where
        if status != -signal.SIGKILL:
            assert status == 0, where
            outcomes["finished first"] += 1
        elif out.exists():
            outcomes["killed, image complete"] += 1
        else:
            outcomes["killed, temporaries left" if temps else "killed, nothing left"] += 1
    print(f"SIGKILL campaign over a {length:.2f} s run: {outcomes}")
    assert len(moments) - outcomes["finished first"] >= TRIALS, outcomes
    assert outcomes["killed, temporaries left"] > 0, outcomes  # some kills hit the writing
    assert fingerprints(big_source) == before


# --------------------------------------------------------------------------------------------
# a full disk


@pytest.fixture
def small_source(tmp_path: Path) -> LegacyFiles:
    return build_source(tmp_path / "src", memsize=32 * MIB)


def enospc_after(calls: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A wrapper factory: the wrapped call works ``calls`` times, then fails with ENOSPC."""
    count = {"n": 0}

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def failing(*args: Any, **kwargs: Any) -> Any:
            count["n"] += 1
            if count["n"] > calls:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)
        return failing
    return wrap


KERNEL_COPIES = ("copy_file_range", "sendfile", "pwrite")
"""Every call guest memory can be written with (the kernel copies and their fallback)."""


@pytest.mark.parametrize(("target", "calls", "after"), [
    ("r2", KERNEL_COPIES, 0),  # nothing can be written at all
    ("r2", KERNEL_COPIES, 1),  # full in the middle of guest memory
    ("r2", ("pwrite",), 0),  # memory is copied, then the header write fails
    ("r2", ("fsync",), 0),  # the file system reports the full disk at the flush
    ("legacy-b", KERNEL_COPIES, 0),
    ("legacy-b", KERNEL_COPIES, 2),  # F.kern written, F full in the middle
    ("legacy-b", ("fsync",), 1),
])
def test_full_disk(run_cli: Run, small_source: LegacyFiles, tmp_path: Path, *,
                   monkeypatch: pytest.MonkeyPatch, target: str, calls: tuple[str, ...],
                   after: int) -> None:
    before = fingerprints(small_source)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "vm.out"
    with monkeypatch.context() as patch:
        for name in calls:
            patch.setattr(os, name, enospc_after(after)(getattr(os, name)))
        result = run_cli("migrate", str(small_source.memory), "--to", target, "-o", str(out))
    assert result.status == 1, result.stderr
    line = one_error_line(result.stderr, "BHS-M006")
    assert "No space left on device" in line
    assert str(out) in line
    assert leftovers(out_dir, set()) == set()
    assert fingerprints(small_source) == before
    # the control: unwrapped, the same migration succeeds
    assert run_cli("migrate", str(small_source.memory), "--to", target, "-o",
                   str(out)).status == 0


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, when this process may mount one (root on Linux); skipped otherwise."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_real_full_file_system(run_cli: Run, small_source: LegacyFiles,
                               tiny_tmpfs: Path) -> None:
    """The 2 MiB of data extents cannot fit the 1 MiB a filler leaves free: the kernel copy
    (sendfile across file systems) fails for real, and nothing is left behind."""
    before = fingerprints(small_source)
    filler = tiny_tmpfs / "filler"
    filler.write_bytes(b"\xff" * (3 * MIB))  # leave less room than the data extents need
    out = tiny_tmpfs / "vm.bhyve"
    result = run_cli("migrate", str(small_source.memory), "--to", "r2", "-o", str(out))
    assert result.status == 1, result.stderr
    line = one_error_line(result.stderr, "BHS-M006")
    assert "No space left on device" in line
    assert leftovers(tiny_tmpfs, {"filler"}) == set()
    assert fingerprints(small_source) == before


# --------------------------------------------------------------------------------------------
# the source cut short while it is read


@pytest.mark.parametrize("call", ["preadv", "copy_file_range"])
def test_source_truncated_while_read(run_cli: Run, small_source: LegacyFiles, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    """Another process truncates guest memory when the migration first hashes (``preadv``)
    or copies (``copy_file_range``) it: refused, naming the source, nothing written, and
    the source exactly as the other process left it. The r2 writer hashes while it copies;
    whichever notices first, the migration fails the same way (BHS-M006, exit 1)."""
    memory = small_source.memory
    real = getattr(os, call)
    cut: dict[str, Any] = {}

    def truncating(*args: Any) -> Any:
        if not cut:
            os.truncate(memory, 8 * MIB + 100)
            cut["after"] = fingerprint(memory)
        return real(*args)

    monkeypatch.setattr(os, call, truncating)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run_cli("migrate", str(memory), "--to", "r2", "-o", str(out_dir / "vm.bhyve"))
    assert cut, f"{call} was never called"
    assert result.status == 1, result.stderr
    line = one_error_line(result.stderr, "BHS-M006")
    assert str(memory) in line
    assert "truncated or shrank" in line
    assert leftovers(out_dir, set()) == set()
    assert fingerprint(memory) == cut["after"]


# --------------------------------------------------------------------------------------------
# output paths that must not be written through


def test_output_symlink_is_refused_even_with_force(run_cli: Run, small_source: LegacyFiles,
                                                   tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    dangling = tmp_path / "dangling.bhyve"
    dangling.symlink_to(tmp_path / "nowhere")
    linked = tmp_path / "linked.bhyve"
    linked.symlink_to(victim)
    before = fingerprints(small_source)
    for out in (dangling, linked):
        for force in ((), ("--force",)):
            result = run_cli("migrate", str(small_source.memory), "--to", "r2", "-o",
                             str(out), *force)
            assert result.status == 1, result.stderr
            line = one_error_line(result.stderr, "BHS-M004")
            assert "symbolic link" in line
            assert out.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "nowhere").exists()
    assert fingerprints(small_source) == before
    assert stale_temps(str(tmp_path)) == []


def test_existing_output_needs_force(run_cli: Run, small_source: LegacyFiles,
                                     tmp_path: Path) -> None:
    out = tmp_path / "vm.bhyve"
    out.write_bytes(b"an older file")
    before = fingerprints(small_source)
    refused = run_cli("migrate", str(small_source.memory), "--to", "r2", "-o", str(out))
    assert refused.status == 1
    assert "already exists" in one_error_line(refused.stderr, "BHS-M004")
    assert out.read_bytes() == b"an older file"
    forced = run_cli("migrate", str(small_source.memory), "--to", "r2", "-o", str(out),
                     "--force")
    assert forced.status == 0, forced.stderr
    assert read_image(str(out)).format == "r2"
    assert fingerprints(small_source) == before
    assert stale_temps(str(tmp_path)) == []


def test_output_directory_is_refused(run_cli: Run, small_source: LegacyFiles,
                                     tmp_path: Path) -> None:
    out = tmp_path / "vm.bhyve"
    out.mkdir()
    result = run_cli("migrate", str(small_source.memory), "--to", "r2", "-o", str(out),
                     "--force")
    assert result.status == 1
    assert "is a directory" in one_error_line(result.stderr, "BHS-M004")
    assert os.listdir(out) == []
