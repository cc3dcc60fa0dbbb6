"""Tests of migrate/storage.py: hole-keeping copies, streamed hashes, atomic outputs.

Expected bytes are built independently in the tests (plain ``bytes`` of small files); the
layout of holes is read back with ``SEEK_DATA``/``SEEK_HOLE`` and ``st_blocks``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sparse_files import data_runs

from migrate import storage
from migrate.findings import ImageError, UsageError
from migrate.image import FileRange
from migrate.storage import (
    AtomicOutputs,
    Progress,
    copy_range,
    fsync_dir,
    fsync_file,
    hash_range,
    stale_temps,
    write_bytes_at,
)

MIB = 1024 * 1024


# ---------------------------------------------------------------------------- helpers


def make_sparse(path: Path, size: int, runs: dict[int, bytes]) -> bytes:
    """Write ``runs`` (offset -> data) into a sparse file of ``size``; return its bytes."""
    expected = bytearray(size)
    with open(path, "wb") as handle:
        for offset, data in runs.items():
            handle.seek(offset)
            handle.write(data)
            expected[offset:offset + len(data)] = data
        handle.truncate(size)
    return bytes(expected)


def pattern(size: int, seed: int) -> bytes:
    """Non-zero, position-dependent bytes (a shifted copy would not compare equal)."""
    return bytes((i * 7 + seed) % 251 + 1 for i in range(size))


@pytest.fixture
def sparse_dir(tmp_path: Path) -> Path:
    """tmp_path, if its file system keeps and reports holes at 4 KiB granularity."""
    probe = tmp_path / "probe"
    make_sparse(probe, 1 * MIB, {256 * 1024: b"x" * 4096})
    if data_runs(probe) != [(256 * 1024, 256 * 1024 + 4096)]:
        pytest.skip("the temporary file system does not report holes (SEEK_DATA)")
    probe.unlink()
    return tmp_path


@pytest.fixture
def sparse_source(sparse_dir: Path) -> tuple[Path, bytes]:
    """An 8 MiB file: data, hole, page-aligned data, hole, unaligned data, trailing hole."""
    path = sparse_dir / "memory"
    expected = make_sparse(path, 8 * MIB, {
        0: pattern(64 * 1024, 1),
        1 * MIB: pattern(100 * 1024, 2),
        5 * MIB + 123: pattern(5000, 3),
    })
    return path, expected


def read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)


@pytest.fixture
def output(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    yield fd
    os.close(fd)


# ---------------------------------------------------------------------------- copy_range


def test_copy_keeps_holes_and_bytes(sparse_source: tuple[Path, bytes], output: int,
                                    tmp_path: Path) -> None:
    path, expected = sparse_source
    copy_range(FileRange(str(path), 0, len(expected)), output, 0)
    assert read_fd(output) == expected
    assert data_runs(tmp_path / "out") == data_runs(path)
    assert os.fstat(output).st_blocks == os.stat(path).st_blocks
    assert os.fstat(output).st_blocks * 512 < 512 * 1024  # 8 MiB file, < 512 KiB on disk


@pytest.mark.parametrize(("src_offset", "size", "dst_offset"), [
    (0, 8 * MIB, 4096),  # aligned output offset
    (4097, 3 * MIB, 12345),  # unaligned both sides, range ends in a hole
    (1 * MIB + 10, 5000, 7),  # inside one data run
    (2 * MIB, 1 * MIB, 3),  # only a hole
    (5 * MIB, 3 * MIB, 1 * MIB + 1),  # hole, unaligned data, trailing hole
])
def test_copy_with_offsets(sparse_source: tuple[Path, bytes], output: int,
                           src_offset: int, size: int, dst_offset: int) -> None:
    path, source = sparse_source
    prefix = pattern(dst_offset, 9)
    write_bytes_at(output, 0, prefix)
    copy_range(FileRange(str(path), src_offset, size), output, dst_offset)
    assert read_fd(output) == prefix + source[src_offset:src_offset + size]


def test_copy_zeroes_holes_over_existing_output_data(sparse_source: tuple[Path, bytes],
                                                     output: int) -> None:
    path, source = sparse_source
    write_bytes_at(output, 0, b"\xff" * (3 * MIB))
    copy_range(FileRange(str(path), 0, 2 * MIB), output, 0)
    assert read_fd(output) == source[:2 * MIB] + b"\xff" * MIB


def test_copy_restores_output_position_and_grows_never_shrinks(
        sparse_source: tuple[Path, bytes], output: int) -> None:
    path, source = sparse_source
    write_bytes_at(output, 0, b"\x01" * (9 * MIB))
    os.lseek(output, 77, os.SEEK_SET)
    copy_range(FileRange(str(path), 1 * MIB, 4096), output, 0)
    assert os.lseek(output, 0, os.SEEK_CUR) == 77
    assert os.fstat(output).st_size == 9 * MIB
    assert os.pread(output, 4097, 0) == source[1 * MIB:1 * MIB + 4096] + b"\x01"


def test_copy_counts_progress_including_holes(sparse_source: tuple[Path, bytes],
                                              output: int) -> None:
    path, source = sparse_source
    progress = Progress(len(source), "copy", io.StringIO())
    copy_range(FileRange(str(path), 0, len(source)), output, 0, progress)
    assert progress.done == len(source)


def _refuse(code: int) -> Callable[..., int]:
    def refuse(*args: object) -> int:
        raise OSError(code, os.strerror(code))
    return refuse


@pytest.mark.parametrize("code", [errno.EXDEV, errno.ENOSYS])
def test_copy_falls_back_to_sendfile(sparse_source: tuple[Path, bytes], output: int,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     code: int) -> None:
    path, source = sparse_source
    calls: list[int] = []
    real_sendfile = os.sendfile

    def counting_sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "copy_file_range", _refuse(code))
    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    monkeypatch.setattr(storage, "KERNEL_CHUNK", 16 * 1024)
    os.lseek(output, 5, os.SEEK_SET)
    copy_range(FileRange(str(path), 4097, 3 * MIB), output, 3)
    assert read_fd(output) == bytes(3) + source[4097:4097 + 3 * MIB]
    assert os.lseek(output, 0, os.SEEK_CUR) == 5
    assert len(calls) > 1
    assert data_runs(tmp_path / "out")[-1][1] < 2 * MIB  # the tail stayed a hole


def test_copy_falls_back_to_chunks_and_leaves_zero_pages_as_holes(
        sparse_dir: Path, output: int, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sparse_dir / "memory"
    # One allocated data run: a page of data, two written zero pages, data, then a hole.
    run = pattern(4096, 4) + bytes(8192) + pattern(5000, 5)
    source = make_sparse(path, 1 * MIB, {0: run})
    assert data_runs(path) == [(0, 20480)]
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.ENOSYS))
    monkeypatch.setattr(os, "sendfile", _refuse(errno.ENOTSOCK))
    monkeypatch.setattr(storage, "BUFFER_CHUNK", 6000)  # not a multiple of the page size
    copy_range(FileRange(str(path), 0, len(source)), output, 0)
    assert read_fd(output) == source
    assert data_runs(sparse_dir / "out") == [(0, 4096), (12288, 20480)]


def test_chunked_copy_writes_zero_pages_over_existing_data(
        sparse_dir: Path, output: int, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sparse_dir / "memory"
    source = make_sparse(path, 16384, {0: bytes(16384)})
    write_bytes_at(output, 0, b"\xee" * 8192)
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV))
    monkeypatch.setattr(os, "sendfile", _refuse(errno.EINVAL))
    copy_range(FileRange(str(path), 0, len(source)), output, 0)
    assert read_fd(output) == source


def test_copy_degrades_when_the_kernel_copies_nothing(
        sparse_source: tuple[Path, bytes], output: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Some kernels return 0 from copy_file_range on files that have the bytes."""
    path, source = sparse_source
    monkeypatch.setattr(os, "copy_file_range", lambda *args: 0)
    copy_range(FileRange(str(path), 0, len(source)), output, 0)
    assert read_fd(output) == source


def test_copy_of_truncated_source_is_an_error(sparse_source: tuple[Path, bytes],
                                              output: int) -> None:
    path, _ = sparse_source
    os.truncate(path, 5 * MIB + 200)
    with pytest.raises(ImageError) as caught:
        copy_range(FileRange(str(path), 4 * MIB, 2 * MIB), output, 0)
    finding = caught.value.finding
    assert (finding.rule, finding.file, finding.location) == ("BHS-M006", str(path),
                                                              5 * MIB + 200)
    assert "truncated" in finding.message


def test_copy_of_source_truncated_while_copying_is_an_error(
        sparse_source: tuple[Path, bytes], output: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = sparse_source
    real = os.copy_file_range

    def truncate_then_copy(src: int, dst: int, count: int, offset_src: int,
                           offset_dst: int) -> int:
        os.truncate(path, 1 * MIB + 50)
        return real(src, dst, count, offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", truncate_then_copy)
    monkeypatch.setattr(storage, "KERNEL_CHUNK", 16 * 1024)
    with pytest.raises(ImageError) as caught:
        copy_range(FileRange(str(path), 1 * MIB, 100 * 1024), output, 0)
    assert caught.value.finding.rule == "BHS-M006"
    assert caught.value.finding.location == 1 * MIB + 50


def test_copy_of_source_cut_in_a_hole_while_copying_is_an_error(
        sparse_source: tuple[Path, bytes], output: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut after the last data run looks like a trailing hole to SEEK_DATA (ENXIO)."""
    path, _ = sparse_source
    real = os.copy_file_range

    def copy_then_truncate(src: int, dst: int, count: int, offset_src: int,
                           offset_dst: int) -> int:
        copied = real(src, dst, count, offset_src, offset_dst)
        os.truncate(path, 1 * MIB + 200 * 1024)
        return copied

    monkeypatch.setattr(os, "copy_file_range", copy_then_truncate)
    with pytest.raises(ImageError) as caught:
        copy_range(FileRange(str(path), 1 * MIB, 2 * MIB), output, 0)
    assert caught.value.finding.rule == "BHS-M006"
    assert caught.value.finding.location == 1 * MIB + 200 * 1024


def test_copy_of_missing_source_is_a_usage_error(tmp_path: Path, output: int) -> None:
    with pytest.raises(UsageError) as caught:
        copy_range(FileRange(str(tmp_path / "nope"), 0, 1), output, 0)
    assert caught.value.finding.rule == "BHS-X002"


# ---------------------------------------------------------------------------- hash_range


@pytest.mark.parametrize(("offset", "size"), [
    (0, 8 * MIB), (4097, 3 * MIB), (2 * MIB, MIB), (5 * MIB + 100, 77), (3, 0)])
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_hash_range_matches_hashlib(sparse_source: tuple[Path, bytes],
                                    monkeypatch: pytest.MonkeyPatch, offset: int,
                                    size: int, algorithm: str) -> None:
    path, source = sparse_source
    monkeypatch.setattr(storage, "BUFFER_CHUNK", 10000)  # many chunks per run
    expected = hashlib.new(algorithm, source[offset:offset + size]).hexdigest()
    assert hash_range(FileRange(str(path), offset, size), algorithm) == expected


def test_hash_range_counts_progress(sparse_source: tuple[Path, bytes]) -> None:
    path, source = sparse_source
    progress = Progress(len(source), "hash", io.StringIO())
    hash_range(FileRange(str(path), 0, len(source)), progress=progress)
    assert progress.done == len(source)


def test_hash_range_errors(sparse_source: tuple[Path, bytes], tmp_path: Path) -> None:
    path, source = sparse_source
    with pytest.raises(UsageError) as caught:
        hash_range(FileRange(str(path), 0, 1), "no-such-hash")
    assert caught.value.finding.rule == "BHS-X001"
    with pytest.raises(UsageError) as caught:
        hash_range(FileRange(str(path), 0, len(source) + 1))
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-X002",
                                                                          len(source))
    with pytest.raises(UsageError) as caught:
        hash_range(FileRange(str(tmp_path / "nope"), 0, 1))
    assert caught.value.finding.rule == "BHS-X002"


# ---------------------------------------------------------------------------- write_bytes_at


def test_write_bytes_at_loops_over_short_writes(output: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real(fd, data[:3], offset))
    write_bytes_at(output, 2, b"hello world")
    assert read_fd(output) == b"\0\0hello world"


# ---------------------------------------------------------------------------- Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_for_large_totals_on_a_terminal() -> None:
    big = 300 * MIB
    terminal = FakeTerminal()
    progress = Progress(big, "copying memory", terminal)
    progress.advance(big)
    progress.close()
    progress.close()
    assert terminal.getvalue().endswith("copying memory: 100.0% (0.29 of 0.29 GiB)\n")
    assert terminal.getvalue().count("\n") == 1
    for stream, total in ((io.StringIO(), big), (FakeTerminal(), 256 * MIB)):
        quiet = Progress(total, "x", stream)
        quiet.advance(total)
        quiet.close()
        assert stream.getvalue() == ""


# ---------------------------------------------------------------------------- AtomicOutputs


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_commit_renames_in_order_and_leaves_no_temps(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    finals = [str(tmp_path / name) for name in ("vm.ckp", "vm.ckp.kern", "vm.ckp.meta")]
    renames: list[str] = []
    real_link = os.link

    def record(src: str, dst: str, **kwargs: Any) -> None:
        renames.append(dst)
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", record)  # without --force: link, never overwrite
    old_umask = os.umask(0o022)
    try:
        with AtomicOutputs(finals) as out:
            for index, temp in enumerate(out.temps):
                assert os.path.dirname(temp) == str(tmp_path)
                assert os.path.basename(temp).startswith(".vm.ckp")
                assert stat.S_IMODE(os.stat(temp).st_mode) == 0o644
                write_bytes_at(out.fd(index), 0, f"file {index}".encode())
            assert listing(tmp_path) == sorted(os.path.basename(t) for t in out.temps)
            assert stale_temps(str(tmp_path)) == sorted(out.temps)
            out.commit()
    finally:
        os.umask(old_umask)
    assert renames == finals
    assert listing(tmp_path) == ["vm.ckp", "vm.ckp.kern", "vm.ckp.meta"]
    assert [Path(final).read_bytes() for final in finals] == [b"file 0", b"file 1", b"file 2"]


def test_mode_is_masked_by_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        with AtomicOutputs([str(tmp_path / "a")], mode=0o640) as out:
            out.commit()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o600


def test_exception_or_no_commit_leaves_nothing(tmp_path: Path) -> None:
    final = str(tmp_path / "image")

    def fail() -> None:
        with AtomicOutputs([final]) as out:
            write_bytes_at(out.fd(0), 0, b"partial")
            raise RuntimeError("writer bug")

    with pytest.raises(RuntimeError, match="writer bug"):
        fail()
    with AtomicOutputs([final]) as out:
        Path(out.temps[0]).write_bytes(b"never committed")
    assert listing(tmp_path) == []


def test_existing_output_refused_without_force_replaced_with_force(tmp_path: Path) -> None:
    final = tmp_path / "image"
    final.write_bytes(b"old")
    with pytest.raises(UsageError) as caught:
        AtomicOutputs([str(final)])
    assert (caught.value.finding.rule, caught.value.finding.file) == ("BHS-M004", str(final))
    assert final.read_bytes() == b"old"
    with AtomicOutputs([str(final)], force=True) as out:
        Path(out.temps[0]).write_bytes(b"new")
        out.commit()
    assert final.read_bytes() == b"new"
    assert listing(tmp_path) == ["image"]


def test_output_appearing_before_commit_is_refused(tmp_path: Path) -> None:
    final = tmp_path / "image"

    def race() -> None:
        with AtomicOutputs([str(final)]) as out:
            final.write_bytes(b"someone else's")
            out.commit()

    with pytest.raises(UsageError) as caught:
        race()
    assert caught.value.finding.rule == "BHS-M004"
    assert final.read_bytes() == b"someone else's"
    assert listing(tmp_path) == ["image"]


@pytest.mark.parametrize("kind", ["symlink", "dangling-symlink", "directory"])
def test_symlink_or_directory_output_refused_even_with_force(tmp_path: Path,
                                                             kind: str) -> None:
    final = tmp_path / "image"
    target = tmp_path / "target"
    if kind == "directory":
        final.mkdir()
    else:
        if kind == "symlink":
            target.write_bytes(b"kept")
        final.symlink_to(target)
    with pytest.raises(UsageError) as caught:
        AtomicOutputs([str(final)], force=True)
    assert caught.value.finding.rule == "BHS-M004"
    assert "even with --force" in caught.value.finding.message
    assert ("symbolic link" if "symlink" in kind else "directory") in caught.value.finding.message


def test_missing_destination_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        AtomicOutputs([str(tmp_path / "no" / "image")])
    assert caught.value.finding.rule == "BHS-X001"
    assert "does not exist" in caught.value.finding.message


def test_enospc_in_copy_is_m006_naming_the_output(sparse_source: tuple[Path, bytes],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path, source = sparse_source
    directory = path.parent / "dest"
    directory.mkdir()
    final = str(directory / "image")
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.ENOSPC))
    with pytest.raises(ImageError) as caught, AtomicOutputs([final]) as out:
        copy_range(FileRange(str(path), 0, len(source)), out.fd(0), 4096)
    finding = caught.value.finding
    assert (finding.rule, finding.file, finding.location) == ("BHS-M006", final, 4096)
    assert "No space left on device" in finding.message
    assert listing(directory) == []


@pytest.mark.parametrize("fd_source", ["owned", "own-open"])
def test_enospc_in_pwrite_is_m006_naming_the_output(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    fd_source: str) -> None:
    final = str(tmp_path / "image")

    def write() -> None:
        with AtomicOutputs([final]) as out:
            fd = out.fd(0) if fd_source == "owned" else os.open(out.temps[0], os.O_WRONLY)
            monkeypatch.setattr(os, "pwrite", _refuse(errno.ENOSPC))
            try:
                write_bytes_at(fd, 10, b"data")
            finally:
                if fd_source == "own-open":
                    os.close(fd)

    with pytest.raises(ImageError) as caught:
        write()
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-M006", 10)
    if sys.platform.startswith("linux"):  # the name comes from /proc/self/fd
        assert caught.value.finding.file == final
    assert listing(tmp_path) == []


def test_raw_enospc_escaping_the_block_becomes_m006(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    finals = [str(tmp_path / "vm"), str(tmp_path / "vm.kern")]

    def write() -> None:
        with AtomicOutputs(finals) as out:
            monkeypatch.setattr(os, "write", _refuse(errno.ENOSPC))
            os.write(out.fd(1), b"x")

    with pytest.raises(ImageError) as caught:
        write()
    assert (caught.value.finding.rule, caught.value.finding.file) == ("BHS-M006", finals[0])
    assert isinstance(caught.value.__cause__, OSError)
    assert listing(tmp_path) == []


def test_failed_rename_removes_partial_triple(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    finals = [str(tmp_path / name) for name in ("vm", "vm.kern", "vm.meta")]
    real_link = os.link

    def fail_second(src: str, dst: str, **kwargs: Any) -> None:
        if dst == finals[1]:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", fail_second)
    with pytest.raises(ImageError) as caught, AtomicOutputs(finals) as out:
        out.commit()
    assert (caught.value.finding.rule, caught.value.finding.file) == ("BHS-M006", finals[1])
    assert listing(tmp_path) == []


def test_failed_forced_rename_never_leaves_a_mixed_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    finals = [tmp_path / name for name in ("vm", "vm.kern", "vm.meta")]
    for final in finals:
        final.write_bytes(b"old")
    real_replace = os.replace

    def fail_second(src: str, dst: str) -> None:
        if dst == str(finals[1]):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second)

    def replace_all() -> None:
        with AtomicOutputs([str(f) for f in finals], force=True) as out:
            for index in range(3):
                write_bytes_at(out.fd(index), 0, b"new")
            out.commit()

    with pytest.raises(ImageError):
        replace_all()
    assert listing(tmp_path) == ["vm", "vm.kern"]  # no vm.meta: not an image
    assert finals[0].read_bytes() == b"new"  # replaced: the old one cannot be restored
    assert finals[1].read_bytes() == b"old"


def test_commit_fsyncs_files_and_directory(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.fstat(fd).st_mode)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    with AtomicOutputs([str(tmp_path / "a"), str(tmp_path / "b")]) as out:
        out.commit()
    assert [stat.S_ISREG(mode) for mode in synced] == [True, True, False]
    assert stat.S_ISDIR(synced[2])


def test_sigint_inside_removes_temps_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    inside: list[object] = []

    def interrupted() -> None:
        with AtomicOutputs([str(tmp_path / "image")]) as out:
            inside.append(signal.getsignal(signal.SIGTERM))
            write_bytes_at(out.fd(0), 0, b"partial")
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert inside != [before]
    assert listing(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_stale_temps_lists_only_temporary_files(tmp_path: Path) -> None:
    names = [".vm.bhyvesnap-0123456789abcdef.tmp", ".vm.meta.bhyvesnap-fedcba9876543210.tmp"]
    for name in [*names, "vm", ".vm.bhyvesnap-short.tmp", "vm.bhyvesnap-0123456789abcdef.tmp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / ".d.bhyvesnap-0123456789abcdef.tmp").mkdir()
    assert stale_temps(str(tmp_path)) == sorted(str(tmp_path / name) for name in names)


def test_fsync_helpers(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    fsync_file(str(tmp_path / "f"))
    fsync_dir(str(tmp_path))
    for call in (fsync_file, fsync_dir):
        with pytest.raises(ImageError) as caught:
            call(str(tmp_path / "missing"))
        assert caught.value.finding.rule == "BHS-M006"


CHILD = textwrap.dedent("""
    import sys, time
    from migrate.storage import AtomicOutputs, write_bytes_at
    with AtomicOutputs([sys.argv[1]]) as out:
        write_bytes_at(out.fd(0), 0, b"guest memory" * 1000)
        print(out.temps[0], flush=True)
        time.sleep(60)
        out.commit()
""")


def _child_with_outputs(final: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(final)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    temp = child.stdout.readline().strip()
    assert os.path.exists(temp)
    return child, temp


@pytest.mark.slow
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP])
def test_child_killed_by_signal_removes_temps(tmp_path: Path, signo: int) -> None:
    child, _ = _child_with_outputs(tmp_path / "image")
    child.send_signal(signo)
    assert child.wait(timeout=10) == -signo  # died of the signal, as without the handler
    assert listing(tmp_path) == []


@pytest.mark.slow
def test_child_sigkilled_leaves_only_a_stale_temp(tmp_path: Path) -> None:
    child, temp = _child_with_outputs(tmp_path / "image")
    child.kill()
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert not (tmp_path / "image").exists()
    assert stale_temps(str(tmp_path)) == [temp]


def test_signal_after_commit_keeps_the_outputs(tmp_path: Path) -> None:
    def committed_then_interrupted() -> None:
        with AtomicOutputs([str(tmp_path / "image")]) as out:
            write_bytes_at(out.fd(0), 0, b"complete")
            out.commit()
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass

    with pytest.raises(KeyboardInterrupt):
        committed_then_interrupted()
    assert (tmp_path / "image").read_bytes() == b"complete"


def test_append_mode_output_is_refused(sparse_source: tuple[Path, bytes],
                                       tmp_path: Path) -> None:
    path, _ = sparse_source
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        with pytest.raises(ValueError, match="O_APPEND"):
            copy_range(FileRange(str(path), 0, 10), fd, 0)
        with pytest.raises(ValueError, match="O_APPEND"):
            write_bytes_at(fd, 0, b"x")
    finally:
        os.close(fd)


def test_read_user_file_is_bounded_and_located(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"abc")
    assert storage.read_user_file(str(small), 3, "thing") == b"abc"
    with pytest.raises(UsageError) as caught:
        storage.read_user_file(str(small), 2, "thing", "BHS-G003")
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-G003", 2)
    with pytest.raises(UsageError) as missing:
        storage.read_user_file(str(tmp_path / "absent"), 10, "thing")
    assert missing.value.finding.rule == "BHS-X002"


def test_an_output_created_during_commit_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --force the final is placed with link(), which fails if another process
    created the file after the last check: its file survives, and this one is refused."""
    final = tmp_path / "vm.bhyve"
    real_link = os.link

    def racing(src: str, dst: str, **kwargs: Any) -> None:
        final.write_bytes(b"theirs")  # another migration won the race
        real_link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", racing)
    with AtomicOutputs([str(final)]) as out:
        write_bytes_at(out.fd(0), 0, b"ours")
        with pytest.raises(UsageError) as caught:
            out.commit()
    assert caught.value.finding.rule == "BHS-M004"
    assert final.read_bytes() == b"theirs"
    assert listing(tmp_path) == ["vm.bhyve"]


def test_filesystems_without_hard_links_fall_back_to_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    final = tmp_path / "vm.bhyve"
    with AtomicOutputs([str(final)]) as out:
        write_bytes_at(out.fd(0), 0, b"ours")
        out.commit()
    assert final.read_bytes() == b"ours"
    assert listing(tmp_path) == ["vm.bhyve"]
