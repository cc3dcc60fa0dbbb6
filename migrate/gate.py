"""The release gate: the image x target matrix of a corpus, against its manifest or a baseline.

A bhyve release pipeline adds the new build's target profile and runs the gate: every corpus
image is read and validated once (checksums verified), then checked against every target,
and each verdict is compared with what the manifest expects (``ok`` or ``changed``, which
fails) or, with a baseline (the JSON output of an earlier run), with what that run found
(``ok``, ``better``, ``worse``, which fails). A target the reference has no verdict for is
``new``: reported, never failed, so adding a profile cannot break the gate by itself.

Images are independent, so they are spread over a process pool (one worker validates one
image and checks it against all targets); a small matrix runs in-process, where starting
workers would cost more than it saves. Results are ordered by the manifest's image order and
the targets' listing order, whatever the scheduling.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from migrate import storage
from migrate.data import corpus_root, schema_errors
from migrate.findings import BhyvesnapError, Finding, UsageError, error
from migrate.image import FileRange
from migrate.render import table
from migrate.targets import Target
from migrate.verdicts import Verdict

MANIFEST = "manifest.json"
MAX_DOCUMENT_SIZE = 64 << 20
"""A manifest or baseline larger than this is refused (a limit of this tool)."""
SERIAL_BELOW = 24
"""Fewer images than this are gated in-process: a worker pool costs more than it saves."""

OK, CHANGED, BETTER, WORSE, NEW = "ok", "changed", "better", "worse", "new"
FAILING = frozenset({CHANGED, WORSE})


@dataclass(frozen=True)
class CorpusImage:
    """One manifest entry: its name, the path the gate validates, its files and expectations."""

    name: str
    path: str
    files: tuple[tuple[str, int, str], ...]
    expected: Mapping[str, Verdict]


@dataclass(frozen=True)
class Pair:
    """One cell of the matrix; ``verdict`` is ``None`` when the image could not be read."""

    image: str
    target: str
    expected: Verdict | None
    verdict: Verdict | None
    status: str
    finding: Finding | None = None
    """Why the pair failed (BHS-G001 or BHS-G002); not part of the JSON pair record."""

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "target": self.target,
                "expected": None if self.expected is None else self.expected.value,
                "verdict": None if self.verdict is None else self.verdict.value,
                "status": self.status}


@dataclass(frozen=True)
class GateResult:
    """The whole matrix; ``to_json`` is the ``gate --format json`` document (CLI.md), plus
    ``findings``: one per failed pair and per corpus file that differs from the manifest."""

    images: tuple[str, ...]
    targets: tuple[str, ...]
    pairs: tuple[Pair, ...]
    findings: tuple[Finding, ...]
    against: str

    @property
    def failed(self) -> bool:
        return any(pair.failed for pair in self.pairs) or any(f.is_error for f in self.findings)

    def pair(self, image: str, target: str) -> Pair:
        return next(p for p in self.pairs if p.image == image and p.target == target)

    def to_json(self) -> dict[str, Any]:
        return {"targets": list(self.targets), "pairs": [p.to_json() for p in self.pairs],
                "failed": self.failed, "findings": [f.to_json() for f in self.findings]}


# --------------------------------------------------------------------------- inputs


def _read_json(path: str, rule: str, what: str) -> Any:
    """A JSON document the user named; unreadable is BHS-X002, not JSON is ``rule``."""
    raw = storage.read_user_file(path, MAX_DOCUMENT_SIZE, what, rule)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(error(rule, path, exc.start, f"the {what} is not UTF-8")) from None
    except json.JSONDecodeError as exc:
        offset = len(exc.doc[: exc.pos].encode("utf-8"))
        raise UsageError(error(rule, path, offset,
                               f"the {what} is not JSON ({exc.msg})")) from None


def load_manifest(corpus: str) -> list[CorpusImage]:
    """The images of ``corpus``/manifest.json, checked against manifest.schema.json.

    A manifest that does not match, or names one image twice, is UsageError BHS-G003 at a
    JSON pointer; paths are relative and cannot leave the corpus (the schema says how).
    """
    manifest_path = os.path.join(corpus, MANIFEST)
    document = _read_json(manifest_path, "BHS-G003", "corpus manifest")
    problems = schema_errors("manifest", document)
    if problems:
        pointer, message = problems[0]
        raise UsageError(error("BHS-G003", manifest_path, pointer,
                               f"the manifest does not match its schema: {message}",
                               "rebuild it with 'bhyvesnap corpus build DIR'"))
    images: list[CorpusImage] = []
    for index, entry in enumerate(document["images"]):
        if any(image.name == entry["name"] for image in images):
            raise UsageError(error("BHS-G003", manifest_path, f"/images/{index}/name",
                                   f"image {entry['name']!r} is listed twice"))
        images.append(CorpusImage(
            entry["name"], entry["path"],
            tuple((f["path"], f["size"], f["sha256"]) for f in entry["files"]),
            {target: Verdict(verdict) for target, verdict in entry["expected"].items()}))
    return images


def load_baseline(path: str) -> dict[tuple[str, str], Verdict | None]:
    """The verdict of every (image, target) pair of an earlier ``gate --format json`` run.

    Anything else is UsageError BHS-G005 at a JSON pointer. A pair whose verdict was
    ``null`` (its image could not be read then) has no usable verdict: it counts as new.
    """
    document = _read_json(path, "BHS-G005", "baseline")
    pairs = document.get("pairs") if isinstance(document, dict) else None
    if not isinstance(pairs, list):
        raise UsageError(error("BHS-G005", path, "/pairs" if isinstance(document, dict) else "",
                               "the baseline has no `pairs` array; give the JSON output of an "
                               "earlier 'bhyvesnap gate --format json' run"))
    verdicts = {v.value for v in Verdict}
    found: dict[tuple[str, str], Verdict | None] = {}
    for index, pair in enumerate(pairs):
        ok = (isinstance(pair, dict) and isinstance(pair.get("image"), str)
              and isinstance(pair.get("target"), str)
              and (pair.get("verdict") is None or pair.get("verdict") in verdicts))
        if not ok:
            raise UsageError(error("BHS-G005", path, f"/pairs/{index}",
                                   "a baseline pair needs string `image` and `target` and a "
                                   "`verdict` that is a verdict or null"))
        found[(pair["image"], pair["target"])] = (
            None if pair["verdict"] is None else Verdict(pair["verdict"]))
    return found


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Job:
    """What a worker needs for one image: where it is and which files to verify."""

    name: str
    path: str
    files: tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class _Outcome:
    """One image's verdict per target name (``None``: the image could not be read)."""

    name: str
    verdicts: Mapping[str, Verdict | None]
    findings: tuple[Finding, ...]


_WORKER_TARGETS: tuple[Target, ...] = ()


def _init_worker(targets: tuple[Target, ...]) -> None:
    """Process-pool initializer: hand the targets to a worker once, not with every job."""
    global _WORKER_TARGETS  # noqa: PLW0603 - per-process state of a pool worker
    _WORKER_TARGETS = targets


def _worker_job(job: _Job) -> _Outcome:
    return evaluate(job, _WORKER_TARGETS)


def _file_findings(job: _Job) -> list[Finding]:
    """BHS-G004 for every file of the image that is missing or differs from the manifest."""
    found: list[Finding] = []
    for path, size, sha256 in job.files:
        try:
            actual_size = os.path.getsize(path)
            actual = (storage.hash_range(FileRange(path, 0, actual_size))
                      if actual_size == size else None)
        except (OSError, BhyvesnapError):
            found.append(error("BHS-G004", path, None, "the corpus file is missing or cannot "
                               "be read", "rebuild the corpus with 'bhyvesnap corpus build'"))
            continue
        if actual != sha256:
            what = (f"its sha256 is {actual[:16]}…, not {sha256[:16]}…" if actual else
                    f"it is {actual_size} bytes, not {size}")
            found.append(error("BHS-G004", path, None,
                               f"the corpus file differs from the manifest: {what}",
                               "rebuild the corpus with 'bhyvesnap corpus build', or restore "
                               "the file"))
    return found


def evaluate(job: _Job, targets: Sequence[Target]) -> _Outcome:
    """Verify one image's files, validate it once (checksums too), check it on each target.

    Never raises on a broken corpus: an image that cannot be read at all gets ``None``
    verdicts and the finding that says why.
    """
    from migrate.checker import check
    from migrate.validation import validate

    findings = _file_findings(job)
    try:
        report = validate(job.path, verify=True)
    except BhyvesnapError as exc:
        findings.append(exc.finding)
        return _Outcome(job.name, dict.fromkeys((t.name for t in targets), None),
                        tuple(findings))
    verdicts: dict[str, Verdict | None] = {}
    for target in targets:
        try:
            verdicts[target.name] = check(report, target).verdict
        except BhyvesnapError as exc:
            findings.append(exc.finding)
            verdicts[target.name] = None
    return _Outcome(job.name, verdicts, tuple(findings))


def _outcomes(jobs: list[_Job], targets: tuple[Target, ...],
              workers: int | None) -> list[_Outcome]:
    count = workers if workers is not None else available_cpus()
    if count <= 1 or len(jobs) < SERIAL_BELOW:
        return [evaluate(job, targets) for job in jobs]
    count = min(count, len(jobs))
    chunk = max(1, len(jobs) // (count * 4))
    with ProcessPoolExecutor(max_workers=count, initializer=_init_worker,
                             initargs=(targets,)) as pool:
        return list(pool.map(_worker_job, jobs, chunksize=chunk))


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _status(expected: Verdict | None, verdict: Verdict | None, *, baseline: bool) -> str:
    if expected is None:
        return NEW
    if not baseline:
        return OK if verdict is expected else CHANGED
    if verdict is None:
        return WORSE
    if verdict.rank > expected.rank:
        return WORSE
    return BETTER if verdict.rank < expected.rank else OK


def _pair_finding(pair: Pair, index: int, manifest_path: str, baseline: str | None) -> Finding:
    got = "no verdict (the image could not be read)" if pair.verdict is None else pair.verdict.value
    expected = pair.expected.value if pair.expected else None
    if baseline is None:
        return error("BHS-G001", manifest_path, f"/images/{index}/expected/{pair.target}",
                     f"{pair.image} x {pair.target}: expected {expected}, got {got}",
                     "find out which change caused it; if the new verdict is right, record it "
                     "in the corpus definition and rebuild the corpus")
    return error("BHS-G002", baseline, None,
                 f"{pair.image} x {pair.target}: {got} is worse than the baseline's {expected}",
                 "find out which change made the verdict worse")


def run_gate(targets: Sequence[Target], corpus: str | None = None, *,
             baseline: str | None = None, workers: int | None = None) -> GateResult:
    """Gate every image of ``corpus`` (default: the bundled one) on every target.

    ``baseline`` is the path of an earlier run's JSON output to compare with instead of the
    manifest's expectations; ``workers`` bounds the process pool (default: every CPU this
    process may use). Targets are taken in the given order.
    """
    folder = str(corpus_root()) if corpus is None else corpus
    images = load_manifest(folder)
    reference = load_baseline(baseline) if baseline is not None else None
    jobs = [_Job(image.name, os.path.join(folder, image.path),
                 tuple((os.path.join(folder, path), size, sha) for path, size, sha in image.files))
            for image in images]
    outcomes = {o.name: o for o in _outcomes(jobs, tuple(targets), workers)}
    manifest_path = os.path.join(folder, MANIFEST)
    pairs: list[Pair] = []
    findings: list[Finding] = []
    for index, image in enumerate(images):
        outcome = outcomes[image.name]
        findings.extend(outcome.findings)
        for target in targets:
            expected = (image.expected.get(target.name) if reference is None
                        else reference.get((image.name, target.name)))
            verdict = outcome.verdicts[target.name]
            pair = Pair(image.name, target.name, expected, verdict,
                        _status(expected, verdict, baseline=reference is not None))
            if pair.failed:
                finding = _pair_finding(pair, index, manifest_path, baseline)
                pair = replace(pair, finding=finding)
                findings.append(finding)
            pairs.append(pair)
    return GateResult(tuple(image.name for image in images), tuple(t.name for t in targets),
                      tuple(pairs), tuple(findings),
                      "manifest" if baseline is None else "baseline")


# --------------------------------------------------------------------------- rendering


def _cell(pair: Pair) -> str:
    verdict = "error" if pair.verdict is None else pair.verdict.value
    expected = None if pair.expected is None else pair.expected.value
    if pair.status == CHANGED:
        return f"FAIL {verdict} (expected {expected})"
    if pair.status == WORSE:
        return f"FAIL {verdict} (was {expected})"
    if pair.status == BETTER:
        return f"{verdict} (was {expected})"
    if pair.status == NEW:
        return f"{verdict} (new)"
    return verdict


def _rows(result: GateResult) -> Iterable[list[str]]:
    cells = {(p.image, p.target): p for p in result.pairs}
    for image in result.images:
        yield [image, *(_cell(cells[(image, t)]) for t in result.targets)]


def summary(result: GateResult) -> str:
    """One line: how many pairs, how many of each status, passed or failed."""
    counts: dict[str, int] = {}
    for pair in result.pairs:
        counts[pair.status] = counts.get(pair.status, 0) + 1
    parts = ", ".join(f"{counts[s]} {s}" for s in (OK, BETTER, NEW, CHANGED, WORSE)
                      if s in counts)
    verdict = "FAILED" if result.failed else "passed"
    files = sum(1 for f in result.findings if f.rule == "BHS-G004")
    extra = f", {files} corpus file(s) differ from the manifest" if files else ""
    return (f"gate {verdict}: {len(result.images)} images x {len(result.targets)} targets = "
            f"{len(result.pairs)} pairs against the {result.against} ({parts}){extra}")


def render_table(result: GateResult) -> str:
    """The matrix as a text table (rows images, columns targets) and the summary line."""
    return table(_rows(result), ["image", *result.targets]) + "\n" + summary(result) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(result: GateResult) -> str:
    """A pull-request comment: the summary, the matrix, then every failure."""
    mark = {CHANGED: "❌ ", WORSE: "❌ ", BETTER: "⬆️ ", NEW: "🆕 ", OK: ""}
    cells = {(p.image, p.target): p for p in result.pairs}
    lines = [f"### bhyvesnap gate {'failed ❌' if result.failed else 'passed ✅'}", "",
             summary(result), "",
             "| image | " + " | ".join(f"`{_md_escape(t)}`" for t in result.targets) + " |",
             "|---|" + "---|" * len(result.targets)]
    for image in result.images:
        row = [f"`{_md_escape(image)}`"]
        for target in result.targets:
            pair = cells[(image, target)]
            row.append(mark[pair.status] + _md_escape(_cell(pair).removeprefix("FAIL ")))
        lines.append("| " + " | ".join(row) + " |")
    failures = [f for f in result.findings if f.is_error]
    if failures:
        lines += ["", "**Failures**", ""]
        lines += [f"- `{f.rule}` {_md_escape(f.message)}" for f in failures]
    return "\n".join(lines) + "\n"


def render_junit(result: GateResult) -> str:
    """JUnit XML for CI systems: one test case per pair (class = image, name = target);
    a failed pair is a ``failure``; a problem with the corpus files is an ``error`` case."""
    failing_pairs = sum(1 for p in result.pairs if p.failed)
    corpus_errors = [f for f in result.findings if f.is_error and f.rule not in
                     ("BHS-G001", "BHS-G002")]
    suites = ET.Element("testsuites", name="bhyvesnap gate")
    suite = ET.SubElement(suites, "testsuite", name="bhyvesnap gate",
                          tests=str(len(result.pairs) + len(corpus_errors)),
                          failures=str(failing_pairs), errors=str(len(corpus_errors)),
                          skipped="0")
    for pair in result.pairs:
        case = ET.SubElement(suite, "testcase", classname=pair.image, name=pair.target)
        if pair.finding is not None:
            finding = pair.finding
            failure = ET.SubElement(case, "failure", message=finding.message, type=finding.rule)
            failure.text = finding.one_line()
        elif pair.status != OK:
            ET.SubElement(case, "system-out").text = f"{pair.status}: {_cell(pair)}"
    for finding in corpus_errors:
        case = ET.SubElement(suite, "testcase", classname="corpus", name=finding.file)
        ET.SubElement(case, "error", message=finding.message, type=finding.rule).text = (
            finding.one_line())
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        suites, encoding="unicode") + "\n"
