"""The legacy three-file reader and writer (FORMAT.md section 2).

Images are built by tests/legacy_factory.py, which prints ``F.meta`` independently of the
tool, so a round trip compares the writer against the spec's layout, not against itself.
Each broken image triggers exactly one rule, and the test checks the file and location.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legacy_factory import (
    DEFAULT_A_DEVICES,
    LAYOUT_A_DEVICES,
    LAYOUT_A_STRUCTS,
    LAYOUT_B_STRUCTS,
    LegacyFiles,
    blob,
    build_legacy,
    layout_a_devices,
    layout_a_kernel,
)

from migrate import data
from migrate.findings import ImageError, Severity, UsageError
from migrate.formats import legacy
from migrate.formats.legacy import (
    MAX_META_SIZE,
    legacy_paths,
    read_legacy,
    read_legacy_files,
    write_legacy,
)
from migrate.image import FileRange, Image, LegacyMetadata, StateEntry

Mutate = Callable[[dict[str, Any]], None]


def _rule(files: LegacyFiles, rule: str, file: Path, location: object,
          path: Path | None = None) -> ImageError:
    """Read the image, expect ``rule`` at ``file``:``location``; return the error."""
    with pytest.raises(ImageError) as caught:
        read_legacy(str(path or files.memory))
    finding = caught.value.finding
    assert (finding.rule, finding.file, finding.location) == (rule, str(file), location)
    assert finding.severity is Severity.ERROR
    return caught.value


def _edit(files: LegacyFiles, mutate: Mutate) -> LegacyFiles:
    document = files.meta_document()
    mutate(document)
    files.write_meta(document)
    return files


def _write(image: Image, directory: Path) -> LegacyFiles:
    directory.mkdir()
    out = LegacyFiles(directory / "out", directory / "out.kern", directory / "out.meta")
    write_legacy(image, *map(str, out.paths))
    return out


# --------------------------------------------------------------------------------------------
# reading valid images


def test_reads_legacy_a_fbsd13_0(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-a", ncpus=4, memsize=300 * 1024, vmname="web",
                         memflags=3)
    image = read_legacy(str(files.memory))
    assert image.format == "legacy-a"
    assert image.path == str(files.memory)
    assert image.files == tuple(map(str, files.paths))
    assert image.legacy == LegacyMetadata(ncpus=4, vmname="web", memsize=300 * 1024, memflags=3)
    assert image.memory == FileRange(str(files.memory), 0, 300 * 1024)
    assert [e.name for e in image.kernel] == [name for name, _ in LAYOUT_A_STRUCTS]
    assert [e.name for e in image.devices] == list(LAYOUT_A_DEVICES)
    assert image.generations == {"fbsd13.0"}
    assert image.findings == ()
    expected = dict(layout_a_kernel())
    offset = 0
    for entry in image.kernel:
        assert entry.blob == FileRange(str(files.kern), offset, len(expected[entry.name]))
        assert entry.read() == expected[entry.name]
        offset += entry.size
    sizes = {e.name: e.size for e in image.devices}
    assert (sizes["virtio-blk"], sizes["e1000"], sizes["ahci-cd"]) == (300, 0, 0)
    assert image.devices[2].read() == DEFAULT_A_DEVICES["virtio-blk"]


def test_reads_legacy_a_fbsd13_2_with_empty_vmx(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-a", kernel=layout_a_kernel(vmx_size=0))
    image = read_legacy(str(files.memory))
    assert image.generation == "fbsd13.2"
    vmx = next(e for e in image.kernel if e.name == "vmx")
    assert vmx.size == 0


def test_reads_legacy_b_names_as_written(tmp_path: Path) -> None:
    devices = [("virtio-blk-pci-0-3-0", b"disk"), ("virtio-net@pci.0.2.0", b"net"),
               ("atkbdc", b"kbd")]
    files = build_legacy(tmp_path, "legacy-b", devices=devices)
    image = read_legacy(str(files.memory))
    assert image.format == "legacy-b"
    assert image.generation == "fbsd14"
    assert [e.name for e in image.kernel] == list(LAYOUT_B_STRUCTS)
    assert [(e.name, e.read()) for e in image.devices] == devices


@pytest.mark.parametrize("suffix", ["", ".kern", ".meta"])
def test_path_may_name_any_of_the_three_files(tmp_path: Path, suffix: str) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    given_path = str(files.memory) + suffix
    assert legacy_paths(given_path) == tuple(map(str, files.paths))
    image = read_legacy(given_path)
    assert image.path == given_path
    assert image.files == tuple(map(str, files.paths))


def test_legacy_paths_is_none_for_other_files(tmp_path: Path) -> None:
    single = tmp_path / "image.bhs"
    single.write_bytes(b"BHYVE CHECKPOINT IMAGE 1.0")
    assert legacy_paths(str(single)) is None
    assert legacy_paths(str(tmp_path / "absent.meta")) is None
    assert legacy_paths(str(tmp_path / "nul\0name")) is None


def test_prefers_the_meta_beside_the_given_path(tmp_path: Path) -> None:
    """``x.meta`` with ``x.meta.meta`` beside it is the image ``x.meta`` (FORMAT.md 1)."""
    inner = build_legacy(tmp_path, "legacy-b", name="x.meta")
    assert legacy_paths(str(tmp_path / "x.meta")) == tuple(map(str, inner.paths))


def test_numbers_written_as_strings_or_integral_floats(tmp_path: Path) -> None:
    plain = read_legacy(str(build_legacy(tmp_path / "plain", "legacy-a").memory))
    quoted = build_legacy(tmp_path / "quoted", "legacy-a", numbers_as_strings=True)
    assert quoted.meta_document()["structs"][0]["snapshot_req"] == "5"
    image = read_legacy(str(quoted.memory))
    assert image.legacy == plain.legacy
    assert [(e.name, e.size, e.blob.offset) for e in image.kernel if
            isinstance(e.blob, FileRange)] == [
        (e.name, e.size, e.blob.offset) for e in plain.kernel if isinstance(e.blob, FileRange)]
    _edit(quoted, lambda d: d["basic metadata"].update(ncpus=2.0))
    assert read_legacy(str(quoted.memory)).legacy == plain.legacy


def test_does_not_read_a_4_gib_memory_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading costs the same whatever the memory size: F and F.kern are never opened."""
    files = build_legacy(tmp_path, "legacy-a", memsize=4 << 30)
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    image = read_legacy(str(files.memory))
    assert image.memory.size == 4 << 30
    assert str(files.memory) not in opened
    assert str(files.kern) not in opened
    assert str(files.meta) in opened


# --------------------------------------------------------------------------------------------
# round trips


ROUND_TRIPS: dict[str, dict[str, Any]] = {
    "legacy-a fbsd13.0": {"layout": "legacy-a"},
    "legacy-a fbsd13.2": {"layout": "legacy-a", "kernel": layout_a_kernel(vmx_size=0),
                          "devices": layout_a_devices({"ahci-cd": blob("cd", 7)})},
    "legacy-b": {"layout": "legacy-b", "vmname": "caf\u00e9 \"vm\"", "memflags": 1,
                 "devices": [("virtio-blk-pci-0-3-0", blob("a", 33)),
                             ("nvme@pci.0.4.0", blob("b", 1)), ("atkbdc", blob("c", 5))]},
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_write_read_write_is_identical(tmp_path: Path, case: str) -> None:
    files = build_legacy(tmp_path / "in", memsize=320 * 1024, **ROUND_TRIPS[case])
    image = read_legacy(str(files.memory))
    first = _write(image, tmp_path / "first")
    assert first.contents() == files.contents()  # the factory prints F.meta as the spec says
    again = read_legacy(str(first.meta))
    assert again.generations == image.generations
    assert [(e.name, e.read()) for e in again.devices] == [
        (e.name, e.read()) for e in image.devices]
    second = _write(again, tmp_path / "second")
    assert second.contents() == first.contents()


def test_read_legacy_files_reads_unsuffixed_temporaries(tmp_path: Path) -> None:
    """The migration runner verifies its temporaries before renaming them into place."""
    image = read_legacy(str(build_legacy(tmp_path / "in", "legacy-b").memory))
    (tmp_path / "tmp").mkdir()
    memory, kern, meta = (str(tmp_path / "tmp" / name) for name in (".a.tmp", ".b.tmp", ".c.tmp"))
    write_legacy(image, memory, kern, meta)
    again = read_legacy_files(memory, kern, meta, "final.ckp")
    assert (again.path, again.files) == ("final.ckp", (memory, kern, meta))
    assert [(e.name, e.read()) for e in again.kernel] == [(e.name, e.read()) for e in image.kernel]


def test_writer_output_format(tmp_path: Path) -> None:
    """libxo key order, two-space indentation, final newline (FORMAT.md 2.3, 3.7)."""
    image = read_legacy(str(build_legacy(tmp_path, "legacy-a").memory))
    out = _write(image, tmp_path / "out")
    text = out.meta.read_text()
    assert text.startswith('{\n  "basic metadata": {\n    "ncpus": 2,\n    "vmname": "testvm",\n')
    assert text.endswith("\n  ]\n}\n")
    document = json.loads(text)
    assert list(document) == ["basic metadata", "structs", "devices"]
    assert list(document["structs"][0]) == ["debug_name", "snapshot_req", "size", "file_offset"]
    assert [s["snapshot_req"] for s in document["structs"]] == [r for _, r in LAYOUT_A_STRUCTS]
    assert list(document["devices"][0]) == ["snapshot_req", "size", "file_offset"]
    last = document["devices"][-1]  # absent ahci-cd: size 0 at the running offset
    assert last == {"snapshot_req": "ahci-cd", "size": 0, "file_offset": out.kern.stat().st_size}


def test_writer_renumbers_gaps_and_keeps_holes(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-b", memsize=1 << 20)
    with open(files.kern, "ab") as kern:
        kern.write(b"trailing")
    image = read_legacy(str(files.memory))
    assert [f.rule for f in image.findings] == ["BHS-L009"]
    out = _write(image, tmp_path / "out")
    assert out.kern.stat().st_size == files.kern.stat().st_size - len(b"trailing")
    assert read_legacy(str(out.memory)).findings == ()
    assert out.memory.read_bytes() == files.memory.read_bytes()
    if files.memory.stat().st_blocks * 512 >= 1 << 20:
        pytest.skip("the file system of tmp_path keeps no holes")
    assert out.memory.stat().st_blocks * 512 < 1 << 20


def test_writer_never_loads_blobs_or_memory(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    image = read_legacy(str(build_legacy(tmp_path, "legacy-a").memory))

    def refuse(self: FileRange) -> bytes:
        raise AssertionError(f"{self.path} read into memory")

    monkeypatch.setattr(FileRange, "read", refuse)
    out = _write(image, tmp_path / "out")
    monkeypatch.undo()
    assert read_legacy(str(out.memory)).kernel[1].read() == image.kernel[1].read()


def test_writer_accepts_bytes_blobs(tmp_path: Path) -> None:
    image = read_legacy(str(build_legacy(tmp_path, "legacy-b").memory))
    changed = image.evolve(devices=(StateEntry("atkbdc", "fbsd14", b"\x01\x02"),))
    out = _write(changed, tmp_path / "out")
    assert [(e.name, e.read()) for e in read_legacy(str(out.memory)).devices] == [
        ("atkbdc", b"\x01\x02")]


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "r1"}, "cannot write a r1 image"),
    ({"legacy": None}, "basic metadata"),
    ({"devices": (StateEntry("floppy", "fbsd13.0", b"x"),)}, "layout A's device table"),
    ({"kernel": (StateEntry("vmx", "fbsd14", b"x"),)}, "reads back as generation fbsd13.0"),
    ({"kernel": ()}, "no known kernel ABI generation"),
])
def test_writer_refuses_what_the_reader_would(tmp_path: Path, change: dict[str, Any],
                                              message: str) -> None:
    image = read_legacy(str(build_legacy(tmp_path, "legacy-a").memory))
    with pytest.raises(ValueError, match=message):
        _write(image.evolve(**change), tmp_path / "out")


# --------------------------------------------------------------------------------------------
# one broken image per rule


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_l001_missing_or_empty_file(tmp_path: Path, which: int, how: str) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    victim = files.paths[which]
    if how == "missing":
        victim.unlink()
    else:
        victim.write_bytes(b"")
    given = files.kern if which == 2 else files.meta  # some path that still names the image
    error = _rule(files, "BHS-L001", victim, None if how == "missing" else 0, given)
    assert how in str(error)


def test_l001_not_a_regular_file(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    files.kern.unlink()
    files.kern.mkdir()
    _rule(files, "BHS-L001", files.kern, None)


@pytest.mark.parametrize(("raw", "offset"), [
    (b'{"basic metadata": ', 19),
    (b'{"vmname": "\xc3\xa9", oops}', 17),  # offsets count bytes, not characters
    (b'{"a": "\xff"}', 7),
    (b'[1, 2]', 0),
    (b'"text"', 0),
    (b"[" * 100_000, 0),
])
def test_l002_not_a_json_object(tmp_path: Path, raw: bytes, offset: int) -> None:
    files = build_legacy(tmp_path, "legacy-a")
    files.meta.write_bytes(raw)
    _rule(files, "BHS-L002", files.meta, offset)


def test_l002_repeated_key(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-a")
    text = files.meta.read_text().replace('"size": 300,', '"size": 300, "size": 3,')
    files.meta.write_text(text)
    _rule(files, "BHS-L002", files.meta, "/devices/2/size")


@pytest.mark.parametrize(("mutate", "pointer"), [
    (lambda d: d["basic metadata"].update(ncpus="two"), "/basic metadata/ncpus"),
    (lambda d: d["basic metadata"].update(ncpus=0), "/basic metadata/ncpus"),
    (lambda d: d["basic metadata"].pop("vmname"), "/basic metadata"),
    (lambda d: d["structs"][3].update(size=2**63), "/structs/3/size"),
    (lambda d: d["structs"][3].update(size="9223372036854775808"), "/structs/3/size"),
    (lambda d: d["structs"][3].update(file_offset=-1), "/structs/3/file_offset"),
    (lambda d: d["structs"][3].update(size=True), "/structs/3/size"),
    (lambda d: d["structs"][3].update(size=1.5), "/structs/3/size"),
    (lambda d: d["devices"].__setitem__(0, []), "/devices/0"),
    (lambda d: d.update(extra=1), ""),
    (lambda d: d["structs"][0].update(snapshot_req=42), "/structs/0/snapshot_req"),
    (lambda d: d["structs"][0].update(debug_name="vm"), "/structs/0/debug_name"),
    (lambda d: d["devices"][1].update(snapshot_req="nvme"), "/devices/1/snapshot_req"),
    (lambda d: d["devices"].extend([{}] * 5000), "/devices"),
])
def test_l003_schema_and_tables(tmp_path: Path, mutate: Mutate, pointer: str) -> None:
    files = _edit(build_legacy(tmp_path, "legacy-a"), mutate)
    _rule(files, "BHS-L003", files.meta, pointer)


def test_l003_huge_integer_literal_is_bounded(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-a")
    files.meta.write_text(files.meta.read_text().replace('"ncpus": 2', '"ncpus": ' + "9" * 10**5))
    error = _rule(files, "BHS-L003", files.meta, "/basic metadata/ncpus")
    assert len(str(error)) < 400


def test_schema_limit_matches_reader_limit() -> None:
    for name in ("meta-legacy-a", "meta-legacy-b"):
        schema = data.load_json(f"{name}.schema.json")
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://bhyvesnap.invalid/schemas/{name}.schema.json"
        arrays = [v for v in schema["properties"].values() if v.get("type") == "array"]
        assert [a["maxItems"] for a in arrays] == [legacy.MAX_ENTRIES] * 2


def test_l004_meta_too_large_is_not_read(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    files = build_legacy(tmp_path, "legacy-a")
    os.truncate(files.meta, MAX_META_SIZE + 1)
    monkeypatch.setattr(os, "read", lambda *_: pytest.fail("F.meta was read"))
    _rule(files, "BHS-L004", files.meta, MAX_META_SIZE)


def test_meta_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-a")
    text = files.meta.read_text()
    files.meta.write_text(text + " " * (MAX_META_SIZE - len(text)))
    assert read_legacy(str(files.memory)).format == "legacy-a"


@pytest.mark.parametrize(("mutate", "pointer"), [
    (lambda d: d.pop("structs"), ""),
    (lambda d: d.update(kern_structs=[]), "/kern_structs"),
])
def test_l005_unknown_layout(tmp_path: Path, mutate: Mutate, pointer: str) -> None:
    files = _edit(build_legacy(tmp_path, "legacy-a"), mutate)
    _rule(files, "BHS-L005", files.meta, pointer)


@pytest.mark.parametrize("delta", [-1, 1])
def test_l006_memory_size_mismatch(tmp_path: Path, delta: int) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    size = files.memory.stat().st_size + delta
    os.truncate(files.memory, size)
    _rule(files, "BHS-L006", files.memory, size)


def test_l007_blob_past_the_end(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    os.truncate(files.kern, files.kern.stat().st_size - 1)  # atkbdc, the last blob
    _rule(files, "BHS-L007", files.meta, "/devices/2")


def test_l007_offset_near_2_to_63(tmp_path: Path) -> None:
    files = _edit(build_legacy(tmp_path, "legacy-b"),
                  lambda d: d["kern_structs"][1].update(file_offset=2**63 - 1))
    _rule(files, "BHS-L007", files.meta, "/kern_structs/1")


def test_l008_blobs_overlap(tmp_path: Path) -> None:
    def overlap(document: dict[str, Any]) -> None:
        document["kern_structs"][4]["file_offset"] -= 1

    files = _edit(build_legacy(tmp_path, "legacy-b"), overlap)
    _rule(files, "BHS-L008", files.meta, "/kern_structs/4")


def test_l008_blob_inside_a_larger_one(tmp_path: Path) -> None:
    def nest(document: dict[str, Any]) -> None:
        big = document["devices"][0]  # virtio-blk: 300 bytes
        document["devices"][2]["file_offset"] = big["file_offset"] + 100
        document["devices"][1]["file_offset"] = big["file_offset"] + 200

    files = _edit(build_legacy(tmp_path, "legacy-b"), nest)
    _rule(files, "BHS-L008", files.meta, "/devices/2")


def test_l009_gap_and_trailing_bytes_are_warnings(tmp_path: Path) -> None:
    files = build_legacy(tmp_path, "legacy-b")
    document = files.meta_document()
    start = document["kern_structs"][2]["file_offset"]
    document["kern_structs"][2]["file_offset"] += 2  # a 2-byte gap before vioapic
    document["kern_structs"][2]["size"] -= 2
    files.write_meta(document)
    with open(files.kern, "ab") as kern:
        kern.write(b"xy")
    image = read_legacy(str(files.memory))
    found = [(f.rule, f.severity, f.file, f.location) for f in image.findings]
    total = files.kern.stat().st_size
    assert found == [("BHS-L009", Severity.WARNING, str(files.kern), start),
                     ("BHS-L009", Severity.WARNING, str(files.kern), total - 2)]
    assert image.kernel[2].blob == FileRange(str(files.kern), start + 2,
                                             image.kernel[2].size)


@pytest.mark.parametrize(("layout", "mutate", "pointer"), [
    ("legacy-a", lambda d: d["devices"][3].update(snapshot_req="virtio-blk"), "/devices/3"),
    ("legacy-a", lambda d: d["structs"].append(dict(d["structs"][0])), "/structs/10"),
    ("legacy-b", lambda d: d["devices"][1].update(device="virtio-blk-pci-0-3-0"), "/devices/1"),
    ("legacy-b", lambda d: d["kern_structs"][8].update(device="vm"), "/kern_structs/8"),
])
def test_l010_duplicate_entry(tmp_path: Path, layout: str, mutate: Mutate,
                              pointer: str) -> None:
    files = _edit(build_legacy(tmp_path, layout), mutate)
    _rule(files, "BHS-L010", files.meta, pointer)


def test_l011_no_generation_matches(tmp_path: Path) -> None:
    kernel = [(name, data) for name, data in layout_a_kernel() if name != "vmx"]
    files = build_legacy(tmp_path, "legacy-a", kernel=kernel)
    error = _rule(files, "BHS-L011", files.meta, "/structs")
    assert "fbsd13.0: legacy-a with vmx of size 1 or more" in str(error)


def test_inaccessible_path_is_a_usage_error(tmp_path: Path) -> None:
    """A path the system refuses (here: a name longer than NAME_MAX) is BHS-X002."""
    name = str(tmp_path / ("x" * 300))
    with pytest.raises(UsageError) as caught:
        read_legacy(name)
    assert (caught.value.finding.rule, caught.value.finding.file) == ("BHS-X002", name)


# --------------------------------------------------------------------------------------------
# hostile input: never anything but ImageError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=12,
)
POINTERS = st.sampled_from([("basic metadata", "ncpus"), ("basic metadata", "memsize"),
                            ("structs", 0, "size"), ("structs", 2, "file_offset"),
                            ("devices", 1), ("devices", 0, "snapshot_req"), ("structs",),
                            ("basic metadata",)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(where=POINTERS, value=JSON)
def test_any_value_anywhere_is_an_image_error_or_an_image(tmp_path_factory: pytest.TempPathFactory,
                                                          where: tuple[Any, ...],
                                                          value: Any) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    files = build_legacy(directory, "legacy-a", memsize=8192)
    document = files.meta_document()
    target: Any = document
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    files.meta.write_text(json.dumps(document))
    try:
        read_legacy(str(files.memory))
    except ImageError as exc:
        finding = exc.finding
    else:
        return
    assert finding.file in {str(p) for p in files.paths}
    assert finding.location is not None


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(min_size=1, max_size=64))
def test_any_meta_bytes_are_an_image_error(tmp_path_factory: pytest.TempPathFactory,
                                           raw: bytes) -> None:
    files = build_legacy(tmp_path_factory.mktemp("bytes"), "legacy-b", memsize=4096)
    files.meta.write_bytes(raw)
    with pytest.raises(ImageError) as caught:
        read_legacy(str(files.memory))
    assert caught.value.finding.rule in {"BHS-L002", "BHS-L003", "BHS-L005"}
