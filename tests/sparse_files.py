"""Reading a file's layout as the file system reports it, for tests of hole keeping.

Written independently of ``migrate.storage`` (which walks extents too), so a test that
compares a copy's layout with its source's does not check the code with itself.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

Layout = list[tuple[int, int]]


def data_runs(path: Path | str) -> Layout:
    """The file's data runs ``(start, stop)``: everything else is a hole."""
    runs: Layout = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            runs.append((start, stop))
            pos = stop
    finally:
        os.close(fd)
    return runs
