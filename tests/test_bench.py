"""The benchmark suite in ``bench/`` still works: every module imports, the shared helpers
of ``bench/common.py`` give the right answers on tiny inputs, one tiny migration benchmark
runs end to end, and the runner's goals table judges figures correctly.

The benchmarks themselves are not run here (minutes, GiBs); this catches a bench script
broken by a change in the package (a renamed writer, a new corpus kind) before someone needs
the figures.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from migrate.formats import read_image

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODULES = ("common", "bench_check", "bench_copy", "bench_gate", "bench_migrate",
           "bench_nvlist", "bench_verify", "run")
MIB = 1 << 20


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """Every bench module, imported as the scripts import each other (bench/ on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in MODULES}
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def common(bench: dict[str, ModuleType]) -> Any:
    return bench["common"]


def test_every_module_imports_and_has_an_entry_point(bench: dict[str, ModuleType]) -> None:
    for name in MODULES[1:]:
        assert callable(bench[name].main), name


def test_markdown_table(common: Any) -> None:
    text = common.markdown_table(("a", "n"), [("x|y", 1), ("z", 22)], (False, True))
    assert text.splitlines() == ["| a | n |", "|---|---:|", "| x\\|y | 1 |", "| z | 22 |"]
    with pytest.raises(ValueError, match="cells"):
        common.markdown_table(("a", "b"), [("only one",)])


def test_size_label_and_ratio(common: Any) -> None:
    assert [common.size_label(s) for s in (4 * MIB, 1 << 30, 64 * 1024, 1536 * MIB)] == [
        "4 MiB", "1 GiB", "64 KiB", "1536 MiB"]
    assert common.size_label(3 * MIB // 2 + 1) == "1.5 MiB"
    assert common.ratio(3.0, 2.0) == 1.5
    assert common.ratio(1.0, 0.0) == float("inf")


def test_disk_shortfall(common: Any, tmp_path: Path) -> None:
    assert common.disk_shortfall(tmp_path, 0, "x") is None
    message = common.disk_shortfall(tmp_path, 1 << 62, "the 4 EiB images")
    assert message.startswith("skipped the 4 EiB images:")
    assert "GiB are needed" in message


def test_sparse_memory_has_three_data_pages(common: Any, tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    common.write_memory(path, 8 * MIB, data=False)
    data = path.read_bytes()
    assert len(data) == 8 * MIB
    pages = {offset for offset in range(0, len(data), 4096)
             if data[offset:offset + 4096] != bytes(4096)}
    assert pages == {0, 4 * MIB, 8 * MIB - 4096}
    if common.holes_supported(tmp_path):
        assert common.on_disk(path) < MIB


def test_data_memory_is_data_then_a_hole_per_block(common: Any, tmp_path: Path) -> None:
    path = tmp_path / "data"
    common.write_memory(path, 68 * MIB, data=True)
    with open(path, "rb") as handle:
        first = handle.read(48 * MIB)
        hole = handle.read(16 * MIB)
        tail = handle.read()
    assert len(tail) == 4 * MIB
    assert hole == bytes(16 * MIB)
    assert first.count(0) < len(first) // 100  # random bytes, not zeros
    assert tail[:4096] == first[:4096]  # the 4 MiB random chunk repeated


def test_build_images_writes_readable_images_of_the_memory(common: Any, tmp_path: Path) -> None:
    images = common.build_images(tmp_path, 4 * MIB, ["legacy-b", "r1", "r2"], data=False)
    assert not list(tmp_path.glob("*.raw"))  # the memory file is removed
    assert [p.name for p in images["legacy-b"]] == [
        f"legacy-b-{4 * MIB}.ckp", f"legacy-b-{4 * MIB}.ckp.kern", f"legacy-b-{4 * MIB}.ckp.meta"]
    for image_format, files in images.items():
        image = read_image(str(files[0]))
        assert (image.format, image.memory.size) == (image_format, 4 * MIB)
    memory = images["legacy-b"][0].read_bytes()  # a legacy-b F is the raw memory
    r2 = read_image(str(images["r2"][0]))
    assert r2.checksums["memory"] == "sha256:" + hashlib.sha256(memory).hexdigest()


def test_run_child_reports_output_and_its_own_peak_rss(common: Any) -> None:
    done = common.run_child([sys.executable, "-c",
                             "b = bytearray(64 << 20); b[::4096] = b'x' * (16 << 10); "
                             "print('hello')"])
    assert done.stdout == "hello\n"
    assert done.seconds > 0
    assert done.peak_rss_kib >= 64 * 1024
    if common.gnu_time_works():  # the child's own figure, not this (larger) process's
        assert common.run_child(["true"]).peak_rss_kib < 16 * 1024


def test_run_child_failure_names_the_command_and_its_stderr(common: Any) -> None:
    with pytest.raises(common.BenchError, match=r"(?s)status 3.*broken"):
        common.run_child([sys.executable, "-c",
                          "import sys; sys.stderr.write('broken'); sys.exit(3)"])
    assert common.run_child([sys.executable, "-c", "raise SystemExit(3)"], ok=(3,)).stdout == ""


def test_child_env_caches_bytecode_outside_the_checkout(common: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = common.child_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(common.PYCACHE)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(common.REPO)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_pinned_children_inherit_the_cores_and_the_parent_is_restored(common: Any) -> None:
    before = os.sched_getaffinity(0)
    done = common.run_child([sys.executable, "-c",
                             "import os; print(len(os.sched_getaffinity(0)))"], cores=1)
    assert done.stdout.strip() == "1"
    assert os.sched_getaffinity(0) == before


def test_run_alternating_reverses_every_other_round(common: Any) -> None:
    order: list[str] = []
    contenders = [common.Contender(name, [["true"]], prepare=lambda n=name: order.append(n))
                  for name in ("A", "B")]
    common.run_alternating(contenders, 5, settle=False)
    assert "".join(order) == "ABBAABBAAB"
    assert all(len(c.seconds) == 5 and c.median > 0 for c in contenders)
    with pytest.raises(ValueError, match="at least 5"):
        common.run_alternating(contenders, 4)


def test_gate_definition_clones_every_kind_with_its_sources(
        bench: dict[str, ModuleType]) -> None:
    definition = bench["bench_gate"].synthetic_definition(40)
    names = [spec.name for spec in definition.images]
    assert len(names) == 40 == len(set(names))
    for index, spec in enumerate(definition.images):
        for source in (spec.source, spec.base):
            if source is not None:  # damaged and diff-pages clones follow their source's
                assert source in names[:index], spec.name


def test_nvlist_bench_round_trips_both_shapes(bench: dict[str, ModuleType]) -> None:
    rows = bench["bench_nvlist"].bench_nvlist(16 * 1024, runs=1)
    assert [row.workload for row in rows] == ["many small pairs", "4 large BINARY values"]
    assert all(row.size >= 16 * 1024 and row.decode_bytes_per_s > 0 for row in rows)


@pytest.mark.slow
def test_tiny_migration_benchmark_runs_end_to_end(bench: dict[str, ModuleType],
                                                  tmp_path: Path) -> None:
    images = bench["common"].build_images(tmp_path, 4 * MIB, ["legacy-b"], data=True)
    result = bench["bench_migrate"].bench_migration(images["legacy-b"], "legacy-b", "r1",
                                                    4 * MIB, 5)
    assert [len(c.seconds) for c in result.contenders] == [5, 5]
    assert result.ratio > 0
    assert 10 < result.contenders[0].peak_rss_mib < 200  # a Python child, measured
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in images["legacy-b"])  # outputs and copies removed
    assert "| legacy-b → r1 | 4 MiB |" in bench["bench_migrate"].table([result])


def _timed(common: Any, name: str, seconds: float, rss_mib: float = 30.0) -> Any:
    contender = common.Contender(name, [])
    contender.seconds = [seconds] * 5
    contender.peak_rss_kib = int(rss_mib * 1024)
    return contender


def test_goals_judge_the_figures(bench: dict[str, ModuleType], common: Any) -> None:
    run, migrate, verify = bench["run"], bench["bench_migrate"], bench["bench_verify"]
    results = run.Results()
    results.migrations = [
        migrate.MigrationBench("legacy-b", "r1", 1 << 30, [
            _timed(common, "bhyvesnap migrate", 1.10), _timed(common, "cp", 1.0)]),
        migrate.MigrationBench("r1", "r2", 1 << 30, [
            _timed(common, "bhyvesnap migrate", 1.30, rss_mib=120), _timed(common, "cp", 1.0)]),
    ]
    results.verifies = [verify.VerifyBench(1 << 30, [
        _timed(common, "bhyvesnap validate --verify", 1.0), _timed(common, "sha256sum", 0.85)])]
    verdicts = {goal.goal: (goal.measured, goal.met) for goal in run.goals(results)}
    assert verdicts["migrate legacy-b → r1, 1 GiB: ≤ 1.15 x cp --sparse=always + sync"] == (
        "1.10 x", True)
    assert verdicts["migrate r1 → r2, 1 GiB: ≤ 1.15 x cp --sparse=always + sync"] == (
        "1.30 x", False)
    assert verdicts["validate --verify, 1 GiB: throughput ≥ 0.9 x sha256sum"] == ("0.85 x", False)
    assert verdicts["peak RSS of every bhyvesnap command: ≤ 100 MiB"] == (
        "120.0 MiB (largest: bhyvesnap migrate, 1 GiB)", False)
    document = run.report(results, run.QUICK, 5, True, "/")
    assert "| migrate r1 → r2, 1 GiB: ≤ 1.15 x cp --sparse=always + sync | 1.30 x | " \
           "**missed** |" in document
    assert "## validate --verify against sha256sum of the memory" in document
