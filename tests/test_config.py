"""The config section codec (FORMAT.md 3.7): bhyve -k syntax, memory sizes, canonical
writing, legacy construction and merging with a user's file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.config import (
    BhyveConfig,
    config_from_legacy,
    legacy_memflags,
    merge_user_config,
    parse_config,
    parse_memory_size,
    to_document,
    validate_config,
    write_config,
)
from migrate.data import schema_errors
from migrate.findings import ImageError, UsageError
from migrate.image import LegacyMetadata

MIB = 1024 * 1024
GIB = 1024 * MIB
BASIC = "name=vm0\ncpus=2\nmemory.size=1G\n"


def image_error(text: str | bytes, base_offset: int = 0) -> ImageError:
    with pytest.raises(ImageError) as caught:
        parse_config(text, "vm.img", base_offset)
    return caught.value


# --- parsing -------------------------------------------------------------------------------

def test_parse_basic_and_properties() -> None:
    cfg = parse_config(BASIC + "pci.0.3.0.device=virtio-blk\npci.0.3.0.path=/d.img\n", "f")
    assert cfg.values == {"name": "vm0", "cpus": "2", "memory.size": "1G",
                          "pci.0.3.0.device": "virtio-blk", "pci.0.3.0.path": "/d.img"}
    assert (cfg.name, cfg.cpus, cfg.memory_size) == ("vm0", 2, GIB)
    assert cfg.pci_devices() == [(0, 3, 0, "virtio-blk")]
    assert not cfg.incomplete


def test_comments_only_in_column_one_and_empty_lines_skipped() -> None:
    cfg = parse_config("# a comment=x\n\n#\nname=vm\n #k=v\n", "f")
    assert cfg.values == {"name": "vm", " #k": "v"}


def test_indented_comment_without_equals_is_a_syntax_error() -> None:
    error = image_error("name=vm\n  # note\n")
    assert error.finding.rule == "BHS-C001"
    assert error.finding.location == 8


def test_value_is_untrimmed_and_split_at_first_equals() -> None:
    cfg = parse_config("name= vm 0 \nlpc.com1.path=a=b\nx=1\r\n", "f")
    assert cfg.values["name"] == " vm 0 "
    assert cfg.values["lpc.com1.path"] == "a=b"
    assert cfg.values["x"] == "1\r"
    # bhyve strips only the newline: a CRLF file keeps "\r" in the value, so cpus is bad
    crlf = image_error("name=vm\r\ncpus=1\r\n")
    assert (crlf.finding.rule, crlf.finding.location) == ("BHS-C003", 9)


def test_last_key_wins_and_only_the_final_value_is_checked() -> None:
    cfg = parse_config("cpus=zero\nname=a\ncpus=4\nname=b\n", "f")
    assert cfg.values == {"cpus": "4", "name": "b"}
    error = image_error("cpus=4\nname=a\ncpus=many\n")
    assert (error.finding.rule, error.finding.location) == ("BHS-C003", 14)


def test_no_final_newline_and_empty_text() -> None:
    assert parse_config("name=vm", "f").values == {"name": "vm"}
    assert parse_config("", "f").values == {}
    assert parse_config(b"name=vm\n", "f").values == {"name": "vm"}


def test_error_offsets_are_bytes_plus_base_offset() -> None:
    # "é" is two bytes in UTF-8: the offset counts bytes, not characters
    error = image_error("name=é\nbroken\n", base_offset=4096)
    assert error.finding.location == 4096 + len("name=é\n".encode())
    assert error.finding.file == "vm.img"
    assert "not key=value" in error.finding.message


def test_not_utf8_is_c001_at_the_bad_byte() -> None:
    error = image_error(b"name=vm\ncpus=\xff\n", base_offset=100)
    assert (error.finding.rule, error.finding.location) == ("BHS-C001", 113)
    assert "UTF-8" in error.finding.message
    surrogate = image_error("name=\udcff\n")
    assert (surrogate.finding.rule, surrogate.finding.location) == ("BHS-C001", 5)


@pytest.mark.parametrize(
    ("text", "location", "words"),
    [
        ("=value\n", 0, "empty"),
        ("name=vm\na..b=1\n", 8, "empty component"),
        ("name=vm\n.a=1\n", 8, "empty component"),
        ("name=\0\n", 5, "NUL"),
        ("memory=1\nmemory.size=1G\n", 9, "both a value and a group"),
        ("memory.size=1G\nmemory=1\n", 15, "both a value and a group"),
        ("a.b.c=1\na.b=2\n", 8, "both a value and a group"),
    ],
)
def test_syntax_errors(text: str, location: int, words: str) -> None:
    error = image_error(text)
    assert (error.finding.rule, error.finding.location) == ("BHS-C001", location)
    assert words in error.finding.message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("cpus=0", "cpus"),
        ("cpus=65536", "cpus"),
        ("cpus=-1", "cpus"),
        ("cpus=2x", "cpus"),
        ("cpus=", "cpus"),
        ("memory.size=lots", "not a number"),
        ("memory.size=2GB", "unknown suffix"),
        ("memory.size=512k", "below 1 MiB"),
        ("memory.size=0", "below 1 MiB"),
        ("memory.size=16e", "64 bits"),
        ("memory.wired=maybe", "boolean"),
        ("pci.0.03.0.device=virtio-blk", "unpadded"),
        ("pci.0.3.device=virtio-blk", "pci.<bus>.<slot>.<function>.<name>"),
        ("pci.0.32.0.device=virtio-blk", "outside"),
        ("pci.0.3.8.device=virtio-blk", "outside"),
        ("pci.256.0.0.device=virtio-blk", "outside"),
    ],
)
def test_bad_values_are_c003_at_their_line(line: str, words: str) -> None:
    error = image_error(f"name=vm\n{line}\n", base_offset=10)
    assert (error.finding.rule, error.finding.location) == ("BHS-C003", 18)
    assert words in error.finding.message


def test_values_bhyve_accepts() -> None:
    cfg = parse_config("cpus=0x10\nmemory.size= 2G\nmemory.wired=YES\npcibus=x\n", "f")
    assert cfg.cpus == 16
    assert cfg.memory_size == 2 * GIB
    assert legacy_memflags(cfg) == 0x2


# --- memory sizes --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512 * MIB),
        ("1", MIB),
        ("1048575", 1048575 * MIB),
        ("1048576", 1048576),
        ("2147483648", 2 * GIB),
        ("2G", 2 * GIB),
        ("4g", 4 * GIB),
        ("512M", 512 * MIB),
        ("512k", 512 * 1024),
        ("1t", 1 << 40),
        ("1P", 1 << 50),
        ("1e", 1 << 60),
        ("0x200", 512 * MIB),
        ("010", 8 * MIB),
        ("0", 0),
        (" \t64", 64 * MIB),
    ],
)
def test_parse_memory_size(text: str, size: int) -> None:
    assert parse_memory_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "2GB", "2 G", "-1", "+1", "1.5G", "16e", "2x", "09"])
def test_parse_memory_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_memory_size(text)


# --- the record itself ---------------------------------------------------------------------

def test_config_is_immutable_and_hashable() -> None:
    source = {"name": "vm"}
    cfg = BhyveConfig(source)
    source["name"] = "changed"
    assert cfg.values["name"] == "vm"
    with pytest.raises(TypeError):
        cfg.values["name"] = "x"  # type: ignore[index]
    assert cfg == BhyveConfig({"name": "vm"})
    assert hash(cfg) == hash(BhyveConfig({"name": "vm"}))
    assert len({cfg, BhyveConfig({"name": "vm"})}) == 1


@pytest.mark.parametrize(("values", "words"),
                         [({"cpus": "none"}, "cpus"), ({"": "x"}, "empty"),
                          ({"#k": "v"}, "comment"), ({"k": "a\nb"}, "newline"),
                          ({"a=b": "c"}, "'='"), ({"pci.x.0.0.device": "y"}, "unpadded")])
def test_building_a_bad_config_by_hand_is_a_value_error(values: dict[str, str],
                                                        words: str) -> None:
    with pytest.raises(ValueError, match=words):
        BhyveConfig(values)


def test_missing_keys_read_as_none() -> None:
    cfg = BhyveConfig({})
    assert (cfg.name, cfg.cpus, cfg.memory_size, cfg.pci_devices()) == (None, None, None, [])


def test_pci_devices_sorted_by_address_not_text() -> None:
    cfg = parse_config("pci.0.10.0.device=b\npci.0.9.0.device=a\npci.1.0.0.device=d\n"
                       "pci.0.9.1.device=c\npci.0.9.0.path=x\n", "f")
    assert cfg.pci_devices() == [(0, 9, 0, "a"), (0, 9, 1, "c"), (0, 10, 0, "b"),
                                 (1, 0, 0, "d")]


# --- canonical writing ---------------------------------------------------------------------

def test_write_config_canonical_order() -> None:
    text = (
        "zeta=1\nlpc.com1.path=stdio\npci.0.10.0.device=xhci\n"
        "pci.0.2.0.path=/x\npci.0.2.0.device=virtio-blk\nthreads=1\nmemory.wired=true\n"
        "acpi_tables=false\nmemory.size=512\ncores=2\nsockets=1\ncpus=2\nname=vm0\n"
        "lpc.bootrom=/b\n# comment\npci.0.31.0.device=lpc\n"
    )
    assert write_config(parse_config(text, "f")) == (
        "name=vm0\ncpus=2\nsockets=1\ncores=2\nthreads=1\n"
        "memory.size=536870912\nmemory.wired=true\n"
        "pci.0.2.0.device=virtio-blk\npci.0.2.0.path=/x\npci.0.10.0.device=xhci\n"
        "pci.0.31.0.device=lpc\n"
        "lpc.bootrom=/b\nlpc.com1.path=stdio\n"
        "acpi_tables=false\nzeta=1\n"
    )


def test_write_empty_config() -> None:
    assert write_config(BhyveConfig({})) == ""


_keys = st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=4), min_size=1, max_size=3)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\n\0"))


@given(st.dictionaries(_keys.map(lambda parts: "x." + ".".join(parts)), _values, max_size=8),
       st.integers(1, 1 << 40), st.integers(1, 64),
       st.dictionaries(st.tuples(st.integers(0, 255), st.integers(0, 31), st.integers(0, 7)),
                       st.text(alphabet="abc-", min_size=1), max_size=4))
def test_write_parse_round_trip(extra: dict[str, str], memory: int, cpus: int,
                                devices: dict[tuple[int, int, int], str]) -> None:
    values = {"name": "vm", "cpus": str(cpus), "memory.size": str(memory * MIB)}
    for (bus, slot, function), emulation in devices.items():
        values[f"pci.{bus}.{slot}.{function}.device"] = emulation
    tree_safe = {k: v for k, v in extra.items()
                 if not any(o != k and (o.startswith(k + ".") or k.startswith(o + "."))
                            for o in extra)}
    cfg = BhyveConfig({**values, **tree_safe})
    text = write_config(cfg)
    again = parse_config(text, "f")
    assert again == cfg
    assert write_config(again) == text
    assert text.endswith("\n")


# --- decoded form and validation ------------------------------------------------------------

def test_to_document_matches_schema() -> None:
    cfg = parse_config("pci.0.3.0.device=virtio-blk\nname=vm0\nmemory.size=1G\ncpus=2\n"
                       "snapshot.config_incomplete=true\n", "f")
    document = to_document(cfg)
    assert document == {
        "name": "vm0", "cpus": 2, "memory_size": GIB,
        "devices": [{"bus": 0, "slot": 3, "function": 0, "emulation": "virtio-blk"}],
        "incomplete": True,
        "values": {"name": "vm0", "cpus": "2", "memory.size": "1G",
                   "pci.0.3.0.device": "virtio-blk", "snapshot.config_incomplete": "true"},
    }
    assert list(document["values"]) == ["name", "cpus", "memory.size", "pci.0.3.0.device",
                                         "snapshot.config_incomplete"]
    assert schema_errors("config", document) == []
    validate_config(cfg, "f", 4096)


@pytest.mark.parametrize("missing", ["name", "cpus", "memory.size"])
def test_validate_requires_keys(missing: str) -> None:
    values = {"name": "vm", "cpus": "1", "memory.size": "1G"}
    del values[missing]
    with pytest.raises(ImageError) as caught:
        validate_config(BhyveConfig(values), "img", 4096)
    finding = caught.value.finding
    assert (finding.rule, finding.file, finding.location) == ("BHS-C002", "img", 4096)
    assert missing in finding.message


@pytest.mark.parametrize(("extra", "pointer"), [({"name": ""}, "/name"),
                                                 ({"pci.0.3.0.device": ""},
                                                  "/devices/0/emulation")])
def test_validate_schema_problems_are_c003_with_pointer(extra: dict[str, str],
                                                        pointer: str) -> None:
    cfg = BhyveConfig({"name": "vm", "cpus": "1", "memory.size": "1G", **extra})
    with pytest.raises(ImageError) as caught:
        validate_config(cfg, "img", 0)
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-C003", pointer)


# --- built from legacy metadata -------------------------------------------------------------

def test_config_from_legacy() -> None:
    meta = LegacyMetadata(ncpus=4, vmname="web", memsize=2 * GIB, memflags=0x3)
    cfg = config_from_legacy(meta, ["virtio-net-pci-0-2-0", "lpc@pci.0.31.0",
                                    "virtio-blk@pci.0.3.0", "atkbdc"])
    assert write_config(cfg) == (
        "name=web\ncpus=4\nmemory.guest_in_core=true\nmemory.size=2147483648\n"
        "memory.wired=true\npci.0.2.0.device=virtio-net\npci.0.3.0.device=virtio-blk\n"
        "pci.0.31.0.device=lpc\nsnapshot.config_incomplete=true\n"
    )
    assert cfg.incomplete
    assert legacy_memflags(cfg) == 0x3
    validate_config(cfg, "vm.ckp", 0)


def test_config_from_legacy_without_flags_or_addresses() -> None:
    cfg = config_from_legacy(LegacyMetadata(1, "a", MIB, 0), ["atkbdc", "virtio-blk"])
    assert cfg.values == {"name": "a", "cpus": "1", "memory.size": str(MIB),
                          "snapshot.config_incomplete": "true"}
    assert legacy_memflags(cfg) == 0


@pytest.mark.parametrize(
    ("meta", "devices", "pointer"),
    [
        (LegacyMetadata(1, "a", MIB - 1, 0), [], "/basic metadata/memsize"),
        (LegacyMetadata(1, "a", 1 << 64, 0), [], "/basic metadata/memsize"),
        (LegacyMetadata(0, "a", MIB, 0), [], "/basic metadata/ncpus"),
        (LegacyMetadata(1, "a\nb", MIB, 0), [], "/basic metadata/vmname"),
        (LegacyMetadata(1, "a", MIB, 0), ["atkbdc", "virtio-blk@pci.0.3.0",
                                          "virtio-net-pci-0-3-0"], "/devices/2"),
    ],
)
def test_config_from_legacy_refuses_what_no_config_expresses(
        meta: LegacyMetadata, devices: list[str], pointer: str) -> None:
    with pytest.raises(ImageError) as caught:
        config_from_legacy(meta, devices, file="vm.ckp.meta")
    finding = caught.value.finding
    assert (finding.rule, finding.file, finding.location) == ("BHS-C003", "vm.ckp.meta", pointer)


# --- merging a user's file ------------------------------------------------------------------

def _legacy() -> BhyveConfig:
    return config_from_legacy(LegacyMetadata(2, "vm0", 2 * GIB, 0),
                              ["virtio-blk@pci.0.3.0", "atkbdc"])


def test_merge_user_keys_win_and_markers_dropped() -> None:
    user = parse_config("config.dump=1\nname=vm0\nmemory.size=2G\ncpus=0x2\n"
                        "pci.0.3.0.path=/vm/disk.img\npci.0.3.0.device=virtio-blk\n"
                        "pci.0.4.0.device=virtio-net\nsnapshot.config_incomplete=true\n",
                        "user.conf")
    merged = merge_user_config(_legacy(), user, "user.conf")
    assert merged.values == {"name": "vm0", "cpus": "2", "memory.size": str(2 * GIB),
                             "pci.0.3.0.device": "virtio-blk",
                             "pci.0.3.0.path": "/vm/disk.img",
                             "pci.0.4.0.device": "virtio-net"}
    assert not merged.incomplete


def test_merge_takes_required_keys_the_image_lacks() -> None:
    merged = merge_user_config(BhyveConfig({"cpus": "1"}),
                               BhyveConfig({"name": "x", "cpus": "1"}), "u")
    assert merged.values == {"cpus": "1", "name": "x"}


@pytest.mark.parametrize(("line", "key", "mine", "theirs"),
                         [("memory.size=4G", "memory.size", "2147483648", "4G"),
                          ("cpus=4", "cpus", "2", "4"),
                          ("name=other", "name", "vm0", "other")])
def test_merge_conflicts_name_key_and_both_values(line: str, key: str, mine: str,
                                                  theirs: str) -> None:
    with pytest.raises(UsageError) as caught:
        merge_user_config(_legacy(), parse_config(line, "user.conf"), "user.conf")
    finding = caught.value.finding
    assert (finding.rule, finding.file) == ("BHS-C004", "user.conf")
    assert key in finding.message
    assert repr(mine) in finding.message
    assert repr(theirs) in finding.message


def test_merge_key_clash_is_c004() -> None:
    user = parse_config("pci.0.3.0.device.x=1\n", "user.conf")
    with pytest.raises(UsageError) as caught:
        merge_user_config(_legacy(), user, "user.conf")
    assert caught.value.finding.rule == "BHS-C004"
    assert "pci.0.3.0.device.x" in caught.value.finding.message


@pytest.mark.parametrize(("lines", "flags"),
                         [("", 0), ("memory.guest_in_core=true", 1), ("memory.wired=on", 2),
                          ("memory.wired=1\nmemory.guest_in_core=Yes", 3),
                          ("memory.wired=false\nmemory.guest_in_core=no", 0)])
def test_legacy_memflags(lines: str, flags: int) -> None:
    assert legacy_memflags(parse_config(lines, "f")) == flags
