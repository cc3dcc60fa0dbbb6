"""Fuzzing the three readers of untrusted bytes: bounded, in CI (issue 7, part 2).

The property is the one docs/ARCHITECTURE.md states for every reader: whatever the bytes,
the nvlist decoder, ``read_single`` and ``read_legacy`` either return a model or raise a
:class:`~migrate.findings.BhyvesnapError` whose finding names the file and points into it;
no other exception, and no hang (each example has a deadline). Inputs are mutants of valid
images built by the test factories: byte edits (flips, extreme size/offset words, cuts,
inserts, repeats) and edits of the decoded structure (an nvlist header's pairs, an F.meta
document's values), which get past the first checks and reach the deeper ones. What the
nvlist decoder accepts must also pack and decode back unchanged.

The long, coverage-guided runs are the atheris targets ``bench/fuzz_*.py`` (counts and
results in docs/FUZZING.md); the example counts here keep this file near 30 seconds.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legacy_factory import LegacyFiles, build_legacy
from nvlist_models import unique_list
from single_factory import build

from migrate.findings import BhyvesnapError, Finding
from migrate.formats.legacy import read_legacy
from migrate.formats.single import read_single
from migrate.nvlist import NvList, NvlistError, NvPair, NvType, pack, unpack

DEADLINE = timedelta(seconds=2)
"""Longer than any reader takes on these small files by two orders of magnitude: an
example that needs it is a hang."""

INTERESTING = (0, 1, 19, 0x7F, 0xFF, 4096, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
               2**64 - 1)
"""Sizes, counts and offsets at the edges of the formats' field widths."""


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=DEADLINE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------
# byte mutation


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, anchors: tuple[int, ...] = ()) -> bytes:
    """``seed`` after one to four edits, anywhere or (when given) near one of ``anchors``,
    the starts of the structures worth hitting (a uniform offset mostly lands in padding)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        near: bool = draw(st.booleans())
        if anchors and near:
            at = draw(st.sampled_from(anchors)) + draw(st.integers(0, 96))
        else:
            at = draw(st.integers(0, max(len(data) - 1, 0)))
        how = draw(st.sampled_from(["flip", "byte", "word", "cut", "insert", "delete",
                                    "repeat"]))
        if how == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "byte" and at < len(data):
            data[at] = draw(st.sampled_from([0, 1, 0x20, 0x6C, 0x7F, 0x80, 0xFF]))
        elif how == "word":
            width = draw(st.sampled_from([2, 4, 8]))
            order = draw(st.sampled_from("<>"))
            value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
            if at + width <= len(data):
                struct.pack_into(order + {2: "H", 4: "I", 8: "Q"}[width], data, at, value)
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            chunk = bytes(data[at:at + draw(st.integers(1, 48))])
            data[at:at] = chunk * draw(st.integers(1, 6))
    return bytes(data)


def assert_located(finding: Finding, files: set[str], sizes: dict[str, int]) -> None:
    """A finding names one of the input's files and points into it (a byte offset within
    the file, or a JSON pointer, or nowhere for a file-level problem)."""
    assert finding.file in files, finding
    assert finding.rule.startswith("BHS-"), finding
    if isinstance(finding.location, int):
        assert 0 <= finding.location <= sizes[finding.file], finding


# --------------------------------------------------------------------------------------------
# the nvlist decoder


NAMES = st.sampled_from(["a", "b", "offset", "size", "type", "A", "\udcff"])
SCALARS: st.SearchStrategy[tuple[NvType, Any]] = st.one_of(
    st.tuples(st.just(NvType.NULL), st.none()),
    st.tuples(st.just(NvType.BOOL), st.booleans()),
    st.tuples(st.just(NvType.NUMBER), st.sampled_from(INTERESTING)),
    st.tuples(st.just(NvType.STRING), st.text(max_size=6).filter(lambda s: "\0" not in s)
              .map(lambda s: s.encode("utf-8", "surrogatepass")
                   .decode("utf-8", "surrogateescape"))),
    st.tuples(st.just(NvType.BINARY), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just(NvType.BOOL_ARRAY), st.lists(st.booleans(), min_size=1, max_size=4)
              .map(tuple)),
    st.tuples(st.just(NvType.NUMBER_ARRAY), st.lists(st.sampled_from(INTERESTING),
                                                     min_size=1, max_size=4).map(tuple)),
    st.tuples(st.just(NvType.STRING_ARRAY), st.lists(st.sampled_from(["", "x", "yz"]),
                                                     min_size=1, max_size=4).map(tuple)),
)


MODELS = st.recursive(
    st.builds(unique_list, st.integers(0, 3), st.lists(st.tuples(NAMES, SCALARS), max_size=4)),
    lambda children: st.builds(unique_list, st.integers(0, 3), st.lists(st.tuples(NAMES, st.one_of(
        SCALARS, st.tuples(st.just(NvType.NVLIST), children),
        st.tuples(st.just(NvType.NVLIST_ARRAY),
                  st.lists(children, min_size=1, max_size=3).map(tuple)))), max_size=4)),
    max_leaves=10)


@st.composite
def packed_mutants(draw: st.DrawFn) -> bytes:
    model = draw(MODELS)
    data = pack(model, size_rule=draw(st.sampled_from(["modern", "legacy"])))
    return draw(mutated(data))


@fuzz_settings(1500)
@given(packed_mutants())
def test_nvlist_mutants_raise_nvlist_errors_or_round_trip(data: bytes) -> None:
    try:
        nvl = unpack(data, None)
    except NvlistError as exc:
        assert_located(exc.finding, {"<nvlist>"}, {"<nvlist>": len(data)})
        return
    assert unpack(pack(nvl), None) == nvl
    assert unpack(pack(nvl, size_rule="legacy"), None) == nvl


# --------------------------------------------------------------------------------------------
# the single-file reader


@dataclass(frozen=True)
class SingleSeed:
    """A valid image's bytes and where its structures start (where mutation pays)."""

    name: str
    data: bytes
    anchors: tuple[int, ...]


@pytest.fixture(scope="module")
def single_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SingleSeed]:
    directory = tmp_path_factory.mktemp("single-seeds")
    seeds = {}
    for image_format in ("r1", "r2"):
        path = build(directory, image_format, name=f"seed.{image_format}")
        image = read_single(str(path))
        starts = (0, 60, 68, *(s.offset for s in image.sections))
        seeds[image_format] = SingleSeed(image_format, path.read_bytes(), starts)
    return seeds


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory the examples of a test overwrite their input file in."""
    return tmp_path_factory.mktemp("fuzz")


def read_single_checked(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        read_single(str(path))
    except BhyvesnapError as exc:
        assert_located(exc.finding, {str(path)}, {str(path): len(data)})


@fuzz_settings(1000)
@given(image_format=st.sampled_from(["r1", "r2"]), data=st.data())
def test_read_single_on_byte_mutants(single_seeds: dict[str, SingleSeed], scratch: Path,
                                     image_format: str, data: st.DataObject) -> None:
    seed = single_seeds[image_format]
    read_single_checked(scratch / "mutant.bhyve", data.draw(mutated(seed.data, seed.anchors)))


def lists_of(nvl: NvList, path: tuple[int, ...] = ()) -> Iterator[tuple[int, ...]]:
    """The index paths of ``nvl`` and of every list nested in it (as NVLIST pairs)."""
    yield path
    for i, pair in enumerate(nvl.pairs):
        if isinstance(pair.value, NvList):
            yield from lists_of(pair.value, (*path, i))


def edit_at(nvl: NvList, path: tuple[int, ...], edit: Callable[[NvList], NvList]) -> NvList:
    if not path:
        return edit(nvl)
    pairs = list(nvl.pairs)
    holder = pairs[path[0]]
    assert isinstance(holder.value, NvList)
    pairs[path[0]] = NvPair(holder.name, holder.type, edit_at(holder.value, path[1:], edit))
    return NvList(nvl.flags, tuple(pairs))


@st.composite
def header_edit(draw: st.DrawFn, header: NvList) -> NvList:
    """The header with one of its lists changed: a pair dropped, retyped, set to an extreme
    number, repeated, or a new pair added."""
    path = draw(st.sampled_from(list(lists_of(header))))
    how = draw(st.sampled_from(["drop", "replace", "number", "repeat", "add"]))
    scalar = draw(SCALARS)
    extreme = draw(st.sampled_from(INTERESTING))
    pick = draw(st.integers(0, 1 << 16))
    name = draw(NAMES)

    def edit(nvl: NvList) -> NvList:
        pairs = list(nvl.pairs)
        if how == "add" or not pairs:
            pairs.append(NvPair(name, *scalar))
            return NvList(nvl.flags | 2, tuple(pairs))  # NO_UNIQUE: let the reader judge
        i = pick % len(pairs)
        if how == "drop":
            del pairs[i]
        elif how == "replace":
            pairs[i] = NvPair(pairs[i].name, *scalar)
        elif how == "number":
            pairs[i] = NvPair(pairs[i].name, NvType.NUMBER, extreme)
        else:
            pairs.insert(i, pairs[i])
            return NvList(nvl.flags | 2, tuple(pairs))
        return NvList(nvl.flags, tuple(pairs))

    return edit_at(header, path, edit)


@fuzz_settings(600)
@given(image_format=st.sampled_from(["r1", "r2"]), data=st.data())
def test_read_single_on_crafted_headers(single_seeds: dict[str, SingleSeed], scratch: Path,
                                        image_format: str, data: st.DataObject) -> None:
    """A structurally valid header nvlist with wrong content, in place of the real one."""
    seed = single_seeds[image_format]
    (old_size,) = struct.unpack_from("<I", seed.data, 64)
    header = data.draw(header_edit(unpack(seed.data[68:68 + old_size])))
    new = pack(header)
    image = bytearray(seed.data)
    image[68:68 + old_size] = bytes(old_size)
    image[68:68 + len(new)] = new  # a longer header runs over the sections, as a bad one may
    struct.pack_into("<I", image, 64, len(new))
    read_single_checked(scratch / "crafted.bhyve", bytes(image))


# --------------------------------------------------------------------------------------------
# the legacy F.meta reader


@pytest.fixture(scope="module")
def legacy_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LegacyFiles]:
    directory = tmp_path_factory.mktemp("legacy")
    return {layout: build_legacy(directory / layout, layout, memsize=64 * 1024)
            for layout in ("legacy-a", "legacy-b")}


def read_legacy_checked(files: LegacyFiles, meta: bytes) -> None:
    files.meta.write_bytes(meta)
    sizes = {str(path): path.stat().st_size for path in files.paths}
    try:
        read_legacy(str(files.memory))
    except BhyvesnapError as exc:
        assert_located(exc.finding, set(sizes), sizes)


@pytest.fixture(scope="module")
def legacy_seeds(legacy_images: dict[str, LegacyFiles]) -> dict[str, bytes]:
    return {layout: files.meta.read_bytes() for layout, files in legacy_images.items()}


@fuzz_settings(1000)
@given(layout=st.sampled_from(["legacy-a", "legacy-b"]), data=st.data())
def test_read_legacy_on_meta_byte_mutants(legacy_images: dict[str, LegacyFiles],
                                          legacy_seeds: dict[str, bytes], layout: str,
                                          data: st.DataObject) -> None:
    read_legacy_checked(legacy_images[layout], data.draw(mutated(legacy_seeds[layout])))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.sampled_from([*INTERESTING, -1, -(2**63), 2**64, 10**30])
    | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


def places(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value in a JSON document (the root excluded)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from places(child, (*path, key))


@st.composite
def document_edit(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """The document with one value replaced, removed or (in an array) repeated, printed as
    JSON; sometimes also a key spelt twice, which JSON parsers disagree on."""
    where = draw(st.sampled_from(list(places(document))))
    parent: Any = document
    for key in where[:-1]:
        parent = parent[key]
    how = draw(st.sampled_from(["replace", "remove", "repeat"]))
    if how == "replace":
        parent[where[-1]] = draw(JSON_VALUES)
    elif how == "remove":
        del parent[where[-1]]
    elif isinstance(parent, list):
        parent.insert(where[-1], parent[where[-1]])
    text = json.dumps(document, indent=draw(st.sampled_from([None, 2])))
    if draw(st.integers(0, 4)) == 0:
        text = text.replace('"size"', '"size": 1, "size"', 1)
    return text.encode()


@fuzz_settings(600)
@given(layout=st.sampled_from(["legacy-a", "legacy-b"]), data=st.data())
def test_read_legacy_on_document_edits(legacy_images: dict[str, LegacyFiles],
                                       legacy_seeds: dict[str, bytes], layout: str,
                                       data: st.DataObject) -> None:
    document = json.loads(legacy_seeds[layout])
    read_legacy_checked(legacy_images[layout], data.draw(document_edit(document)))
