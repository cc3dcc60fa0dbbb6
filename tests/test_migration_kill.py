"""SIGKILL in the middle of ``bhyvesnap migrate``: the source is untouched, OUT never appears.

SIGKILL cannot be caught, so this is the case where nothing cleans up: only the write order
(hidden temporaries, rename last) protects the user. The child runs the real CLI on a 1 GiB
sparse legacy-b image with some data extents; the test's own wrapper (never the tool) slows
the memory copy and the post-fsync moment a little and announces them on stderr, so the kills
land where they are meant to: during start-up, while reading and hashing the source, during
the copy, and after the temporaries were flushed but before the rename.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from legacy_factory import LegacyFiles, build_legacy

from migrate.formats import read_image
from migrate.storage import stale_temps

MEMSIZE = 1 << 30
CHUNK = 1 << 20
DATA_OFFSETS = tuple(range(0, MEMSIZE, 32 * CHUNK))
"""A 1 MiB data extent every 32 MiB; the rest of guest memory is holes."""

CHILD = """
import sys, time
from migrate import migration, storage
from migrate.cli import main

real_copy = storage.copy_range
real_fsync = migration.fsync_file

def slow_copy(*args, **kwargs):
    print("COPYING", file=sys.stderr, flush=True)
    time.sleep(0.3)
    return real_copy(*args, **kwargs)

def slow_fsync(path):
    real_fsync(path)
    print("FSYNCED", file=sys.stderr, flush=True)
    time.sleep(0.3)

storage.copy_range = slow_copy
migration.fsync_file = slow_fsync
sys.exit(main(sys.argv[1:]))
"""


def build_source(directory: Path) -> LegacyFiles:
    files = build_legacy(directory, "legacy-b", memsize=MEMSIZE)
    with open(files.memory, "r+b") as handle:
        for offset in DATA_OFFSETS:
            handle.seek(offset)
            handle.write(hashlib.sha256(str(offset).encode()).digest() * (CHUNK // 32))
    return files


def fingerprint(files: LegacyFiles) -> tuple[object, ...]:
    """Sizes, mtimes, the data extents of memory and the whole of F.kern and F.meta."""
    digest = hashlib.sha256()
    with open(files.memory, "rb") as handle:
        for offset in DATA_OFFSETS:
            handle.seek(offset)
            digest.update(handle.read(CHUNK))
    stats = [os.stat(path) for path in files.paths]
    return (tuple((s.st_size, s.st_mtime_ns) for s in stats), digest.hexdigest(),
            files.kern.read_bytes(), files.meta.read_bytes())


def start(source: LegacyFiles, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, "migrate", str(source.memory), "--to", "r2", "-o",
         str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(child: subprocess.Popen[str], marker: str) -> None:
    assert child.stderr is not None
    for line in child.stderr:
        if line.strip() == marker:
            return
    raise AssertionError(f"the child ended before printing {marker}")


@pytest.mark.parametrize("moment", ["0.05s", "0.3s", "COPYING", "FSYNCED"])
def test_sigkill_leaves_source_unchanged_and_no_output(tmp_path: Path, moment: str) -> None:
    source = build_source(tmp_path)
    if os.stat(source.memory).st_blocks * 512 > MEMSIZE // 4:
        pytest.skip("the file system does not keep holes")
    before = fingerprint(source)
    out = tmp_path / "vm.bhyve"
    child = start(source, out)
    try:
        if moment.endswith("s"):
            time.sleep(float(moment[:-1]))
        else:
            wait_for(child, moment)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL  # killed, not finished
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr is not None:
            child.stderr.close()
    assert fingerprint(source) == before
    assert not out.exists()
    leftovers = set(os.listdir(tmp_path)) - {path.name for path in source.paths}
    assert leftovers == {os.path.basename(temp) for temp in stale_temps(str(tmp_path))}


def test_same_child_unkilled_completes(tmp_path: Path) -> None:
    """The control: the wrapper does not break the migration, so the kills above interrupt
    a run that would have succeeded."""
    source = build_source(tmp_path)
    out = tmp_path / "vm.bhyve"
    child = start(source, out)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert "COPYING" in stderr
    assert "FSYNCED" in stderr
    assert read_image(str(out)).format == "r2"
    assert stale_temps(str(tmp_path)) == []
