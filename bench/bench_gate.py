"""Release-gate throughput: ``bhyvesnap gate`` over a synthetic corpus of >= 1,000 pairs.

Run ``python bench/bench_gate.py [--images N] [--cores C]``. It builds a corpus of N images
(default 170; x 6 bundled targets = 1,020 pairs) with the tool's own generator, cycling
through the bundled corpus's kinds (every format, foreign, damaged) with varied vCPU counts,
and a manifest with their expected verdicts; then it times ``bhyvesnap gate --corpus DIR
--json`` as a subprocess pinned to C cores (default 2), best of a few runs. The goal is
under 10 seconds for 1,000 pairs on two cores. Every run must pass the gate: the synthetic
images carry the expectations of the bundled image they were cloned from. Prints Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import tempfile
import time

from migrate.corpusgen import Definition, ImageSpec, build_corpus, load_definition

RUNS = 3
GOAL_SECONDS = 10.0


def synthetic_definition(count: int) -> Definition:
    """``count`` images cloned from the bundled ones, renamed and with varied vCPU counts;
    a damaged clone is made from the clone of its source in the same round."""
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
                images.append(dataclasses.replace(spec, name=name, ncpus=cpus))
        round_number += 1
    return base.with_images(images)


def _pin(cores: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, available[:cores])


def _children_peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=170)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bhyvesnap-bench-gate-") as folder:
        start = time.perf_counter()
        manifest = build_corpus(folder, synthetic_definition(args.images))
        build_seconds = time.perf_counter() - start
        size = sum(record["size"] for image in manifest["images"] for record in image["files"])
        command = [sys.executable, "-m", "migrate", "gate", "--corpus", folder, "--json"]
        times = []
        pairs = 0
        for _ in range(RUNS):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  preexec_fn=lambda: _pin(args.cores))
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                raise SystemExit(f"the gate failed on the synthetic corpus ({done.returncode})")
            pairs = done.stdout.count('"status"')
    best = min(times)
    cores = min(args.cores, len(os.sched_getaffinity(0))) if hasattr(
        os, "sched_getaffinity") else args.cores
    print(f"| images | targets | pairs | cores | corpus | build | gate wall (best of {RUNS}) "
          "| pairs/s | peak RSS (largest process) | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(manifest['images'])} | {pairs // max(1, len(manifest['images']))} | {pairs} "
          f"| {cores} | {size / (1 << 20):.0f} MiB | {build_seconds:.1f} s | {best:.2f} s "
          f"| {pairs / best:.0f} | {_children_peak_rss_mib():.0f} MiB "
          f"| {'met' if best < GOAL_SECONDS else 'MISSED'} (< {GOAL_SECONDS:.0f} s) |")
    return 0 if best < GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
