"""The libnv codec against the real library's vectors, hand-made bytes and properties.

The vectors in tests/data/nvlist/ were produced and judged by the real C libnv (see their
README), so they are the independent expectation: decoding must give their description,
encoding their exact bytes, and the edge buffers must be accepted or rejected as libnv did.
"""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nvlist_models import unique_list

from migrate.findings import ImageError, UsageError
from migrate.nvlist import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_SIZE,
    NvList,
    NvlistError,
    NvPair,
    NvType,
    from_description,
    pack,
    to_description,
    unpack,
)

DATA = Path(__file__).parent / "data" / "nvlist"


def _cases(variant: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((DATA / variant / "cases.json").read_text())["cases"]
    return cases


EDGE: list[dict[str, Any]] = json.loads((DATA / "edge" / "edge_cases.json").read_text())["cases"]
SEND = "descriptors_via_send"


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("variant", ["legacy", "modern"])
def test_every_vector_decodes_to_its_description(variant: str) -> None:
    for case in _cases(variant):
        data = (DATA / variant / case["file"]).read_bytes()
        assert data.hex() == case["hex"]
        if case["name"] == SEND:
            with pytest.raises(NvlistError) as caught:
                unpack(data, case["unpack_flags"])
            assert caught.value.rule == "BHS-N005"
            assert caught.value.offset == 3  # the top header's nvlh_descriptors
            nvl = unpack(data, case["unpack_flags"], nfds=4)
        else:
            nvl = unpack(data, case["unpack_flags"])
        assert to_description(nvl) == case["root"], case["name"]


@pytest.mark.parametrize("variant", ["legacy", "modern"])
def test_every_description_packs_to_the_vector_bytes(variant: str) -> None:
    for case in _cases(variant):
        model = from_description(case["root"])
        expected = (DATA / variant / case["file"]).read_bytes()
        send = case["name"] == SEND
        assert pack(model, size_rule=variant,  # type: ignore[arg-type]
                    descriptors=send) == expected, case["name"]


def _model(name: str) -> NvList:
    return from_description(next(c for c in _cases("modern") if c["name"] == name)["root"])


def test_modern_is_the_default_size_rule() -> None:
    model = _model("nested_deep")
    assert pack(model) == (DATA / "modern" / "nested_deep.bin").read_bytes()
    assert pack(model) != pack(model, size_rule="legacy")


def test_nested_deep_datasizes_of_both_rules() -> None:
    """NVLIST.md section 5: a/b/c are 197/108/48 (modern) and 229/169/109 (legacy)."""
    model = _model("nested_deep")

    def datasizes(data: bytes) -> list[int]:
        # pair a at 19, b at 19+21+19, c at 59+21+19 (header 19 + name "x\0" 2, then child header)
        return [struct.unpack_from("<Q", data, at + 3)[0] for at in (19, 59, 99)]

    assert datasizes(pack(model)) == [197, 108, 48]
    assert datasizes(pack(model, size_rule="legacy")) == [229, 169, 109]


def test_sending_descriptors_is_refused_by_default() -> None:
    model = _model(SEND)
    with pytest.raises(NvlistError) as caught:
        pack(model)
    assert caught.value.rule == "BHS-N005"
    assert caught.value.offset == 19  # the first pair, "fd"


WORKED_EXAMPLE = bytes.fromhex(
    "6c0000000000000000000087000000000000000302000800000000000000000000000000000061000100"
    "000000000000040200030000000000000000000000000000007300686900050200290000000000000000"
    "000000000000006e006c000000000000000000002a0000000000000002020001000000000000000000000000"
    "000000620001ff01000000000000000000000000000000000000"
)


def test_worked_example_of_the_spec_byte_by_byte() -> None:
    nvl = NvList.of(("a", NvType.NUMBER, 1), ("s", NvType.STRING, "hi"),
                    ("n", NvType.NVLIST, NvList.of(("b", NvType.BOOL, True))))
    data = pack(nvl)
    assert len(data) == 154
    assert data == WORKED_EXAMPLE
    assert pack(nvl, size_rule="legacy") == WORKED_EXAMPLE  # the child is the last pair
    # the fields NVLIST.md section 9 calls out
    assert data[0:3] == b"\x6c\x00\x00"
    assert struct.unpack_from("<Q", data, 11)[0] == 135
    assert data[72] == 5
    assert struct.unpack_from("<Q", data, 75)[0] == 41
    assert struct.unpack_from("<Q", data, 104)[0] == 42  # to the end of the WHOLE buffer
    assert data[134:] == b"\xff\x01\x00" + bytes(16) + b"\x00"
    assert unpack(data) == nvl


# --------------------------------------------------------------------------- edge vectors

EXPECTED_REJECTION = {  # rule and offset of each rejected edge buffer (NVLIST.md section 7)
    "bad_magic": ("BHS-N002", 0),
    "flags_unknown_bit": ("BHS-N003", 2),
    "flags_mismatch_EILSEQ": ("BHS-N006", 2),
    "size_too_big": ("BHS-N004", 11),
    "trailing_byte": ("BHS-N004", 11),
    "truncated": ("BHS-N004", 11),
    "descriptors_without_fds": ("BHS-N005", 3),
    "empty_buffer": ("BHS-N001", 0),
    "type_0": ("BHS-N007", 19),
    "type_13": ("BHS-N007", 19),
    "type_253": ("BHS-N007", 19),
    "namesize_0": ("BHS-N008", 20),
    "name_not_terminated": ("BHS-N008", 38),
    "name_embedded_nul": ("BHS-N008", 38),
    "name_2048_rejected": ("BHS-N008", 20),
    "bool_value_2": ("BHS-N010", 40),
    "bool_datasize_2": ("BHS-N009", 22),
    "null_datasize_1": ("BHS-N009", 22),
    "number_datasize_4": ("BHS-N009", 22),
    "string_not_terminated": ("BHS-N010", 40),
    "string_embedded_nul": ("BHS-N010", 40),
    "string_datasize_0": ("BHS-N009", 22),
    "binary_datasize_0": ("BHS-N009", 22),
    "bool_array_nitems_mismatch": ("BHS-N009", 22),
    "number_array_nitems_0": ("BHS-N009", 22),
    "string_array_nitems_too_big": ("BHS-N010", 40),
    "string_array_nitems_too_small": ("BHS-N010", 40),
    "string_array_last_unterminated": ("BHS-N010", 40),
    "up_at_top_level": ("BHS-N012", 48),
    "array_next_at_top_level": ("BHS-N012", 48),
    "up_with_datasize": ("BHS-N001", 154),
    "nvlist_datasize_0": ("BHS-N009", 75),
    "nvlist_datasize_too_big": ("BHS-N009", 75),
    "nested_nvlh_size_wrong": ("BHS-N004", 104),
    "nested_bad_magic": ("BHS-N002", 93),
    "nvlist_array_nitems_0": ("BHS-N010", 30),
    "nvlist_array_nitems_more_than_elements": ("BHS-N001", 149),
    "nvlist_array_nitems_fewer_than_elements": ("BHS-N007", 110),
    "dup_without_no_unique": ("BHS-N011", 67),
    "dup_ignore_case": ("BHS-N011", 67),
    "dup_in_child_without_flag": ("BHS-N011", 107),
    "be_array_nitems_be": ("BHS-N009", 22),
    "be_nvlist_array_nitems_be": ("BHS-N001", 30),
}


def test_edge_table_covers_every_rejected_vector() -> None:
    assert {c["name"] for c in EDGE if not c["accepted"]} == set(EXPECTED_REJECTION)


@pytest.mark.parametrize("case", EDGE, ids=_ids(EDGE))
def test_edge_vector_verdict_matches_libnv(case: dict[str, Any]) -> None:
    data = (DATA / "edge" / case["file"]).read_bytes()
    assert data.hex() == case["hex"]
    if case["accepted"]:
        nvl = unpack(data, case["unpack_flags"])
        assert _dump(nvl) == case["nvlist_dump"]
        assert unpack(pack(nvl), case["unpack_flags"]) == nvl
    else:
        with pytest.raises(NvlistError) as caught:
            unpack(data, case["unpack_flags"])
        assert (caught.value.rule, caught.value.offset) == EXPECTED_REJECTION[case["name"]]
        assert caught.value.finding.location == caught.value.offset


def _dump(nvl: NvList, level: int = 0) -> str:
    """libnv's ``nvlist_dump()`` text for the types the accepted edge vectors use."""
    lines: list[str] = []
    pad = " " * (4 * level)

    def number(value: int) -> str:
        signed = value - (1 << 64) if value >= 1 << 63 else value
        return f"{value} ({signed}) ({value:#x})" if value else "0 (0) (0)"

    for pair in nvl.pairs:
        head = f"{pad}{pair.name} ({pair.type.name.replace('_', ' ')}):"
        value = pair.value
        if pair.type is NvType.NUMBER and isinstance(value, int):
            lines.append(f"{head} {number(value)}")
        elif pair.type is NvType.STRING and isinstance(value, str):
            lines.append(f"{head} [{value}]")
        elif pair.type is NvType.BOOL:
            lines.append(f"{head} {'TRUE' if value else 'FALSE'}")
        elif pair.type is NvType.BOOL_ARRAY and isinstance(value, tuple):
            lines.append(f"{head} [ " + ", ".join("TRUE" if v else "FALSE" for v in value) + " ]")
        elif pair.type is NvType.NUMBER_ARRAY and isinstance(value, tuple):
            shown = (number(v) if isinstance(v, int) else repr(v) for v in value)
            lines.append(f"{head} [ " + ", ".join(shown) + " ]")
        elif pair.type is NvType.NVLIST and isinstance(value, NvList):
            lines.append(head)
            if value.pairs:
                lines.append(_dump(value, level + 1))
        elif pair.type is NvType.NVLIST_ARRAY and isinstance(value, tuple):
            lines.append(f"{head} {len(value)}")
            for element in value:
                assert isinstance(element, NvList)
                if element.pairs:
                    lines.append(_dump(element, level + 1))
                lines.append(f"{pad}    ,")
        else:
            raise AssertionError(f"no dump form for {pair.type.name} in this test")
    return "\n".join(lines)


def test_edge_quirks_decode_as_libnv_keeps_them() -> None:
    def edge(name: str, flags: int = 0) -> NvList:
        return unpack((DATA / "edge" / f"{name}.bin").read_bytes(), flags)

    assert edge("bool_array_value_7").get("v") == (True, 7)  # the byte 7 is kept ...
    assert pack(edge("bool_array_value_7")).hex() == next(
        c["hex"] for c in EDGE if c["name"] == "bool_array_value_7")
    assert edge("be_scalars").get("a", NvType.NUMBER) == 0x0102030405060708
    assert edge("be_array_nitems_le").get("v") == (1, 2)
    assert edge("up_closes_array_element").names() == ["arr", "x"]
    assert edge("nested_flags_no_unique").get("n", NvType.NVLIST) == NvList(
        2, (NvPair("b", NvType.BOOL, True),))
    assert edge("missing_final_up") == edge("worked_example_ok")
    dup = edge("dup_no_unique_ok", 2)
    assert dup.flags == 2
    assert [p.value for p in dup.pairs] == [1, 2]


def test_array_left_early_keeps_the_elements_libnv_created() -> None:
    """nitems 3 and an UP after the first element: libnv keeps three lists, two empty."""
    one = NvList.of(("a", NvType.NUMBER, 1))
    data = bytearray(pack(NvList.of(("arr", NvType.NVLIST_ARRAY, (one,)))))
    struct.pack_into("<Q", data, 30, 3)  # the array pair's nitems
    data[-20] = 0xFF  # its ARRAY_NEXT becomes an NVLIST_UP
    assert unpack(bytes(data)).get("arr") == (one, NvList(), NvList())
    # with the ARRAY_NEXT kept the next element header is missing: truncated
    data[-20] = 0xFE
    with pytest.raises(NvlistError) as caught:
        unpack(bytes(data))
    assert (caught.value.rule, caught.value.offset) == ("BHS-N001", len(data))


# --------------------------------------------------------------------------- limits


def _chain(depth: int) -> bytes:
    """A list nested ``depth`` levels, written without closing markers (libnv accepts)."""
    total = 19 + 40 * depth
    out = bytearray()
    for level in range(depth + 1):
        out += struct.pack("<BBBQQ", 0x6C, 0, 0, 0, total - len(out) - 19)
        if level < depth:
            out += struct.pack("<BHQQ", 5, 2, 1, 0) + b"n\0"
    return bytes(out)


def test_nesting_limit() -> None:
    deep = NvList()
    for _ in range(MAX_DEPTH):
        deep = NvList.of(("n", NvType.NVLIST, deep))
    assert unpack(pack(deep)) == deep
    assert unpack(_chain(MAX_DEPTH)) == deep
    with pytest.raises(NvlistError) as caught:
        unpack(_chain(MAX_DEPTH + 1))
    # the header of the 257th nested list, after the pair header and its name "n\0"
    assert (caught.value.rule, caught.value.offset) == ("BHS-N013", 19 + 40 * MAX_DEPTH + 21)
    with pytest.raises(NvlistError) as caught:
        pack(NvList.of(("n", NvType.NVLIST, deep)))
    assert caught.value.rule == "BHS-N013"
    # an array element is a level too
    with pytest.raises(NvlistError) as caught:
        pack(NvList.of(("n", NvType.NVLIST_ARRAY, (deep,))))
    assert caught.value.rule == "BHS-N013"


def test_nesting_far_beyond_the_limit_is_no_recursion_error() -> None:
    with pytest.raises(NvlistError) as caught:
        unpack(_chain(50_000))
    assert caught.value.rule == "BHS-N013"


def test_item_limit() -> None:
    ok = NvList.of(("v", NvType.BOOL_ARRAY, (False,) * MAX_ITEMS))
    assert unpack(pack(ok)) == ok
    data = struct.pack("<BBBQQ", 0x6C, 0, 0, 0, 19 + 2 + MAX_ITEMS + 1) \
        + struct.pack("<BHQQ", 8, 2, MAX_ITEMS + 1, MAX_ITEMS + 1) + b"v\0" + bytes(MAX_ITEMS + 1)
    with pytest.raises(NvlistError) as caught:
        unpack(data)
    assert (caught.value.rule, caught.value.offset) == ("BHS-N014", 30)
    with pytest.raises(NvlistError) as caught:
        pack(NvList.of(("v", NvType.NUMBER_ARRAY, (1,) * (MAX_ITEMS + 1))))
    assert caught.value.rule == "BHS-N014"


def test_huge_counts_are_rejected_before_allocating() -> None:
    """nitems 2^60 on a tiny buffer must fail on the count, not on memory."""
    for kind in (8, 9, 10, 11, 12):
        data = struct.pack("<BBBQQ", 0x6C, 0, 0, 0, 19 + 2 + 8) \
            + struct.pack("<BHQQ", kind, 2, 8, 1 << 60) + b"v\0" + bytes(8)
        with pytest.raises(NvlistError) as caught:
            unpack(data)
        assert caught.value.rule in {"BHS-N001", "BHS-N009", "BHS-N010"}


def test_size_limit() -> None:
    assert MAX_SIZE == 64 * 1024 * 1024
    with pytest.raises(NvlistError) as caught:
        unpack(WORKED_EXAMPLE, max_size=153)
    assert (caught.value.rule, caught.value.offset) == ("BHS-N015", 0)
    assert unpack(WORKED_EXAMPLE, max_size=154).names() == ["a", "s", "n"]


# --------------------------------------------------------------------------- API details


def test_error_relocates_into_a_file() -> None:
    with pytest.raises(NvlistError) as caught:
        unpack(b"\x6d" + WORKED_EXAMPLE[1:])
    moved = caught.value.at("image.bhs", base=68)
    assert isinstance(moved, ImageError)
    assert moved.finding.file == "image.bhs"
    assert moved.finding.location == 68
    assert moved.finding.rule == "BHS-N002"
    assert str(moved) == "image.bhs:byte 68: nvlist header magic is 0x6d, not 0x6c [BHS-N002]"


def test_find_get_names_and_ignore_case() -> None:
    nvl = NvList.of(("Key", NvType.NUMBER, 1), ("key2", NvType.STRING, "v"),
                    ("Key", NvType.STRING, "dup"), flags=0x03)
    assert nvl.names() == ["Key", "key2", "Key"]
    assert nvl.get("KEY") == 1
    assert nvl.get("kEy", NvType.STRING) == "dup"  # first pair of that name AND type
    assert nvl.find("KÉY") is None  # strcasecmp folds ASCII only
    with pytest.raises(KeyError):
        nvl.get("key2", NvType.NUMBER)
    strict = NvList.of(("Key", NvType.NUMBER, 1))
    assert strict.find("key") is None
    with pytest.raises(KeyError):
        strict.get("nope")
    assert NvList.of(("v", NvType.NUMBER_ARRAY, [1, 2])).get("v") == (1, 2)


def test_any_name_bytes_round_trip() -> None:
    raw = b"\xff\xfe caf\xc3\xa9 \x80"
    name = raw.decode("utf-8", "surrogateescape")
    nvl = NvList.of((name, NvType.STRING, name))
    data = pack(nvl)
    assert raw + b"\0" in data
    assert unpack(data) == nvl
    assert from_description(json.loads(json.dumps(to_description(nvl)))) == nvl


def test_unpack_accepts_every_buffer_type_and_flags_none() -> None:
    data = (DATA / "edge" / "flags_match.bin").read_bytes()
    expected = unpack(data, 1)
    assert unpack(bytearray(data), 1) == expected
    assert unpack(memoryview(data), 1) == expected
    assert unpack(data, None) == expected
    with pytest.raises(UsageError):
        unpack(data, 4)
    with pytest.raises(UsageError):
        unpack("text", 0)  # type: ignore[arg-type]


def test_bool_and_number_stay_distinct() -> None:
    as_bool = NvList.of(("x", NvType.BOOL, True))
    as_number = NvList.of(("x", NvType.NUMBER, 1))
    assert as_bool != as_number
    assert unpack(pack(as_bool)).pairs[0].value is True
    assert type(unpack(pack(as_number)).pairs[0].value) is int


@pytest.mark.parametrize(("nvl", "rule", "offset"), [
    (NvList.of(("x", NvType.NUMBER, True)), "BHS-N010", 19),
    (NvList.of(("x", NvType.NUMBER, -1)), "BHS-N010", 19),
    (NvList.of(("x", NvType.NUMBER, 1 << 64)), "BHS-N010", 19),
    (NvList.of(("x", NvType.BOOL, 1)), "BHS-N010", 19),
    (NvList.of(("x", NvType.STRING, "a\0b")), "BHS-N010", 19),
    (NvList.of(("x", NvType.STRING, b"bytes")), "BHS-N010", 19),
    (NvList.of(("x", NvType.BINARY, b"")), "BHS-N010", 19),
    (NvList.of(("x", NvType.BINARY, "text")), "BHS-N010", 19),
    (NvList.of(("x", NvType.NULL, 0)), "BHS-N010", 19),
    (NvList.of(("x", NvType.NUMBER_ARRAY, ())), "BHS-N010", 19),
    (NvList.of(("x", NvType.BOOL_ARRAY, (256,))), "BHS-N010", 19),
    (NvList.of(("x", NvType.STRING_ARRAY, ("ok", "\ud800"))), "BHS-N010", 19),
    (NvList.of(("x", NvType.NVLIST, "not a list")), "BHS-N010", 19),
    (NvList.of(("x", NvType.NVLIST_ARRAY, (NvList(), 3))), "BHS-N010", 19),
    (NvList.of(("x", NvType.DESCRIPTOR, 0)), "BHS-N005", 19),
    (NvList.of(("a", NvType.NULL, None), ("a\0b", NvType.NULL, None)), "BHS-N008", 40),
    (NvList.of(("n" * 2048, NvType.NULL, None)), "BHS-N008", 19),
    (NvList.of(("a", NvType.NULL, None), ("a", NvType.NULL, None)), "BHS-N011", 40),
    (NvList.of(("a", NvType.NULL, None), ("A", NvType.NULL, None), flags=1), "BHS-N011", 40),
    (NvList(flags=4), "BHS-N003", 2),
    (NvList(pairs=(NvPair("x", 99, None),)), "BHS-N007", 19),  # type: ignore[arg-type]
])
def test_pack_refuses_invalid_models(nvl: NvList, rule: str, offset: int) -> None:
    with pytest.raises(NvlistError) as caught:
        pack(nvl)
    assert (caught.value.rule, caught.value.offset) == (rule, offset)


def test_pack_rejects_a_bad_size_rule() -> None:
    with pytest.raises(UsageError):
        pack(NvList(), size_rule="ancient")  # type: ignore[arg-type]


def _doc(*pairs: dict[str, Any], flags: int = 0) -> dict[str, Any]:
    return {"flags": flags, "pairs": list(pairs)}


@pytest.mark.parametrize(("doc", "rule", "pointer"), [
    ([], "BHS-N010", "/"),
    ({"flags": 0}, "BHS-N010", "/"),
    (_doc(flags=8), "BHS-N003", "/flags"),
    (_doc({"name": "x", "type": "NUMBER"}), "BHS-N010", "/pairs/0"),
    (_doc({"name": "x", "type": "NUMBR", "value": 1}), "BHS-N007", "/pairs/0/type"),
    (_doc({"name": 5, "type": "NULL", "value": None}), "BHS-N008", "/pairs/0/name"),
    (_doc({"name": "x", "type": "NUMBER", "value": -1}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "NUMBER", "value": 1.0}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "BINARY", "value": "abc"}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "BINARY", "value": ""}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "BOOL_ARRAY", "value": [True, 300]}), "BHS-N010",
     "/pairs/0/value/1"),
    (_doc({"name": "x", "type": "STRING_ARRAY", "value": []}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "DESCRIPTOR", "value": 3}), "BHS-N010", "/pairs/0/value"),
    (_doc({"name": "x", "type": "NVLIST", "value": _doc(flags=9)}), "BHS-N003",
     "/pairs/0/value/flags"),
    (_doc({"name": "x", "type": "NVLIST_ARRAY", "value": [_doc(), 1]}), "BHS-N010",
     "/pairs/0/value/1"),
    (_doc({"name": "d", "type": "NULL", "value": None},
          {"name": "d", "type": "NULL", "value": None}), "BHS-N011", "/pairs/1/name"),
])
def test_from_description_points_at_the_problem(doc: Any, rule: str, pointer: str) -> None:
    with pytest.raises(ImageError) as caught:
        from_description(doc, file="d.json")
    finding = caught.value.finding
    assert (finding.rule, finding.location, finding.file) == (rule, pointer, "d.json")


def test_from_description_depth_limit_without_recursion_error() -> None:
    doc: dict[str, Any] = _doc()
    for _ in range(MAX_DEPTH + 1):
        doc = _doc({"name": "n", "type": "NVLIST", "value": doc})
    with pytest.raises(ImageError) as caught:
        from_description(doc)
    assert caught.value.finding.rule == "BHS-N013"


def test_bool_array_description_keeps_odd_bytes() -> None:
    doc = _doc({"name": "v", "type": "BOOL_ARRAY", "value": [True, 0, 7]})
    nvl = from_description(doc)
    assert nvl.get("v") == (True, False, 7)
    assert to_description(nvl)["pairs"][0]["value"] == [True, False, 7]
    assert pack(nvl).endswith(b"v\0\x01\x00\x07")


# --------------------------------------------------------------------------- properties

_NAME_BYTES = st.binary(max_size=12).filter(lambda raw: b"\0" not in raw)
_TEXT = _NAME_BYTES.map(lambda raw: raw.decode("utf-8", "surrogateescape"))
_U64 = st.integers(0, (1 << 64) - 1)


def _scalar_pairs() -> st.SearchStrategy[tuple[NvType, Any]]:
    return st.one_of(
        st.tuples(st.just(NvType.NULL), st.none()),
        st.tuples(st.just(NvType.BOOL), st.booleans()),
        st.tuples(st.just(NvType.NUMBER), _U64),
        st.tuples(st.just(NvType.STRING), _TEXT),
        st.tuples(st.just(NvType.BINARY), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just(NvType.BOOL_ARRAY), st.lists(
            st.one_of(st.booleans(), st.integers(2, 255)), min_size=1, max_size=5).map(tuple)),
        st.tuples(st.just(NvType.NUMBER_ARRAY),
                  st.lists(_U64, min_size=1, max_size=5).map(tuple)),
        st.tuples(st.just(NvType.STRING_ARRAY),
                  st.lists(_TEXT, min_size=1, max_size=5).map(tuple)),
    )


def _lists(children: st.SearchStrategy[NvList]) -> st.SearchStrategy[NvList]:
    value = st.one_of(
        _scalar_pairs(),
        st.tuples(st.just(NvType.NVLIST), children),
        st.tuples(st.just(NvType.NVLIST_ARRAY),
                  st.lists(children, min_size=1, max_size=3).map(tuple)),
    )
    return st.builds(unique_list, st.integers(0, 3),
                     st.lists(st.tuples(_TEXT, value), max_size=5))


NVLISTS = st.recursive(
    st.builds(unique_list, st.integers(0, 3),
              st.lists(st.tuples(_TEXT, _scalar_pairs()), max_size=4)),
    _lists, max_leaves=8)


@settings(max_examples=2000, deadline=None)
@given(NVLISTS, st.sampled_from(["modern", "legacy"]))
def test_pack_unpack_round_trip(nvl: NvList, rule: str) -> None:
    data = pack(nvl, size_rule=rule)  # type: ignore[arg-type]
    assert unpack(data, nvl.flags) == nvl
    assert from_description(json.loads(json.dumps(to_description(nvl)))) == nvl


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([None, 0, 1, 2, 3]))
def test_random_bytes_raise_only_nvlist_errors(data: bytes, flags: int | None) -> None:
    with contextlib.suppress(NvlistError):
        unpack(data, flags)


SEEDS = [(DATA / variant / case["file"]).read_bytes()
         for variant in ("legacy", "modern") for case in _cases(variant)] \
    + [(DATA / "edge" / case["file"]).read_bytes() for case in EDGE if case["accepted"]]


@st.composite
def _mutants(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "delete", "word"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=24))
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 24))]
        elif how == "word" and len(data) >= at + 8:  # a size/count field made huge or small
            struct.pack_into("<Q", data, at, draw(st.sampled_from(
                [0, 1, 19, 2**31, 2**63, 2**64 - 1, draw(st.integers(0, 2**64 - 1))])))
    return bytes(data)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutants(), st.sampled_from([None, 0]), st.integers(0, 4))
def test_mutated_vectors_raise_only_nvlist_errors(data: bytes, flags: int | None,
                                                  nfds: int) -> None:
    try:
        nvl = unpack(data, flags, nfds=nfds)
    except NvlistError as exc:
        offset = exc.offset
        nvl = None
    if nvl is None:
        assert 0 <= offset <= len(data)
        return
    # whatever libnv accepts, this codec can write back and read again unchanged
    again = pack(nvl, descriptors=nfds > 0)
    # re-packing announces one descriptor per item, which repeated indexes can make exceed nfds
    assert unpack(again, nvl.flags, nfds=nfds + len(data)) == nvl
