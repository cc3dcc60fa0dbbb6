"""Release-gate throughput: ``bhyvesnap gate`` over a synthetic corpus of >= 1,000 pairs.

Run ``python bench/bench_gate.py [--images N] [--cores C] [--runs R]``. It builds a corpus
of N images (default 170; x 6 bundled targets = 1,020 pairs) with the tool's own generator,
cycling through the bundled corpus's kinds (every format, foreign, damaged) with varied vCPU
counts, and a manifest with their expected verdicts; then it times ``bhyvesnap gate --corpus
DIR --json`` as a child pinned to C cores (default 2), R runs (default 3), and reports the
median, pairs per second and the peak RSS of the largest process (the gate's workers are
its children, whose high-water marks wait4 folds in). The goal is under 10 seconds for
1,000 pairs on two cores. Every run must pass the gate: the synthetic images carry the
expectations of the bundled image they were cloned from. Prints Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import MIB, Contender, markdown_table, python_m_migrate, rss_note, size_label

from migrate.corpusgen import Definition, ImageSpec, build_corpus, load_definition

GOAL_SECONDS = 10.0
"""Seconds for 1,000 pairs on two cores."""


def synthetic_definition(count: int) -> Definition:
    """``count`` images cloned from the bundled ones, renamed and with varied vCPU counts;
    a damaged (diff-pages) clone is made from (diffed against) the clone of its source
    (base) in the same round."""
    base = load_definition()
    images: list[ImageSpec] = []
    round_number = 0
    while len(images) < count:
        for spec in base.images:
            if len(images) == count:
                break
            name = f"{spec.name}-{round_number:03d}"
            if spec.kind == "damaged":
                source = f"{spec.source}-{round_number:03d}"
                if not any(image.name == source for image in images):
                    continue
                images.append(dataclasses.replace(spec, name=name, source=source))
            else:
                cpus = 1 + (spec.ncpus + round_number) % 8
                clone = dataclasses.replace(spec, name=name, ncpus=cpus)
                if spec.base is not None:  # a diff-pages image: diffed against its base's clone
                    base_name = f"{spec.base}-{round_number:03d}"
                    if not any(image.name == base_name for image in images):
                        continue
                    clone = dataclasses.replace(clone, base=base_name)
                images.append(clone)
        round_number += 1
    return base.with_images(images)


@dataclass(frozen=True)
class GateBench:
    """One gate benchmark: corpus shape, build time and the timed gate runs."""

    images: int
    pairs: int
    cores: int
    corpus_bytes: int
    build_seconds: float
    gate: Contender

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.gate.median

    @property
    def seconds_per_1000(self) -> float:
        """The median run scaled to 1,000 pairs (the goal's unit)."""
        return self.gate.median * 1000 / max(1, self.pairs)


def bench_gate(folder: Path, images: int, cores: int, runs: int) -> GateBench:
    """Build the synthetic corpus in ``folder`` and time ``runs`` gate runs over it."""
    start = time.perf_counter()
    manifest = build_corpus(str(folder), synthetic_definition(images))
    build_seconds = time.perf_counter() - start
    size = sum(record["size"] for image in manifest["images"] for record in image["files"])
    counted: set[int] = set()

    def count_pairs(stdout: str) -> None:
        document = json.loads(stdout)
        if document["failed"]:
            raise SystemExit("the gate failed on the synthetic corpus")
        counted.add(len(document["pairs"]))

    gate = Contender(f"bhyvesnap gate ({cores} cores)",
                     [python_m_migrate("gate", "--corpus", str(folder), "--json")],
                     check=count_pairs, cores=cores)
    for _ in range(runs):
        gate.run_once(settle=False)
    if len(counted) != 1:
        raise SystemExit(f"the gate reported different pair counts: {sorted(counted)}")
    usable = min(cores, len(os.sched_getaffinity(0))) if hasattr(
        os, "sched_getaffinity") else cores
    return GateBench(len(manifest["images"]), counted.pop(), usable, size, build_seconds, gate)


def table(bench: GateBench) -> str:
    return markdown_table(
        ("images", "pairs", "cores", "corpus", "build s",
         f"gate median s ({len(bench.gate.seconds)} runs)",
         "pairs/s", "s per 1,000 pairs", "peak RSS MiB", f"goal < {GOAL_SECONDS:.0f} s"),
        [(bench.images, bench.pairs, bench.cores, size_label(bench.corpus_bytes // MIB * MIB)
          if bench.corpus_bytes >= MIB else f"{bench.corpus_bytes} B",
          f"{bench.build_seconds:.1f}", f"{bench.gate.median:.2f}",
          f"{bench.pairs_per_second:.0f}", f"{bench.seconds_per_1000:.2f}",
          f"{bench.gate.peak_rss_mib:.0f}",
          "met" if bench.seconds_per_1000 < GOAL_SECONDS else "MISSED")],
        (True, True, True, True, True, True, True, True, True, False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=170, help="images in the corpus")
    parser.add_argument("--cores", type=int, default=2, help="CPUs the gate may use")
    parser.add_argument("--runs", type=int, default=3, help="gate runs (median reported)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bhyvesnap-bench-gate-"))
    try:
        bench = bench_gate(folder, args.images, args.cores, max(1, args.runs))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{rss_note()}.\n")
    print(table(bench))
    return 0 if bench.seconds_per_1000 < GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
