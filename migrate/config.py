"""The ``config`` section: bhyve_config(5) text, parsed, written canonically and merged.

FORMAT.md 3.7 fixes the syntax to bhyve's own ``-k`` file syntax, so a config section can be
handed to ``bhyve -k`` as it is, and a user's ``-k`` file or ``-o config.dump=1`` output can be
merged into an image. Values are kept as the exact strings the text holds (bhyve interprets
them only when it uses them); the few keys this tool must understand (``cpus``,
``memory.size``, the memory flags, PCI addresses) are interpreted the way bhyve does, so that
the tool never reads a config differently from the bhyve that will restore it.

A :class:`BhyveConfig` always satisfies the rules a value-level check can decide (keys that
bhyve can store, values of known keys that parse); :func:`parse_config` reports a violation
with its byte offset, and building one by hand with a bad value is a programming error
(``ValueError``). What only a whole config can violate (a required key missing, an empty name
or emulation) is checked by :func:`validate_config`; that the keys form a tree (no name both a
value and a group) is checked where configs are read (:func:`parse_config`) or combined
(:func:`merge_user_config`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from migrate import findings
from migrate.data import json_pointer, schema_errors
from migrate.devices import parse_device_name, valid_address
from migrate.findings import ImageError, UsageError
from migrate.image import LegacyMetadata

MIB = 1 << 20
MAX_MEMORY_SIZE = (1 << 64) - 1
"""bhyve keeps the memory size in a ``size_t``."""

MAX_CPUS = 65535
"""bhyve parses ``cpus`` with ``parse_int_value("cpus", value, 1, UINT16_MAX)``."""

REQUIRED_KEYS: tuple[str, ...] = ("name", "cpus", "memory.size")
"""The keys every config section has (FORMAT.md 3.2); also the ones a merge may not change."""

INCOMPLETE_KEY = "snapshot.config_incomplete"
"""Marks a config built from legacy metadata alone (bhyve ignores keys it does not know)."""

DUMP_KEY = "config.dump"
"""The key of ``bhyve -o config.dump=1``; ignored in a user's file."""

MEMFLAG_GUEST_IN_CORE = 0x1
MEMFLAG_WIRED = 0x2
_MEMFLAG_KEYS: tuple[tuple[str, int], ...] = (
    ("memory.guest_in_core", MEMFLAG_GUEST_IN_CORE),
    ("memory.wired", MEMFLAG_WIRED),
)
_MEMFLAG_NAMES = frozenset(key for key, _ in _MEMFLAG_KEYS)

_TOPOLOGY_ORDER = {"name": 0, "cpus": 1, "sockets": 2, "cores": 3, "threads": 4}
_GROUP_MEMORY, _GROUP_PCI, _GROUP_LPC, _GROUP_OTHER = 5, 6, 7, 8

# strtoul(3) with base 0, as bhyve calls it: optional leading white space, then hexadecimal
# (0x...), octal (0...) or decimal digits. Signs are refused: strtoul would negate modulo 2**64.
_C_NUMBER = re.compile(r"[ \t\n\v\f\r]*(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)(.*)", re.DOTALL)
_SUFFIX_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_UNPADDED = re.compile(r"0|[1-9][0-9]*")


def _strtoul(text: str) -> tuple[int, str] | None:
    """The number at the start of ``text`` and the rest, as strtoul(3) with base 0 splits it."""
    match = _C_NUMBER.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    if digits[:2] in ("0x", "0X"):
        number = int(digits[2:], 16)
    elif digits.startswith("0") and len(digits) > 1:
        number = int(digits[1:], 8)
    else:
        number = int(digits)
    return number, match.group(2)


def parse_memory_size(value: str) -> int:
    """``memory.size`` in bytes, read as bhyve's ``vm_parse_memsize`` reads it.

    A plain number below 1 MiB is a number of MiB (bhyve's compatibility rule), any other
    plain number is bytes; a number followed by one of ``k m g t p e`` (either case) is
    multiplied by the matching power of 1024 (``expand_number(3)``). Raises ``ValueError``
    for anything else, or a size that does not fit 64 bits.
    """
    parsed = _strtoul(value)
    if parsed is None:
        raise ValueError(f"memory size {value!r} is not a number")
    number, rest = parsed
    if rest == "":
        size = number * MIB if number < MIB else number
    elif len(rest) == 1 and rest.lower() in _SUFFIX_SHIFT:
        size = number << _SUFFIX_SHIFT[rest.lower()]
    else:
        raise ValueError(f"memory size {value!r} has an unknown suffix {rest!r}")
    if size > MAX_MEMORY_SIZE:
        raise ValueError(f"memory size {value!r} does not fit 64 bits")
    return size


def _parse_cpus(value: str) -> int:
    """``cpus`` as bhyve's ``parse_int_value`` reads it (strtol base 0, 1 to 65535)."""
    parsed = _strtoul(value)
    if parsed is None or parsed[1] != "" or not 1 <= parsed[0] <= MAX_CPUS:
        raise ValueError(f"cpus {value!r} is not a number from 1 to {MAX_CPUS}")
    return parsed[0]


def _parse_bool(value: str) -> bool | None:
    """A boolean as bhyve's ``get_config_bool`` reads it; ``None`` if it is none."""
    folded = value.lower()
    if folded in ("true", "on", "yes", "1"):
        return True
    if folded in ("false", "off", "no", "0"):
        return False
    return None


def _pci_address(key: str) -> tuple[int, int, int] | None:
    """The (bus, slot, function) of a ``pci.B.S.F.<name>`` key; ``None`` for other keys.

    Raises ``ValueError`` for a ``pci.`` key that bhyve would never look up: bhyve builds the
    names it looks for with ``pci.%d.%d.%d``, so padded or out-of-range numbers are ignored
    silently by it, which would drop a device on restore.
    """
    parts = key.split(".", 4)
    if parts[0] != "pci":
        return None
    if len(parts) < 5 or not all(_UNPADDED.fullmatch(p) for p in parts[1:4]):
        raise ValueError(f"key {key!r} is not pci.<bus>.<slot>.<function>.<name> with "
                         "unpadded decimal numbers")
    bus, slot, function = int(parts[1]), int(parts[2]), int(parts[3])
    if not valid_address(bus, slot, function):
        raise ValueError(f"key {key!r} names pci {bus}:{slot}:{function}, outside bus 0-255, "
                         "slot 0-31, function 0-7")
    return bus, slot, function


def _key_problem(key: str) -> str | None:
    """Why bhyve could not store ``key`` (or this tool could not write it back), if it cannot."""
    if key == "":
        return "the key is empty"
    if any(part == "" for part in key.split(".")):
        return f"key {key!r} has an empty component"
    if any(c in key for c in "=\n\0"):
        return f"key {key!r} contains '=', a newline or a NUL"
    if key.startswith("#"):
        return f"key {key!r} starts with '#', which would be read back as a comment"
    return None


def _value_problem(key: str, value: str) -> str | None:
    """Why the value of a key this tool interprets does not parse, if it does not."""
    if "\n" in value or "\0" in value:
        return f"the value of {key} contains a newline or a NUL"
    try:
        if key == "cpus":
            _parse_cpus(value)
        elif key == "memory.size":
            if parse_memory_size(value) < MIB:
                return (f"memory.size {value!r} is below 1 MiB, which the canonical decimal "
                        "form cannot express (bhyve reads such a number as MiB)")
        elif key in _MEMFLAG_NAMES:
            if _parse_bool(value) is None:
                return f"{key} {value!r} is not a boolean (true/false, on/off, yes/no, 1/0)"
        else:
            _pci_address(key)
    except ValueError as exc:
        return str(exc)
    return None


class _Tree:
    """Incremental check that keys form a tree, as bhyve stores the config.

    ``memory=1`` and ``memory.size=1G`` cannot both exist, whatever their order: one name
    would be both a value and a group of values.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._groups: dict[str, str] = {}

    def add(self, key: str) -> str | None:
        """Record ``key``; returns the earlier key it clashes with, if any."""
        if key in self._values:
            return None
        if key in self._groups:
            return self._groups[key]
        parts = key.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((p for p in prefixes if p in self._values), None)
        if clash is not None:
            return clash
        self._values.add(key)
        for prefix in prefixes:
            self._groups.setdefault(prefix, key)
        return None


def _tree_conflict(keys: Iterable[str]) -> tuple[str, str] | None:
    """The first key (in the given order) that clashes with an earlier one, and that one."""
    tree = _Tree()
    for key in keys:
        clash = tree.add(key)
        if clash is not None:
            return key, clash
    return None


@dataclass(frozen=True)
class BhyveConfig:
    """A VM configuration: every ``key=value`` of the text, the last value of a key winning."""

    values: Mapping[str, str]

    def __post_init__(self) -> None:
        values = dict(self.values)
        for key, value in values.items():
            problem = _key_problem(key) or _value_problem(key, value)
            if problem is not None:
                raise ValueError(problem)
        object.__setattr__(self, "values", MappingProxyType(values))

    def __hash__(self) -> int:
        return hash(frozenset(self.values.items()))

    @property
    def name(self) -> str | None:
        return self.values.get("name")

    @property
    def cpus(self) -> int | None:
        value = self.values.get("cpus")
        return None if value is None else _parse_cpus(value)

    @property
    def memory_size(self) -> int | None:
        """``memory.size`` in bytes."""
        value = self.values.get("memory.size")
        return None if value is None else parse_memory_size(value)

    @property
    def incomplete(self) -> bool:
        """Whether the config was built from legacy metadata alone (FORMAT.md 3.7)."""
        return _parse_bool(self.values.get(INCOMPLETE_KEY, "")) is True

    def pci_devices(self) -> list[tuple[int, int, int, str]]:
        """Every ``pci.B.S.F.device`` as (bus, slot, function, emulation), by address."""
        found: list[tuple[int, int, int, str]] = []
        for key, value in self.values.items():
            address = _pci_address(key)
            if address is not None and key.split(".", 4)[4] == "device":
                found.append((*address, value))
        return sorted(found)


def _canonical_rank(key: str) -> tuple[int, tuple[int, ...], str]:
    """Sort key of FORMAT.md 3.7: name, cpus, sockets, cores, threads, memory.*, pci.* by
    bus, slot, function, lpc.*, then all other keys; ties by the key text."""
    if key in _TOPOLOGY_ORDER:
        return _TOPOLOGY_ORDER[key], (), key
    top = key.split(".", 1)[0]
    if top == "memory":
        return _GROUP_MEMORY, (), key
    address = _pci_address(key)
    if address is not None:
        return _GROUP_PCI, address, key.split(".", 4)[4]
    if top == "lpc":
        return _GROUP_LPC, (), key
    return _GROUP_OTHER, (), key


def canonical_keys(cfg: BhyveConfig) -> list[str]:
    """The config's keys in the canonical writer's order."""
    return sorted(cfg.values, key=_canonical_rank)


def write_config(cfg: BhyveConfig) -> str:
    """The canonical text: keys in canonical order, ``memory.size`` as decimal bytes, every
    line ending with a newline, no comments. Parsing it gives back an equal configuration
    (up to the spelling of ``memory.size``)."""
    lines = []
    for key in canonical_keys(cfg):
        value = str(cfg.memory_size) if key == "memory.size" else cfg.values[key]
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def _encode(text: str | bytes, file: str, base_offset: int) -> bytes:
    """The text as UTF-8 bytes; anything that is not UTF-8 is BHS-C001 at its byte offset."""
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            at = len(text[: exc.start].encode("utf-8", "surrogatepass"))
            raise ImageError(findings.error(
                "BHS-C001", file, base_offset + at, "the config text is not valid UTF-8")) from None
    data = bytes(text)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImageError(findings.error(
            "BHS-C001", file, base_offset + exc.start,
            "the config text is not valid UTF-8")) from None
    return data


def parse_config(text: str | bytes, file: str, base_offset: int = 0) -> BhyveConfig:
    """Parse bhyve_config(5) text as ``bhyve -k`` does (FORMAT.md 3.7).

    An empty line and a line starting with ``#`` in column 1 are skipped; every other line
    is ``key=value`` split at the first ``=``, nothing trimmed (``\\r`` of a CRLF file stays
    in the value, as in bhyve); the last value of a key wins. Errors are located at
    ``base_offset`` plus the byte offset in ``text``: BHS-C001 for text that is not UTF-8,
    a line without ``=``, a key bhyve cannot store or a key that is both a value and a group;
    BHS-C003 for a final value of ``cpus``, ``memory.size``, the memory flags or a PCI key
    that does not parse. Required keys are :func:`validate_config`'s business, because a
    user's ``-k`` file need not have them.
    """
    data = _encode(text, file, base_offset)
    values: dict[str, str] = {}
    where: dict[str, int] = {}
    tree = _Tree()
    offset = 0
    for raw in data.split(b"\n"):
        at, offset = offset, offset + len(raw) + 1
        if raw == b"" or raw.startswith(b"#"):
            continue
        if b"\0" in raw:
            raise ImageError(findings.error(
                "BHS-C001", file, base_offset + at + raw.index(b"\0"),
                "the config text contains a NUL byte"))
        key, equals, value = raw.decode("utf-8").partition("=")
        problem = "the line is not key=value" if not equals else _key_problem(key)
        clash = tree.add(key) if problem is None else None
        if clash is not None:
            problem = (f"key {key!r} and key {clash!r} would make one name both a value and "
                       "a group of values")
        if problem is not None:
            raise ImageError(findings.error("BHS-C001", file, base_offset + at, problem))
        values[key] = value
        where[key] = at
    for key in sorted(values, key=where.__getitem__):
        problem = _value_problem(key, values[key])
        if problem is not None:
            raise ImageError(findings.error("BHS-C003", file, base_offset + where[key], problem))
    return BhyveConfig(values)


def to_document(cfg: BhyveConfig) -> dict[str, Any]:
    """The decoded form (``info --json``'s ``config``), described by config.schema.json.

    ``values`` holds every key with its exact text, in canonical order; the other fields are
    what bhyve makes of them. A missing required key is ``None`` here.
    """
    return {
        "name": cfg.name,
        "cpus": cfg.cpus,
        "memory_size": cfg.memory_size,
        "devices": [
            {"bus": bus, "slot": slot, "function": function, "emulation": emulation}
            for bus, slot, function, emulation in cfg.pci_devices()
        ],
        "incomplete": cfg.incomplete,
        "values": {key: cfg.values[key] for key in canonical_keys(cfg)},
    }


def validate_config(cfg: BhyveConfig, file: str, base_offset: int = 0) -> None:
    """Check what a config section must have beyond what :func:`parse_config` checks.

    BHS-C002 (at ``base_offset``, the section start) when ``name``, ``cpus`` or
    ``memory.size`` is missing; BHS-C003 at a JSON pointer into :func:`to_document`'s form
    when the decoded form breaks config.schema.json (an empty name or emulation). Values
    that do not parse cannot reach here: a :class:`BhyveConfig` never holds one.
    """
    for key in REQUIRED_KEYS:
        if key not in cfg.values:
            raise ImageError(findings.error(
                "BHS-C002", file, base_offset, f"the config has no {key} line",
                "add the line (bhyve -o config.dump=1 prints the VM's full configuration)"))
    problems = schema_errors("config", to_document(cfg))
    if problems:
        pointer, message = problems[0]
        raise ImageError(findings.error(
            "BHS-C003", file, pointer, f"the decoded config is invalid at {pointer}: {message}"))


def config_from_legacy(meta: LegacyMetadata, device_names: Sequence[str], *,
                       file: str = "F.meta") -> BhyveConfig:
    """The config of FORMAT.md 3.7 "built from legacy metadata alone", marked incomplete.

    It has ``name``, ``cpus``, ``memory.size``, the memory flags that ``memflags`` sets and
    one ``pci.B.S.F.device`` per device name that carries a PCI address; a device without
    one (``atkbdc``, which bhyve creates itself on amd64) gets no line. Disk paths and
    network backends are unknown, hence ``snapshot.config_incomplete=true``. Metadata that no
    config can express (memory below 1 MiB, two devices at one address, ...) is BHS-C003 in
    ``file`` (the ``.meta`` path as the user gave it) at a JSON pointer.
    """
    entries: list[tuple[str, str, str]] = [
        ("name", meta.vmname, "/basic metadata/vmname"),
        ("cpus", str(meta.ncpus), "/basic metadata/ncpus"),
        ("memory.size", str(meta.memsize), "/basic metadata/memsize"),
    ]
    if not MIB <= meta.memsize <= MAX_MEMORY_SIZE:
        raise ImageError(findings.error(
            "BHS-C003", file, "/basic metadata/memsize",
            f"memsize {meta.memsize} is outside 1 MiB to 2**64 - 1 bytes, which a config "
            "section cannot express"))
    for key, flag in _MEMFLAG_KEYS:
        if meta.memflags & flag:
            entries.append((key, "true", "/basic metadata/memflags"))
    seen: dict[tuple[int, int, int], str] = {}
    for index, name in enumerate(device_names):
        device = parse_device_name(name)
        address = device.address
        if address is None:
            continue
        if address in seen:
            raise ImageError(findings.error(
                "BHS-C003", file, f"/devices/{index}",
                f"devices {seen[address]!r} and {name!r} have the same PCI address "
                f"{address[0]}:{address[1]}:{address[2]}"))
        seen[address] = name
        key = "pci.{}.{}.{}.device".format(*address)
        entries.append((key, device.emulation, f"/devices/{index}"))
    entries.append((INCOMPLETE_KEY, "true", ""))
    for key, value, pointer in entries:
        problem = _value_problem(key, value)
        if problem is not None:
            raise ImageError(findings.error("BHS-C003", file, pointer, problem))
    return BhyveConfig({key: value for key, value, _ in entries})


def _same_value(key: str, first: str, second: str) -> bool:
    """Whether two values of a required key mean the same to bhyve (``2G`` = ``2147483648``)."""
    if key == "cpus":
        return _parse_cpus(first) == _parse_cpus(second)
    if key == "memory.size":
        return parse_memory_size(first) == parse_memory_size(second)
    return first == second


def merge_user_config(base: BhyveConfig, user: BhyveConfig, user_file: str) -> BhyveConfig:
    """The image's config with a user's ``--config`` file merged in (FORMAT.md 3.7).

    The user's keys win, except ``name``, ``cpus`` and ``memory.size``, which must mean the
    same as the image's (a snapshot's memory size cannot change): a disagreement, or a user
    key that would turn one of the image's values into a group (or back), is a UsageError
    BHS-C004 naming the key and both values. ``config.dump`` and the incomplete marker are
    dropped: with the user's file the config is as complete as the user made it.
    """
    for key in REQUIRED_KEYS:
        mine, theirs = base.values.get(key), user.values.get(key)
        if mine is not None and theirs is not None and not _same_value(key, mine, theirs):
            raise UsageError(findings.error(
                "BHS-C004", user_file, json_pointer(["values", key]),
                f"{key} is {theirs!r} in {user_file} but {mine!r} in the image; "
                "a snapshot cannot change it",
                f"remove the {key} line from {user_file} or correct it to {mine!r}"))
    merged = dict(base.values)
    for key, value in user.values.items():
        if not (key in REQUIRED_KEYS and key in merged):
            merged[key] = value
    for dropped in (DUMP_KEY, INCOMPLETE_KEY):
        merged.pop(dropped, None)
    clash = _tree_conflict(merged)
    if clash is not None:
        later, earlier = clash
        raise UsageError(findings.error(
            "BHS-C004", user_file, json_pointer(["values", later]),
            f"key {later!r} of {user_file} and key {earlier!r} of the image would make one "
            "name both a value and a group of values"))
    return BhyveConfig(merged)


def legacy_memflags(cfg: BhyveConfig) -> int:
    """``basic metadata.memflags`` for a legacy image: 0x1 in-core, 0x2 wired (FORMAT.md 2.3)."""
    flags = 0
    for key, flag in _MEMFLAG_KEYS:
        if _parse_bool(cfg.values.get(key, "false")):
            flags |= flag
    return flags


MAX_CONFIG_FILE = 16 << 20
"""A ``--config`` file larger than this is refused: a ``bhyve -k`` file is a few KiB."""


def load_config_file(path: str) -> BhyveConfig:
    """The user's ``--config`` file (a ``bhyve -k`` file or ``-o config.dump=1`` output),
    parsed as bhyve parses it. Any problem is the user's file, not the image: a UsageError
    with the parser's rule and byte offset."""
    from migrate.storage import read_user_file

    data = read_user_file(path, MAX_CONFIG_FILE, "config file")
    try:
        return parse_config(data, path)
    except ImageError as exc:
        raise UsageError(exc.finding) from None
