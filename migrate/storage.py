"""Safe output: temporary names, fsync, rename, hole-keeping copies and streamed hashing.

A snapshot holds a running machine's memory: tens of GiB, usually sparse, and the only copy.
So this module follows three rules:

* **Never expose a half-written output.** Every output is written under a hidden temporary
  name in its destination directory (:class:`AtomicOutputs`), fsynced, and renamed into place
  only on :meth:`AtomicOutputs.commit`; an exception, SIGINT, SIGTERM or SIGHUP removes the
  temporaries instead. A SIGKILL cannot be caught, so temporary names are recognisable and
  :func:`stale_temps` finds them.
* **Never load guest memory.** :func:`copy_range` lets the kernel copy
  (``copy_file_range``, then ``sendfile``, then a bounded ``pread``/``pwrite`` loop) and walks
  the source with ``SEEK_DATA``/``SEEK_HOLE`` so that holes stay holes: a sparse 32 GiB guest
  stays a few GiB on disk. :func:`hash_range` streams through one reused buffer.
* **Never copy short silently.** A source that is shorter than the range it claims (truncated
  before or during the copy) is an error naming the file and the byte where it ends.

Inputs are always opened read-only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import re
import secrets
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any, TextIO

from migrate.findings import ImageError, UsageError, error
from migrate.image import FileRange, Memory, memory_pieces

KERNEL_CHUNK = 64 * 1024 * 1024
"""Bytes per ``copy_file_range``/``sendfile`` call: large enough to be cheap, small enough for
the progress bar and for a signal to be handled within a fraction of a second."""

BUFFER_CHUNK = 1024 * 1024
"""Bytes per ``pread``/``pwrite`` (fallback copy, zero filling) and per hash read: the
memory bound of every streamed operation."""

PAGE = 4096
"""Size of the all-zero pages the fallback copy may leave as holes (FORMAT.md 3.2, the
``memory`` section: writers may leave all-zero 4 KiB pages as holes)."""

PROGRESS_THRESHOLD = 256 * 1024 * 1024
"""Totals above this many bytes get a progress bar (when stderr is a terminal)."""

_ZERO_PAGE = bytes(PAGE)

_FALLBACK_ERRNOS = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP,
                               errno.EINVAL, errno.ENOTSOCK})
"""Errors that mean "this copy method does not work for these files", not "the copy failed":
``copy_file_range`` across file systems (EXDEV) or on an old kernel (ENOSYS), ``sendfile``
to a regular file on FreeBSD (ENOTSOCK), file systems that support neither (EINVAL,
EOPNOTSUPP)."""

_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})
"""Errors of a write that :class:`AtomicOutputs` turns into BHS-M006 when a writer lets them
escape its block unwrapped."""

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that interrupt a write: Ctrl-C, kill/shutdown, a closed terminal."""

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers
"""A Python-level signal disposition (what ``signal.getsignal`` returns, less ``None``)."""

_TEMP_SUFFIX = ".bhyvesnap-"
_TEMP_PATTERN = re.compile(r"^\..+\.bhyvesnap-[0-9a-f]{16}\.tmp$")
_MAX_NAME_STEM = 200
"""Longest final base name kept in a temporary name, so that the temporary name stays below
NAME_MAX (255) whatever the final name."""

_FD_NAMES: dict[int, str] = {}
"""Descriptors handed out by :meth:`AtomicOutputs.fd`, mapped to their final path, so that an
error inside :func:`copy_range` or :func:`write_bytes_at` names the output the user asked for
(not a descriptor number, not a hidden temporary name)."""

_TEMP_NAMES: dict[str, str] = {}
"""Absolute path of every live temporary file, mapped to its final path (same purpose)."""


# --------------------------------------------------------------------------------------------
# progress


class Progress:
    """A progress bar on a terminal's stderr for long copies and hashes; silent otherwise.

    It only draws when the total exceeds :data:`PROGRESS_THRESHOLD` and the stream is a
    terminal, so scripts, ``--json`` runs, tests and small images print nothing. Redraws are
    limited to ten a second so that a fast copy does not spend its time drawing.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._stream = sys.stderr if stream is None else stream
        self.enabled = total > PROGRESS_THRESHOLD and _is_terminal(self._stream)
        self._last_draw = 0.0
        self._closed = False

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes done (holes included) and redraw if it is time to."""
        self.done += n
        if self.enabled and not self._closed:
            now = time.monotonic()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self._draw()

    def close(self) -> None:
        """Draw the final state and end the line; further calls do nothing."""
        if self.enabled and not self._closed:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()
        self._closed = True

    def _draw(self) -> None:
        percent = 100.0 * self.done / self.total if self.total else 100.0
        gib = 1024.0**3
        self._stream.write(f"\r{self.label}: {percent:5.1f}% "
                           f"({self.done / gib:.2f} of {self.total / gib:.2f} GiB)")
        self._stream.flush()


@functools.lru_cache(maxsize=1)
def _zero_block(size: int) -> memoryview:
    """A read-only block of zeros for holes, allocated on first use (not at import: most
    commands import this module without copying anything)."""
    return memoryview(bytes(size))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # a closed or detached stream is not a terminal
        return False


# --------------------------------------------------------------------------------------------
# extents


def _extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """Split ``[start, end)`` of ``fd`` into ``(begin, stop, is_data)`` runs.

    Holes are found with ``SEEK_DATA``/``SEEK_HOLE``; where the file system (or the platform)
    cannot answer, everything is reported as data, which is always correct, just not sparse.
    ``SEEK_DATA`` failing with ENXIO means "no data from here to the end of the file": the
    rest is reported as a hole, so callers must check the file's size themselves. Moves the
    descriptor's file position.
    """
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        if start < end:
            yield start, end, True
        return
    pos = start
    while pos < end:
        try:
            data = min(os.lseek(fd, pos, seek_data), end)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                data = end
            elif exc.errno in _FALLBACK_ERRNOS:
                yield pos, end, True
                return
            else:
                raise
        if data > pos:
            yield pos, data, False
            pos = data
            continue
        try:
            hole = min(os.lseek(fd, pos, seek_hole), end)
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS and exc.errno != errno.ENXIO:
                raise
            hole = end  # the file shrank under us: a data run lets the read notice it
        if hole <= pos:
            hole = end
        yield pos, hole, True
        pos = hole


# --------------------------------------------------------------------------------------------
# copying


def _describe_fd(fd: int) -> str:
    """The final path an output descriptor stands for, as well as it can be found out."""
    if fd in _FD_NAMES:
        return _FD_NAMES[fd]
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no procfs (FreeBSD without linprocfs)
        return f"file descriptor {fd}"
    return _TEMP_NAMES.get(target, target)


def _write_failed(fd: int, offset: int, exc: OSError, what: str) -> ImageError:
    output = _describe_fd(fd)
    return ImageError(error(
        "BHS-M006", output, offset,
        f"{what} failed: {exc.strerror or exc}",
        "free space on the destination file system (or fix its permissions) and run again"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM) else None,
    ))


def _check_output_fd(fd: int) -> None:
    """Refuse an O_APPEND descriptor: Linux pwrite appends there whatever the offset."""
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
        raise ValueError(f"output descriptor {fd} is open with O_APPEND; pwrite ignores offsets")


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset``: pwrite may write less than asked (signals, some
    file systems). A pwrite that writes nothing is taken as a full device (ENOSPC)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        written = os.pwrite(fd, view[done:], offset + done)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += written


def write_bytes_at(fd: int, offset: int, data: bytes) -> None:
    """Write all of ``data`` at ``offset`` of ``fd``; a failure is BHS-M006 naming the output.

    The file position of ``fd`` is neither used nor moved, so writers can fill a file in any
    order (an r2 writer writes its header last, at the beginning).
    """
    _check_output_fd(fd)
    try:
        _pwrite_all(fd, data, offset)
    except OSError as exc:
        raise _write_failed(fd, offset, exc, "writing the output") from exc


def _write_behind(fd: int, offset: int, length: int) -> None:
    """Start writing back what was just copied, rather than leaving GiBs dirty for the final
    fsync: ``POSIX_FADV_DONTNEED`` on dirty pages starts their writeback without waiting
    (and lets the page cache drop them once clean, which the output does not need), so the
    disk works while the next chunk is copied. Measured on 4 GiB: copy + fsync 2.2 s -> 1.5 s.
    Advisory only: where it is missing or refused, the final fsync does all the work."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


class _SourceShort(Exception):
    """The source is only ``size`` bytes long: shorter than the range claims."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _Copier:
    """One :func:`copy_range` call: the descriptors, the method that works, the hole bound."""

    def __init__(self, src_fd: int, dst_fd: int, dst_offset: int,
                 progress: Progress | None) -> None:
        self.src_fd = src_fd
        self.dst_fd = dst_fd
        self.position = dst_offset
        """The output offset being written, for the error message if writing fails."""
        self.zero_from = 0
        """Output bytes at or after this offset read as zeros unless this call writes them
        (the output's size when the copy began): skipped holes there need no writing."""
        self.progress = progress
        self.method = "copy_file_range" if hasattr(os, "copy_file_range") else "sendfile"

    def copy_data(self, begin: int, stop: int, dst: int) -> None:
        """Copy the source data run ``[begin, stop)`` to output offset ``dst``."""
        while begin < stop:
            self.position = dst
            count = min(stop - begin, KERNEL_CHUNK)
            copied = self._copy_some(begin, count, dst)
            if copied == 0:
                size = os.fstat(self.src_fd).st_size
                if size <= begin:
                    raise _SourceShort(size)
                if self.method == "chunked":
                    raise OSError(errno.EIO, "the input read returned no data")
                self._degrade()  # the kernel copied nothing from a file that has the bytes
                continue
            _write_behind(self.dst_fd, dst, copied)
            begin += copied
            dst += copied
            if self.progress is not None:
                self.progress.advance(copied)

    def copy_hole(self, begin: int, stop: int, dst: int) -> None:
        """Make output ``[dst, dst + stop - begin)`` read as zeros without writing data."""
        end = dst + (stop - begin)
        overlap_end = min(end, self.zero_from)
        if dst < overlap_end:  # the output already had bytes there: zero its data runs
            for run_begin, run_stop, is_data in _extents(self.dst_fd, dst, overlap_end):
                if is_data:
                    self._fill_zeros(run_begin, run_stop)
        if self.progress is not None:
            self.progress.advance(stop - begin)

    def _fill_zeros(self, begin: int, stop: int) -> None:
        while begin < stop:
            self.position = begin
            count = min(stop - begin, BUFFER_CHUNK)
            _pwrite_all(self.dst_fd, _zero_block(BUFFER_CHUNK)[:count], begin)
            begin += count

    def _degrade(self) -> None:
        self.method = "sendfile" if self.method == "copy_file_range" else "chunked"

    def _copy_some(self, begin: int, count: int, dst: int) -> int:
        if self.method == "copy_file_range":
            try:
                return os.copy_file_range(self.src_fd, self.dst_fd, count, begin, dst)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS:
                    raise
                self.method = "sendfile"
        if self.method == "sendfile":
            try:
                os.lseek(self.dst_fd, dst, os.SEEK_SET)
                return os.sendfile(self.dst_fd, self.src_fd, begin, count)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS:
                    raise
                self.method = "chunked"
        # End chunks on output page boundaries, so that no zero page is split between two.
        aligned = (dst + BUFFER_CHUNK) // PAGE * PAGE - dst
        return self._copy_chunk(begin, min(count, aligned if aligned > 0 else BUFFER_CHUNK), dst)

    def _copy_chunk(self, begin: int, count: int, dst: int) -> int:
        """``pread`` then ``pwrite`` at most :data:`BUFFER_CHUNK` bytes, leaving whole
        all-zero output pages as holes where the output is known to read as zeros."""
        data = os.pread(self.src_fd, count, begin)
        view = memoryview(data)
        run_start = 0
        pos = 0
        while pos < len(view):
            page_end = min((dst + pos) // PAGE * PAGE + PAGE - dst, len(view))
            skippable = (page_end - pos == PAGE and dst + pos >= self.zero_from
                         and view[pos:page_end] == _ZERO_PAGE)
            if skippable:
                if run_start < pos:
                    _pwrite_all(self.dst_fd, view[run_start:pos], dst + run_start)
                run_start = page_end
            pos = page_end
        if run_start < len(view):
            _pwrite_all(self.dst_fd, view[run_start:], dst + run_start)
        return len(view)


def copy_range(src: FileRange, dst_fd: int, dst_offset: int,
               progress: Progress | None = None) -> None:
    """Copy ``src.size`` bytes of ``src.path`` from ``src.offset`` to ``dst_fd`` at
    ``dst_offset``, in the kernel, keeping holes.

    Only the source's data runs are copied; a source hole becomes a hole of the output (or,
    where the output already held data, zeros). The output grows to at least
    ``dst_offset + src.size`` even when the range ends in a hole, and never shrinks. The file
    position of ``dst_fd`` is restored afterwards.

    Raises UsageError BHS-X002 if the source cannot be opened, ImageError BHS-M006 if the
    source is shorter than the range (naming the source and the byte where it ends) or if
    writing fails (naming the output).
    """
    if min(src.offset, src.size, dst_offset) < 0:
        raise ValueError(f"negative offset or size: {src!r} to output offset {dst_offset}")
    _check_output_fd(dst_fd)
    end = src.offset + src.size
    try:
        src_fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(error("BHS-X002", src.path, None,
                               f"cannot open the input: {exc.strerror or exc}")) from exc
    copier = _Copier(src_fd, dst_fd, dst_offset, progress)
    try:
        position = os.lseek(dst_fd, 0, os.SEEK_CUR)
        try:
            copier.zero_from = os.fstat(dst_fd).st_size
            _check_source_size(src_fd, src)
            for begin, stop, is_data in _extents(src_fd, src.offset, end):
                dst = dst_offset + (begin - src.offset)
                if is_data:
                    copier.copy_data(begin, stop, dst)
                else:
                    copier.copy_hole(begin, stop, dst)
            # ENXIO from SEEK_DATA reads as a trailing hole: the size tells a hole from a cut.
            _check_source_size(src_fd, src)
            copier.position = dst_offset + src.size
            if os.fstat(dst_fd).st_size < copier.position:
                os.ftruncate(dst_fd, copier.position)
        finally:
            os.lseek(dst_fd, position, os.SEEK_SET)
    except _SourceShort as short:
        raise ImageError(error(
            "BHS-M006", src.path, short.size,
            f"the input ends at byte {short.size} but {src.size} bytes from byte "
            f"{src.offset} (up to byte {end}) were to be copied: it is truncated or shrank "
            "while being copied",
        )) from None
    except OSError as exc:
        raise _write_failed(dst_fd, copier.position, exc,
                            f"copying {src.path} into the output") from exc
    finally:
        os.close(src_fd)


def _check_source_size(src_fd: int, src: FileRange) -> None:
    size = os.fstat(src_fd).st_size
    if size < src.offset + src.size:
        raise _SourceShort(size)


# --------------------------------------------------------------------------------------------
# small user files


def read_user_file(path: str, limit: int, what: str, too_large_rule: str = "BHS-X001") -> bytes:
    """The whole of a small file the user named (a ``--config``, a manifest, a baseline).

    Read in one bounded call, never more than ``limit`` + 1 bytes whatever the file claims,
    and without ``stat`` first so that a pipe (``<(...)``) works. Unreadable is BHS-X002; a
    file over ``limit`` is ``too_large_rule``, located at the limit.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(error("BHS-X002", path, None,
                               f"cannot read the {what}: {exc.strerror or exc}")) from None
    if len(data) > limit:
        raise UsageError(error(too_large_rule, path, limit,
                               f"the {what} is larger than {limit >> 20} MiB "
                               "(a limit of this tool)"))
    return data


# --------------------------------------------------------------------------------------------
# hashing


def hash_range(src: FileRange, algorithm: str = "sha256",
               progress: Progress | None = None) -> str:
    """The lowercase hex digest of ``src``'s bytes, holes hashed as zeros.

    Streams through one reused :data:`BUFFER_CHUNK` buffer (``preadv``), so memory stays
    bounded whatever the size; hashlib releases the GIL on large updates. Holes are not
    read at all: they are hashed from a zero buffer.

    Raises UsageError BHS-X001 for an algorithm hashlib does not know, and UsageError BHS-X002
    when the input cannot be opened or read or is shorter than the range.
    """
    return hash_memory(src, algorithm, progress)


class HashCancelled(Exception):
    """A background hash was told to stop (its writer failed or was interrupted)."""


def hash_memory(memory: Memory, algorithm: str = "sha256", progress: Progress | None = None,
                cancel: threading.Event | None = None) -> str:
    """The digest of guest memory, one range or the pieces of a merge, in guest order.

    ``cancel`` lets the thread that started a background hash stop it within one chunk
    (raising :class:`HashCancelled`), so a failed or interrupted write does not wait for GiBs
    of hashing nobody needs any more."""
    try:
        digest = hashlib.new(algorithm)
    except ValueError as exc:
        first = next(memory_pieces(memory))[1]
        raise UsageError(error("BHS-X001", first.path, None,
                               f"unknown hash algorithm {algorithm!r}")) from exc
    buffer = memoryview(bytearray(BUFFER_CHUNK))
    zeros = _zero_block(BUFFER_CHUNK)
    for _, piece in memory_pieces(memory):
        _hash_into(digest, piece, buffer, zeros, progress=progress, cancel=cancel)
    return digest.hexdigest()


def copy_memory(memory: Memory, dst_fd: int, dst_offset: int,
                progress: Progress | None = None) -> None:
    """Copy guest memory to ``dst_fd`` at ``dst_offset``: each piece with :func:`copy_range`."""
    for offset, piece in memory_pieces(memory):
        copy_range(piece, dst_fd, dst_offset + offset, progress)


def _hash_into(digest: Any, src: FileRange, buffer: memoryview, zeros: memoryview,
               *, progress: Progress | None, cancel: threading.Event | None) -> None:
    if min(src.offset, src.size) < 0:
        raise ValueError(f"negative offset or size: {src!r}")
    try:
        fd = os.open(src.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UsageError(error("BHS-X002", src.path, None,
                               f"cannot open the input: {exc.strerror or exc}")) from exc
    end = src.offset + src.size
    pos = src.offset
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, src.offset, src.size, os.POSIX_FADV_SEQUENTIAL)
        _check_hash_size(fd, src)
        for begin, stop, is_data in _extents(fd, src.offset, end):
            pos = begin
            while pos < stop:
                if cancel is not None and cancel.is_set():
                    raise HashCancelled
                count = min(stop - pos, BUFFER_CHUNK)
                if is_data:
                    count = os.preadv(fd, [buffer[:count]], pos)
                    if count == 0:
                        _check_hash_size(fd, src)
                        raise OSError(errno.EIO, "read returned no data")
                    digest.update(buffer[:count])
                else:
                    digest.update(zeros[:count])
                pos += count
                if progress is not None:
                    progress.advance(count)
        _check_hash_size(fd, src)
    except OSError as exc:
        raise UsageError(error("BHS-X002", src.path, pos,
                               f"cannot read the input: {exc.strerror or exc}")) from exc
    finally:
        os.close(fd)


def _check_hash_size(fd: int, src: FileRange) -> None:
    size = os.fstat(fd).st_size
    if size < src.offset + src.size:
        raise UsageError(error(
            "BHS-X002", src.path, size,
            f"the input ends at byte {size} but {src.size} bytes from byte {src.offset} were "
            "to be hashed: it is truncated or shrank while being read",
        ))


# --------------------------------------------------------------------------------------------
# durability


def fsync_file(path: str) -> None:
    """Flush ``path``'s data and metadata to stable storage (BHS-M006 on failure).

    Opened read-only: fsync flushes the file, not the descriptor, on Linux and FreeBSD.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageError(error("BHS-M006", _TEMP_NAMES.get(os.path.abspath(path), path), None,
                               f"flushing the output to disk failed: {exc.strerror or exc}"
                               )) from exc


def fsync_dir(path: str) -> None:
    """Flush a directory, making the renames and creations in it durable (BHS-M006 on
    failure). File systems that cannot fsync a directory (EINVAL, ENOTSUP) are accepted:
    they give no stronger guarantee to anyone."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path or ".", flags)
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageError(error("BHS-M006", path, None,
                               f"flushing the directory to disk failed: {exc.strerror or exc}"
                               )) from exc


# --------------------------------------------------------------------------------------------
# atomic outputs


def stale_temps(directory: str) -> list[str]:
    """Temporary files an earlier, killed run of this tool left in ``directory`` (sorted).

    Only regular files whose names have the exact temporary form
    ``.<name>.bhyvesnap-<16 hex>.tmp`` are listed; a live run's temporaries look the same,
    so remove them only when no other bhyvesnap writes into the directory.
    """
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if _TEMP_PATTERN.match(entry.name) and entry.is_file(follow_symlinks=False):
                found.append(os.path.join(directory, entry.name))
    return sorted(found)


class AtomicOutputs:
    """Write a set of output files so that they appear complete, or not at all.

    ``finals`` are the output paths in rename order: the file whose presence makes the
    result an image comes last (``F``, ``F.kern``, ``F.meta`` for a legacy image, FORMAT.md
    2). Use::

        with AtomicOutputs([path], force=args.force) as out:
            write into out.temps[0] (or out.fd(0)) ...
            verify the temporaries ...
            out.commit()

    On entry, one empty temporary file per final is created next to it (``O_CREAT|O_EXCL``,
    hidden name ``.<name>.bhyvesnap-<random>.tmp``, permissions ``mode`` minus the umask, as
    any Unix tool creates files; pass the source's mode to keep a private snapshot private).
    On :meth:`commit` the temporaries are fsynced and renamed in order, then each directory
    is fsynced. Leaving the block without commit, through an exception, or through SIGINT,
    SIGTERM or SIGHUP removes the temporaries; a signal then takes its previous effect
    (``KeyboardInterrupt``, or death by the signal: exit status 128 + signo in a shell).

    If a commit fails halfway, the finals it already renamed are removed when they did not
    exist before; with ``force``, a replaced final cannot be brought back, so before any
    rename the last final (the marker) is removed when it exists: a failure leaves no
    image rather than a mix of old and new files that reads as one.

    Refused (UsageError BHS-M004): a final that exists without ``force``; a final that is a
    symbolic link, a directory or another non-regular file, even with ``force`` (the rename
    would replace the link or fail, not write where the user meant). UsageError BHS-X001: a
    destination directory that does not exist.

    Signal handlers are only installed in the main thread (Python allows no other), and not
    for a signal that is ignored (``nohup``) or whose handler was not set from Python.
    """

    def __init__(self, finals: Sequence[str], *, force: bool = False, mode: int = 0o644) -> None:
        if not finals:
            raise ValueError("AtomicOutputs needs at least one output path")
        self.finals = list(finals)
        self.force = force
        self.mode = mode
        self.temps: list[str] = []
        self._existed = [self._check_final(path) for path in self.finals]
        self._fds: dict[int, int] = {}
        self._renamed: list[int] = []
        self._committed = False
        self._previous: dict[int, _Handler] = {}

    def _check_final(self, path: str) -> bool:
        """Whether ``path`` exists (and may be replaced); refuse what must not be."""
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise UsageError(error("BHS-X001", path, None,
                                   f"the destination directory {directory} does not exist"))
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UsageError(error("BHS-X001", path, None,
                                   f"cannot inspect the output path: {exc.strerror}")) from exc
        if stat.S_ISLNK(info.st_mode):
            why = "is a symbolic link; the rename would replace the link, not its target"
        elif stat.S_ISDIR(info.st_mode):
            why = "is a directory"
        elif not stat.S_ISREG(info.st_mode):
            why = "is not a regular file"
        elif not self.force:
            raise UsageError(error("BHS-M004", path, None, "the output already exists",
                                   "choose another output path or pass --force to replace it"))
        else:
            return True
        raise UsageError(error("BHS-M004", path, None,
                               f"the output {why}: refusing to replace it, even with --force",
                               "give the path of a regular file or a new name"))

    def __enter__(self) -> AtomicOutputs:
        self._install_handlers()
        try:
            for final in self.finals:
                self._create_temp(final)
        except BaseException:
            self._cleanup()
            self._restore_handlers()
            raise
        return self

    def _create_temp(self, final: str) -> None:
        directory, name = os.path.split(final)
        flags = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NOFOLLOW", 0))
        while True:
            temp = os.path.join(directory, f".{name[:_MAX_NAME_STEM]}{_TEMP_SUFFIX}"
                                           f"{secrets.token_hex(8)}.tmp")
            try:
                fd = os.open(temp, flags, self.mode)
            except FileExistsError:
                continue
            except OSError as exc:
                raise ImageError(error(
                    "BHS-M006", final, None,
                    f"cannot create a temporary file in {directory or '.'}: "
                    f"{exc.strerror or exc}")) from exc
            self.temps.append(temp)
            self._fds[len(self.temps) - 1] = fd
            _FD_NAMES[fd] = final
            _TEMP_NAMES[os.path.abspath(temp)] = final
            return

    def fd(self, index: int) -> int:
        """A read-write descriptor of ``temps[index]``, owned by this object (closed on
        commit or exit); errors written through it name ``finals[index]``."""
        return self._fds[index]

    def commit(self) -> None:
        """fsync every temporary, rename each into place in order, fsync the directories.

        Writers must have flushed their own buffered file objects first. Raises ImageError
        BHS-M006 when flushing or renaming fails and UsageError BHS-M004 when, without
        ``force``, a final appeared since the check; after a failure :meth:`__exit__`
        removes what this call wrote.
        """
        if self._committed or self._renamed:
            raise ValueError("AtomicOutputs.commit called twice")
        for index, final in enumerate(self.finals):
            try:
                os.fsync(self._fds[index])
            except OSError as exc:
                raise ImageError(error("BHS-M006", final, None,
                                       f"flushing the output to disk failed: {exc.strerror}"
                                       )) from exc
        self._close_fds()
        for final in self.finals:
            if not self.force and os.path.lexists(final):
                raise UsageError(error("BHS-M004", final, None,
                                       "the output appeared while it was being written",
                                       "choose another output path or pass --force"))
        marker = self.finals[-1]
        try:
            if len(self.finals) > 1 and self._existed[-1]:
                os.unlink(marker)
            for index, final in enumerate(self.finals):
                if self.force:
                    os.replace(self.temps[index], final)
                else:
                    _place_new(self.temps[index], final)
                self._renamed.append(index)
            for directory in sorted({os.path.dirname(final) or "." for final in self.finals}):
                fsync_dir(directory)
        except OSError as exc:
            failed = self.finals[len(self._renamed)] if len(self._renamed) < len(
                self.finals) else marker
            raise ImageError(error("BHS-M006", failed, None,
                                   f"renaming the output into place failed: {exc.strerror}"
                                   )) from exc
        self._committed = True
        for temp in self.temps:
            _TEMP_NAMES.pop(os.path.abspath(temp), None)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Clean up unless committed; an unwrapped write error (ENOSPC, EIO, ...) that a
        writer let escape, on a temporary or without a file name, becomes BHS-M006."""
        try:
            self._cleanup()
        finally:
            self._close_fds()
            self._restore_handlers()
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
            outputs = {os.path.abspath(temp): final
                       for temp, final in zip(self.temps, self.finals, strict=False)}
            filename = exc.filename if isinstance(exc.filename, str) else None
            output = self.finals[0] if filename is None else outputs.get(
                os.path.abspath(filename))
            if output is not None:
                raise ImageError(error(
                    "BHS-M006", output, None,
                    f"writing the output failed: {exc.strerror or exc}; nothing was written",
                )) from exc

    def _cleanup(self) -> None:
        """Remove the temporaries not yet renamed and the finals this object created; after
        a completed commit, nothing.

        Idempotent, and safe to run from a signal handler in the middle of any operation.
        """
        if self._committed:
            return
        for index, temp in enumerate(self.temps):
            if index not in self._renamed:
                _remove(temp)
            _TEMP_NAMES.pop(os.path.abspath(temp), None)
        for index in self._renamed:
            if not self._existed[index]:
                _remove(self.finals[index])
        self._renamed = []

    def _close_fds(self) -> None:
        for fd in self._fds.values():
            _FD_NAMES.pop(fd, None)
            os.close(fd)
        self._fds = {}

    # -- signals ------------------------------------------------------------------------

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signo in _SIGNALS:
            previous = signal.getsignal(signo)
            if previous is None or previous == signal.SIG_IGN:
                continue
            self._previous[signo] = previous
            signal.signal(signo, self._on_signal)

    def _restore_handlers(self) -> None:
        for signo, previous in self._previous.items():
            signal.signal(signo, previous)
        self._previous = {}

    def _on_signal(self, signo: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signo)
        self._cleanup()
        self._restore_handlers()
        if callable(previous):
            previous(signo, frame)
            return
        # The default action: die of the same signal, so the parent sees what happened.
        signal.signal(signo, signal.SIG_DFL)
        os.kill(os.getpid(), signo)
        raise SystemExit(128 + signo)  # reached only if the signal is blocked in this thread


def _place_new(temp: str, final: str) -> None:
    """Move ``temp`` to ``final`` only if ``final`` does not exist, atomically: ``link``
    fails with EEXIST where a check followed by ``rename`` would overwrite a file another
    process created in between (two migrations to one output). Filesystems without hard
    links fall back to the check and ``rename``."""
    try:
        os.link(temp, final, follow_symlinks=False)
    except FileExistsError:
        raise UsageError(error("BHS-M004", final, None,
                               "the output appeared while it was being written",
                               "choose another output path or pass --force")) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                             errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(final):
            raise UsageError(error("BHS-M004", final, None,
                                   "the output appeared while it was being written",
                                   "choose another output path or pass --force")) from None
        os.replace(temp, final)
        return
    os.unlink(temp)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
