"""FreeBSD libnv packed nvlists (``nvlist_pack()`` / ``nvlist_unpack()``), byte for byte.

The single-file image formats keep their header, kernel and device state in libnv's packed
form (NVLIST.md), so this codec must read exactly what bhyve writes and write exactly what
bhyve reads. It reproduces libnv, quirks included, and the notes below say where it had to
choose:

* **Reading** follows ``nvlist_unpack()`` on a little-endian host: the checks of NVLIST.md
  section 7 run in libnv's order and the first failure raises :class:`NvlistError` with a
  ``BHS-N`` rule and the byte offset of the offending field. Byte order copies libnv's
  ``isbe`` logic (taken from the top header, re-taken from array-element headers but not from
  nested child headers, ``nvph_nitems`` never swapped). A stream that ends inside a child is
  accepted, as libnv does. The decoder is iterative (no recursion), checks every count
  against the bytes left before allocating, and adds the limits of CLI.md that libnv lacks:
  nesting deeper than :data:`MAX_DEPTH` (BHS-N013), arrays of more than :data:`MAX_ITEMS`
  (BHS-N014), buffers larger than ``max_size`` (BHS-N015). No other exception escapes
  :func:`unpack`, whatever the bytes.
* **Writing** emits little-endian only, with either ``datasize`` rule for NVLIST pairs
  (NVLIST.md section 5): ``modern`` (FreeBSD 14 and later, the default) or ``legacy``
  (earlier releases and the Linux ports). :func:`pack` validates the model first, so its
  output always unpacks.
* **Names and strings** are C byte strings; they are decoded as UTF-8 with
  ``surrogateescape``, so any byte string (Latin-1, binary junk) survives a round trip: a
  byte that is not valid UTF-8 appears as a lone surrogate U+DC80..U+DCFF.
* **BOOL_ARRAY** elements are ``bool`` for the bytes 0 and 1; libnv does not range-check the
  bytes of a BOOL_ARRAY on unpack, so any other byte is kept as its ``int`` (2..255) and
  written back unchanged.
* **Descriptors** (types 6 and 12) only travel through ``nvlist_send()``. :func:`unpack`
  rejects them (BHS-N005) unless the caller states how many descriptors came with the
  buffer (``nfds``), as ``nvlist_unpack_fds`` does; the value is then the int64 index into
  that descriptor table. :func:`pack` refuses them as ``nvlist_pack()`` does, unless
  ``descriptors=True`` asks for ``nvlist_send()``'s byte stream (indexes written as given,
  ``nvlh_descriptors`` counted as libnv counts them).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, NamedTuple, NoReturn, TypeAlias

from migrate.findings import ImageError, UsageError, error


class NvType(IntEnum):
    """libnv's wire type codes (``sys/nv.h``)."""

    NULL = 1
    BOOL = 2
    NUMBER = 3
    STRING = 4
    NVLIST = 5
    DESCRIPTOR = 6
    BINARY = 7
    BOOL_ARRAY = 8
    NUMBER_ARRAY = 9
    STRING_ARRAY = 10
    NVLIST_ARRAY = 11
    DESCRIPTOR_ARRAY = 12


(_NULL, _BOOL, _NUMBER, _STRING, _NVLIST, _DESCRIPTOR, _BINARY, _BOOL_ARRAY, _NUMBER_ARRAY,
 _STRING_ARRAY, _NVLIST_ARRAY, _DESCRIPTOR_ARRAY) = range(1, 13)
# plain ints for the decoder's hot loop: comparing with an enum member costs a lookup each time
_TYPE_OF: dict[int, NvType] = {kind.value: kind for kind in NvType}

NvValue: TypeAlias = (
    "bool | int | str | bytes | NvList | tuple[bool | int, ...] | tuple[str, ...]"
    " | tuple[NvList, ...] | None"
)
"""A pair's value; which alternative depends on the pair's :class:`NvType` (module docs)."""

FLAG_IGNORE_CASE = 0x01
FLAG_NO_UNIQUE = 0x02
PUBLIC_FLAGS = FLAG_IGNORE_CASE | FLAG_NO_UNIQUE
_FLAG_BIG_ENDIAN = 0x80
_HEADER_FLAGS = PUBLIC_FLAGS | _FLAG_BIG_ENDIAN

MAX_DEPTH = 256
"""Deepest nesting accepted (root = 0); a limit of this tool, not of libnv (BHS-N013)."""
MAX_ITEMS = 1_000_000
"""Most items in one array; a limit of this tool (BHS-N014)."""
MAX_SIZE = 64 * 1024 * 1024
"""Default largest buffer :func:`unpack` accepts; a limit of this tool (BHS-N015)."""

NAME_MAX = 2048  # NV_NAME_MAX, the NUL included
_MAGIC = 0x6C
_HEADER = 19
_PAIR = 19
_MARKER = 20
_UP = 255
_ARRAY_NEXT = 254
_U64 = 1 << 64
_I64 = 1 << 63

_LE_HEADER = struct.Struct("<BBBQQ")
_BE_SIZES = struct.Struct(">QQ")
_LE_PAIR = struct.Struct("<BHQQ")
_BE_PAIR = struct.Struct(">BHQ")
_LE_U64 = struct.Struct("<Q")
_BE_U64 = struct.Struct(">Q")
_LE_I64 = struct.Struct("<q")
_BE_I64 = struct.Struct(">q")

_TYPE_NAMES = {t.name: t for t in NvType}
_ARRAY_TYPES = frozenset({NvType.BOOL_ARRAY, NvType.NUMBER_ARRAY, NvType.STRING_ARRAY,
                          NvType.NVLIST_ARRAY, NvType.DESCRIPTOR_ARRAY})
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


@dataclass(frozen=True, slots=True, eq=False)
class NvPair:
    """One name/type/value; the value is not checked here (:func:`pack` checks it).

    Equality is structural but iterative (see :func:`_same`); the hash covers name and type
    only, which keeps it consistent with equality without walking nested lists.
    """

    name: str
    type: NvType
    value: NvValue

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NvPair):
            return NotImplemented
        return _same(NvList(0, (self,)), NvList(0, (other,)))

    def __hash__(self) -> int:
        return hash((self.name, self.type))


@dataclass(frozen=True, slots=True, eq=False)
class NvList:
    """An nvlist: public flags (0x01 IGNORE_CASE, 0x02 NO_UNIQUE) and pairs in order.

    Equal lists have equal flags and equal pairs in the same order. The comparison walks
    nested lists with an explicit stack: the generated recursive ``__eq__`` would exceed
    Python's recursion limit well before the :data:`MAX_DEPTH` this codec accepts.
    """

    flags: int = 0
    pairs: tuple[NvPair, ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NvList):
            return NotImplemented
        return _same(self, other)

    def __hash__(self) -> int:
        return hash((self.flags, tuple((pair.name, pair.type) for pair in self.pairs)))

    def find(self, name: str, type: NvType | None = None) -> NvPair | None:
        """The first pair called ``name`` (and of ``type`` if given), like libnv's
        ``nvlist_find()``; names compare as ``strcasecmp`` (ASCII) under IGNORE_CASE."""
        if self.flags & FLAG_IGNORE_CASE:
            folded = name.translate(_ASCII_FOLD)
            for pair in self.pairs:
                if (pair.name.translate(_ASCII_FOLD) == folded
                        and (type is None or pair.type == type)):
                    return pair
            return None
        for pair in self.pairs:
            if pair.name == name and (type is None or pair.type == type):
                return pair
        return None

    def get(self, name: str, type: NvType | None = None) -> NvValue:
        """The value of :meth:`find`; ``KeyError`` when there is no such pair.

        A pair of another type counts as absent (libnv's ``nvlist_exists_<type>``), so a
        caller validating a document catches one exception; use :meth:`find` to tell the
        two cases apart.
        """
        pair = self.find(name, type)
        if pair is None:
            kind = "" if type is None else f" of type {type.name}"
            raise KeyError(f"no pair {name!r}{kind}")
        return pair.value

    def names(self) -> list[str]:
        return [pair.name for pair in self.pairs]

    @classmethod
    def of(cls, *pairs: tuple[str, NvType, Any], flags: int = 0) -> NvList:
        """Build a list from ``(name, type, value)`` triples; lists become tuples."""
        return cls(flags, tuple(
            NvPair(name, NvType(kind), tuple(value) if isinstance(value, list) else value)
            for name, kind, value in pairs))


_EMPTY = NvList()


def _same(first: NvList, second: NvList) -> bool:
    """Structural equality of two lists without recursion."""
    stack = [(first, second)]
    while stack:
        left, right = stack.pop()
        if left is right:
            continue
        if left.flags != right.flags or len(left.pairs) != len(right.pairs):
            return False
        for one, two in zip(left.pairs, right.pairs, strict=True):
            if one is two:
                continue
            if one.name != two.name or one.type != two.type:
                return False
            mine, theirs = one.value, two.value
            if isinstance(mine, NvList) and isinstance(theirs, NvList):
                stack.append((mine, theirs))
            elif one.type == NvType.NVLIST_ARRAY and isinstance(mine, tuple) \
                    and isinstance(theirs, tuple):
                if len(mine) != len(theirs):
                    return False
                for element, other in zip(mine, theirs, strict=True):
                    if isinstance(element, NvList) and isinstance(other, NvList):
                        stack.append((element, other))
                    elif element != other:
                        return False
            elif mine != theirs:
                return False
    return True


class NvlistError(ImageError):
    """A packed nvlist is invalid (or a model cannot be packed): rule, byte offset, detail.

    The finding names the file ``<nvlist>`` and the offset within the buffer; a reader that
    found the nvlist at ``base`` inside a file re-raises :meth:`at` to point into the file.
    """

    def __init__(self, rule: str, offset: int, detail: str, file: str = "<nvlist>") -> None:
        super().__init__(error(rule, file, offset, detail))
        self.rule = rule
        self.offset = offset
        self.detail = detail

    def at(self, file: str, base: int = 0) -> ImageError:
        """The same error located in ``file`` at ``base + offset``."""
        return NvlistError(self.rule, base + self.offset, self.detail, file)


def _fail(rule: str, offset: int, detail: str) -> NoReturn:
    raise NvlistError(rule, offset, detail)


# --------------------------------------------------------------------------- unpack


class _Open:
    """A list being decoded, and where its value goes once closed.

    ``parent`` holds the pair that holds this list at ``parent.pairs[slot]`` (a placeholder
    until then); ``array`` is the element table of an NVLIST_ARRAY (pre-filled with empty
    lists, as libnv creates every element up front) and ``index`` this element's place.
    """

    __slots__ = ("array", "depth", "flags", "index", "pairs", "parent", "seen", "slot")

    def __init__(self, flags: int, parent: _Open | None, *, slot: int = 0, depth: int = 0,
                 array: list[NvList] | None = None, index: int = 0) -> None:
        self.flags = flags
        self.pairs: list[NvPair] = []
        self.seen: set[bytes] | None = None if flags & FLAG_NO_UNIQUE else set()
        self.parent = parent
        self.slot = slot
        self.depth = depth
        self.array = array
        self.index = index

    def close(self) -> NvList:
        """Finish this list and store it where it belongs (a child or an array element)."""
        done = NvList(self.flags, tuple(self.pairs))
        parent = self.parent
        if parent is not None:
            holder = parent.pairs[self.slot]
            if self.array is None:
                parent.pairs[self.slot] = NvPair(holder.name, NvType.NVLIST, done)
            else:
                self.array[self.index] = done
        return done

    def leave_array(self) -> None:
        """Store the whole element table into the NVLIST_ARRAY pair (elements not reached
        stay the empty lists libnv created for them)."""
        if self.parent is not None and self.array is not None:
            holder = self.parent.pairs[self.slot]
            self.parent.pairs[self.slot] = NvPair(holder.name, NvType.NVLIST_ARRAY,
                                                  tuple(self.array))


def _header(data: bytes, pos: int, end: int, nfds: int) -> int:
    """Check the nvlist header at ``pos`` (``nvlist_unpack_header``); its flags byte."""
    if end - pos < _HEADER:
        _fail("BHS-N001", pos, f"nvlist header needs {_HEADER} bytes, only {end - pos} left")
    magic, _version, flags, descriptors, size = _LE_HEADER.unpack_from(data, pos)
    if magic != _MAGIC:
        _fail("BHS-N002", pos, f"nvlist header magic is 0x{magic:02x}, not 0x6c")
    if flags & ~_HEADER_FLAGS:
        _fail("BHS-N003", pos + 2, f"nvlist header flags 0x{flags:02x} have bits outside 0x83")
    if flags & _FLAG_BIG_ENDIAN:
        descriptors, size = _BE_SIZES.unpack_from(data, pos + 3)
    left = end - pos - _HEADER
    if size != left:
        _fail("BHS-N004", pos + 11,
              f"nvlh_size is {size} but {left} bytes follow the header")
    if descriptors > nfds:
        _fail("BHS-N005", pos + 3,
              f"the header announces {descriptors} file descriptor(s), {nfds} supplied")
    return int(flags)


def _check_items(nitems: int, at: int) -> None:
    if nitems == 0:
        _fail("BHS-N010", at, "an array pair has nitems 0; arrays hold at least one item")


def _check_limit(nitems: int, at: int) -> None:
    if nitems > MAX_ITEMS:
        _fail("BHS-N014", at, f"an array of {nitems} items exceeds this tool's limit of "
              f"{MAX_ITEMS:,}")


def _value(kind: int, data: bytes, pos: int, *, size: int, nitems: int, isbe: bool,
           nfds: int, at: int) -> NvValue:
    """Decode and check one payload that is not a list (``nvpair_unpack_<type>``).

    ``pos`` is the payload offset, ``at`` the pair's offset (for nitems/datasize errors).
    """
    ds_at, ni_at = at + 3, at + 11
    if kind == _NUMBER:
        if size != 8:
            _fail("BHS-N009", ds_at, f"NUMBER datasize is {size}, not 8")
        return int((_BE_U64 if isbe else _LE_U64).unpack_from(data, pos)[0])
    if kind == _STRING:
        if size == 0:
            _fail("BHS-N009", ds_at, "STRING datasize is 0 (no terminating NUL)")
        if data.find(0, pos, pos + size) != pos + size - 1:
            _fail("BHS-N010", pos, "STRING is not exactly one NUL-terminated string")
        return data[pos:pos + size - 1].decode("utf-8", "surrogateescape")
    if kind == _BOOL:
        if size != 1:
            _fail("BHS-N009", ds_at, f"BOOL datasize is {size}, not 1")
        byte = data[pos]
        if byte > 1:
            _fail("BHS-N010", pos, f"BOOL byte is {byte}, not 0 or 1")
        return byte == 1
    if kind == _NULL:
        if size != 0:
            _fail("BHS-N009", ds_at, f"NULL datasize is {size}, not 0")
        return None
    if kind == _BINARY:
        if size == 0:
            _fail("BHS-N009", ds_at, "BINARY datasize is 0; empty binaries cannot exist")
        return data[pos:pos + size]
    if kind == _DESCRIPTOR:
        if size != 8:
            _fail("BHS-N009", ds_at, f"DESCRIPTOR datasize is {size}, not 8")
        index = int((_BE_I64 if isbe else _LE_I64).unpack_from(data, pos)[0])
        if not 0 <= index < nfds:
            _fail("BHS-N005", pos, f"descriptor index {index} but {nfds} descriptor(s) "
                  "supplied (only nvlist_send() carries descriptors)")
        return index
    if kind == _BOOL_ARRAY:
        if size != nitems:
            _fail("BHS-N009", ds_at, f"BOOL_ARRAY datasize {size} is not nitems {nitems}")
        _check_items(nitems, ni_at)
        _check_limit(nitems, ni_at)
        return tuple(byte == 1 if byte < 2 else byte for byte in data[pos:pos + size])
    if kind in (_NUMBER_ARRAY, _DESCRIPTOR_ARRAY):
        name = _TYPE_OF[kind].name
        if size != 8 * nitems:
            _fail("BHS-N009", ds_at, f"{name} datasize {size} is not 8 x nitems {nitems}")
        _check_items(nitems, ni_at)
        _check_limit(nitems, ni_at)
        letter = "Q" if kind == _NUMBER_ARRAY else "q"
        values = struct.unpack_from(f"{'>' if isbe else '<'}{nitems}{letter}", data, pos)
        if kind == _DESCRIPTOR_ARRAY:
            for i, index in enumerate(values):
                if not 0 <= index < nfds:
                    _fail("BHS-N005", pos + 8 * i, f"descriptor index {index} but {nfds} "
                          "descriptor(s) supplied (only nvlist_send() carries descriptors)")
        return tuple(values)
    # STRING_ARRAY (the caller dispatched every other type)
    if size == 0:
        _fail("BHS-N009", ds_at, "STRING_ARRAY datasize is 0")
    _check_items(nitems, ni_at)
    chunk = data[pos:pos + size]
    if chunk[-1] != 0 or chunk.count(0) != nitems:
        _fail("BHS-N010", pos, f"STRING_ARRAY bytes are not exactly {nitems} "
              "NUL-terminated strings")
    _check_limit(nitems, ni_at)
    return tuple(part.decode("utf-8", "surrogateescape") for part in chunk[:-1].split(b"\0"))


def unpack(buf: bytes | bytearray | memoryview, flags: int | None = 0, *,
           max_size: int = MAX_SIZE, nfds: int = 0) -> NvList:
    """Decode a packed nvlist as ``nvlist_unpack(buf, len, flags)`` would.

    ``flags`` must equal the top header's public flags (libnv's EILSEQ check, BHS-N006);
    ``None`` skips that comparison and takes whatever the header says (for inspection
    tools). ``nfds`` is the number of descriptors received with the buffer (0: plain
    ``nvlist_unpack``). Every problem raises :class:`NvlistError`; nothing else escapes
    for any buffer.
    """
    if flags is not None and (isinstance(flags, bool) or not isinstance(flags, int)
                              or flags & ~PUBLIC_FLAGS):
        raise UsageError(error("BHS-X001", "<nvlist>", None,
                               f"unpack flags {flags!r} may only combine 0x01 and 0x02"))
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise UsageError(error("BHS-X001", "<nvlist>", None,
                               f"cannot unpack a {type(buf).__name__}, only bytes"))
    data = bytes(buf)  # one copy at most: immutable while parsed, cheap slices afterwards
    end = len(data)
    if end > max_size:
        _fail("BHS-N015", 0, f"the nvlist is {end} bytes, over this tool's limit of "
              f"{max_size} bytes")
    top = _header(data, 0, end, nfds)
    isbe = bool(top & _FLAG_BIG_ENDIAN)
    if flags is not None and top & PUBLIC_FLAGS != flags:
        _fail("BHS-N006", 2, f"the list's flags are 0x{top & PUBLIC_FLAGS:02x} but "
              f"0x{flags:02x} were expected")
    current = root = _Open(top & PUBLIC_FLAGS, None)
    pos = _HEADER
    while pos < end:
        at = pos
        left = end - pos
        if left < _PAIR:
            _fail("BHS-N001", at, f"pair header needs {_PAIR} bytes, only {left} left")
        if isbe:
            kind, namesize, size = _BE_PAIR.unpack_from(data, pos)
            nitems = _LE_U64.unpack_from(data, pos + 11)[0]  # libnv never swaps nitems
        else:
            kind, namesize, size, nitems = _LE_PAIR.unpack_from(data, pos)
        if not (1 <= kind <= 12 or kind in (_UP, _ARRAY_NEXT)):
            _fail("BHS-N007", at, f"pair type {kind} is not a libnv type")
        if namesize > NAME_MAX:
            _fail("BHS-N008", at + 1, f"namesize {namesize} exceeds NV_NAME_MAX (2048)")
        if namesize < 1:
            _fail("BHS-N008", at + 1, "namesize is 0 (a name has at least its NUL)")
        left -= _PAIR
        if namesize > left:
            _fail("BHS-N001", at + 1, f"the name needs {namesize} bytes, only {left} left")
        name_at = pos + _PAIR
        if data.find(0, name_at, name_at + namesize) != name_at + namesize - 1:
            _fail("BHS-N008", name_at, "the name is not NUL-terminated at namesize-1 "
                  "or holds a NUL")
        left -= namesize
        if size > left:
            _fail("BHS-N009", at + 3, f"datasize {size} exceeds the {left} bytes left")
        pos = name_at + namesize
        if kind in (_UP, _ARRAY_NEXT):
            parent = current.parent
            if kind == _ARRAY_NEXT and current.array is not None \
                    and current.index + 1 < len(current.array):
                current.close()
                element = _header(data, pos, end, nfds)
                isbe = bool(element & _FLAG_BIG_ENDIAN)
                current = _Open(element & PUBLIC_FLAGS, parent, slot=current.slot,
                                depth=current.depth, array=current.array,
                                index=current.index + 1)
                pos += _HEADER
                continue
            if parent is None:
                marker = "NVLIST_UP" if kind == _UP else "NVLIST_ARRAY_NEXT"
                _fail("BHS-N012", at, f"{marker} marker outside any nested list")
            current.close()
            current.leave_array()
            current = parent
            continue
        name_bytes = data[name_at:name_at + namesize - 1]
        name = name_bytes.decode("utf-8", "surrogateescape")
        child: _Open | None = None
        if kind == _NVLIST:
            if size == 0:
                _fail("BHS-N009", at + 3, "NVLIST datasize is 0")
            if current.depth >= MAX_DEPTH:
                _fail("BHS-N013", pos, f"nesting deeper than {MAX_DEPTH} levels")
            sub = _header(data, pos, end, nfds)
            child = _Open(sub & PUBLIC_FLAGS, current, slot=len(current.pairs),
                          depth=current.depth + 1)
            pair = NvPair(name, NvType.NVLIST, _EMPTY)
            pos += _HEADER
        elif kind == _NVLIST_ARRAY:
            _check_items(nitems, at + 11)
            if _HEADER * nitems > left:
                _fail("BHS-N001", at + 11, f"nitems {nitems} element headers cannot fit in "
                      f"the {left} bytes left")
            _check_limit(nitems, at + 11)
            if current.depth >= MAX_DEPTH:
                _fail("BHS-N013", pos, f"nesting deeper than {MAX_DEPTH} levels")
            first = _header(data, pos, end, nfds)
            isbe = bool(first & _FLAG_BIG_ENDIAN)
            child = _Open(first & PUBLIC_FLAGS, current, slot=len(current.pairs),
                          depth=current.depth + 1, array=[_EMPTY] * nitems)
            pair = NvPair(name, NvType.NVLIST_ARRAY, ())
            pos += _HEADER
        else:
            pair = NvPair(name, _TYPE_OF[kind],
                          _value(kind, data, pos, size=size, nitems=nitems, isbe=isbe,
                                 nfds=nfds, at=at))
            pos += size
        seen = current.seen
        if seen is not None:
            key = name_bytes.lower() if current.flags & FLAG_IGNORE_CASE else name_bytes
            if key in seen:
                _fail("BHS-N011", name_at, f"duplicate name {name!r} in a list without "
                      "NV_FLAG_NO_UNIQUE")
            seen.add(key)
        current.pairs.append(pair)
        if child is not None:
            current = child
    # The bytes ran out: libnv accepts a stream that ends inside a child (missing_final_up).
    while current is not root:
        current.close()
        current.leave_array()
        assert current.parent is not None  # only the root has no parent
        current = current.parent
    return root.close()


# --------------------------------------------------------------------------- pack


@dataclass(eq=False)
class _Emitted:
    """Where one list went in the output, for the size fields patched at the end."""

    header: int
    depth: int
    descriptors_before: int
    holder: _Emitted | None = None  # the list holding the pair that holds this one
    siblings: list[_Emitted] | None = None  # the element records of its NVLIST_ARRAY
    end: int = 0  # offset of its closing marker (the total length for the root)
    outer: int = 0  # legacy rule: bytes of the pairs that follow it, walking outwards


@dataclass(eq=False)
class _Frame:
    """A list being written: the pairs still to go and its name-uniqueness set."""

    nvl: NvList
    record: _Emitted
    elements: tuple[NvList, ...] | None = None  # the array this element belongs to
    index: int = 0
    next_pair: int = 0
    seen: set[bytes] | None = field(default=None)


def _name_bytes(name: object) -> bytes | str:
    """The C name for ``name``, or why it cannot be one (a C string of limited length)."""
    raw = _string_bytes(name, "name")
    if isinstance(raw, bytes) and len(raw) >= NAME_MAX:
        return f"the name is {len(raw)} bytes; libnv allows at most {NAME_MAX - 1}"
    return raw


def _string_bytes(text: object, what: str = "string") -> bytes | str:
    """The C string for ``text`` (without its NUL), or why it cannot be one. Any byte string
    round-trips: bytes that are not UTF-8 were decoded as surrogate escapes."""
    if not isinstance(text, str):
        return f"a {what} must be a str, not {type(text).__name__}"
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return f"the {what} {text!r} is not encodable (lone surrogate outside U+DC80-U+DCFF)"
    if b"\0" in raw:
        return f"the {what} {text!r} holds a NUL byte"
    return raw


def _is_uint64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _U64


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -_I64 <= value < _I64


def _is_bool_byte(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, int) and 0 <= value <= 255)


class _Invalid(NamedTuple):
    """Why a model value cannot be packed, and under which rule."""

    rule: str
    message: str


def _items(value: object, what: str) -> tuple[Any, ...] | _Invalid:
    if not isinstance(value, (tuple, list)):
        return _Invalid("BHS-N010", f"{what} value must be a tuple, not {type(value).__name__}")
    if not value:
        return _Invalid("BHS-N010", f"{what} must hold at least one item (libnv cannot "
                        "create empty arrays)")
    if len(value) > MAX_ITEMS:
        return _Invalid("BHS-N014", f"{what} of {len(value)} items exceeds this tool's limit "
                        f"of {MAX_ITEMS:,}")
    return tuple(value)


def _payload(kind: NvType, value: object) -> tuple[bytes, int, int] | _Invalid | str:
    """(payload, nitems, descriptor count) of a non-list pair, or why it is invalid (a
    plain message means BHS-N010)."""
    if kind is NvType.NULL:
        return (b"", 0, 0) if value is None else "a NULL value must be None"
    if kind is NvType.BOOL:
        return (b"\1" if value else b"\0", 0, 0) if isinstance(value, bool) \
            else "a BOOL value must be a bool"
    if kind is NvType.NUMBER:
        return (_LE_U64.pack(value), 0, 0) if _is_uint64(value) \
            else f"a NUMBER must be an int in 0..2^64-1, not {value!r}"
    if kind is NvType.STRING:
        raw = _string_bytes(value)
        return raw if isinstance(raw, str) else (raw + b"\0", 0, 0)
    if kind is NvType.BINARY:
        if not isinstance(value, (bytes, bytearray)) or not value:
            return "a BINARY value must be non-empty bytes"
        return bytes(value), 0, 0
    if kind is NvType.DESCRIPTOR:
        return (_LE_I64.pack(value), 0, 1) if _is_int64(value) \
            else f"a DESCRIPTOR must be an int64 index, not {value!r}"
    items = _items(value, kind.name)
    if isinstance(items, _Invalid):
        return items
    count = len(items)
    if kind is NvType.BOOL_ARRAY:
        if not all(_is_bool_byte(item) for item in items):
            return "BOOL_ARRAY items must be bools (or kept bytes 0..255)"
        return bytes(int(item) for item in items), count, 0
    if kind is NvType.NUMBER_ARRAY:
        if not all(_is_uint64(item) for item in items):
            return "NUMBER_ARRAY items must be ints in 0..2^64-1"
        return struct.pack(f"<{count}Q", *items), count, 0
    if kind is NvType.DESCRIPTOR_ARRAY:
        if not all(_is_int64(item) for item in items):
            return "DESCRIPTOR_ARRAY items must be int64 indexes"
        return struct.pack(f"<{count}q", *items), count, count
    # STRING_ARRAY
    parts = [_string_bytes(item) for item in items]
    for part in parts:
        if isinstance(part, str):
            return f"STRING_ARRAY item: {part}"
    return b"".join(part + b"\0" for part in parts if isinstance(part, bytes)), count, 0


_UP_BYTES = _LE_PAIR.pack(_UP, 1, 0, 0) + b"\0"
_NEXT_BYTES = _LE_PAIR.pack(_ARRAY_NEXT, 1, 0, 0) + b"\0"


def pack(nvl: NvList, *, size_rule: Literal["modern", "legacy"] = "modern",
         descriptors: bool = False) -> bytes:
    """Encode ``nvl`` as ``nvlist_pack()`` does on a little-endian host.

    ``size_rule`` picks the ``datasize`` of NVLIST pairs (NVLIST.md section 5): ``modern``
    for FreeBSD 14 and later, ``legacy`` for earlier libnv. The model is validated as it is
    written; a problem raises :class:`NvlistError` whose offset is where the offending
    pair (or header) would have started. ``descriptors=True`` writes DESCRIPTOR types as
    ``nvlist_send()`` does instead of refusing them.
    """
    if size_rule not in ("modern", "legacy"):
        raise UsageError(error("BHS-X001", "<nvlist>", None,
                               f"size_rule must be 'modern' or 'legacy', not {size_rule!r}"))
    if not isinstance(nvl, NvList):
        raise UsageError(error("BHS-X001", "<nvlist>", None,
                               f"cannot pack a {type(nvl).__name__}, only an NvList"))
    out = bytearray()
    records: list[_Emitted] = []
    datasizes: list[tuple[int, _Emitted]] = []  # NVLIST pair datasize fields to patch
    ndesc = 0

    def open_list(child: NvList, depth: int, holder: _Emitted | None, *,
                  siblings: list[_Emitted] | None = None,
                  elements: tuple[NvList, ...] | None = None, index: int = 0) -> _Frame:
        flags = child.flags
        if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~PUBLIC_FLAGS:
            _fail("BHS-N003", len(out) + 2, f"list flags {flags!r} may only combine 0x01 "
                  "and 0x02")
        if not isinstance(child.pairs, tuple):
            _fail("BHS-N010", len(out), "NvList.pairs must be a tuple of NvPair")
        record = _Emitted(len(out), depth, ndesc, holder, siblings)
        if siblings is not None:
            siblings.append(record)
        records.append(record)
        out.extend(_LE_HEADER.pack(_MAGIC, 0, flags, 0, 0))
        seen: set[bytes] | None = None if flags & FLAG_NO_UNIQUE else set()
        return _Frame(child, record, elements, index, 0, seen)

    stack = [open_list(nvl, 0, None)]
    while stack:
        frame = stack[-1]
        pairs = frame.nvl.pairs
        if frame.next_pair == len(pairs):
            frame.record.end = len(out)
            stack.pop()
            if not stack:
                break
            if frame.elements is None:
                out.extend(_UP_BYTES)
            else:
                out.extend(_NEXT_BYTES)
                if frame.index + 1 < len(frame.elements):
                    record = frame.record
                    stack.append(open_list(frame.elements[frame.index + 1], record.depth,
                                           record.holder, siblings=record.siblings,
                                           elements=frame.elements, index=frame.index + 1))
            continue
        pair = pairs[frame.next_pair]
        frame.next_pair += 1
        at = len(out)
        if not isinstance(pair, NvPair):
            _fail("BHS-N010", at, f"NvList.pairs holds a {type(pair).__name__}, not an NvPair")
        name = _name_bytes(pair.name)
        if isinstance(name, str):
            _fail("BHS-N008", at, name)
        try:
            kind = NvType(pair.type)
        except ValueError:
            _fail("BHS-N007", at, f"pair {pair.name!r} has type {pair.type!r}, not an NvType")
        if frame.seen is not None:
            key = name.lower() if frame.nvl.flags & FLAG_IGNORE_CASE else name
            if key in frame.seen:
                _fail("BHS-N011", at, f"duplicate name {pair.name!r} in a list without "
                      "NV_FLAG_NO_UNIQUE")
            frame.seen.add(key)
        depth = frame.record.depth + 1
        if kind is NvType.NVLIST:
            if not isinstance(pair.value, NvList):
                _fail("BHS-N010", at, f"NVLIST pair {pair.name!r} must hold an NvList")
            if depth > MAX_DEPTH:
                _fail("BHS-N013", at, f"nesting deeper than {MAX_DEPTH} levels")
            out.extend(_LE_PAIR.pack(kind, len(name) + 1, 0, 0))
            out.extend(name + b"\0")
            child_frame = open_list(pair.value, depth, frame.record)
            datasizes.append((at + 3, child_frame.record))
            stack.append(child_frame)
        elif kind is NvType.NVLIST_ARRAY:
            elements = _items(pair.value, "NVLIST_ARRAY")
            if isinstance(elements, _Invalid):
                _fail(elements.rule, at, f"pair {pair.name!r}: {elements.message}")
            if not all(isinstance(element, NvList) for element in elements):
                _fail("BHS-N010", at, f"NVLIST_ARRAY {pair.name!r} must hold NvLists only")
            if depth > MAX_DEPTH:
                _fail("BHS-N013", at, f"nesting deeper than {MAX_DEPTH} levels")
            out.extend(_LE_PAIR.pack(kind, len(name) + 1, 0, len(elements)))
            out.extend(name + b"\0")
            stack.append(open_list(elements[0], depth, frame.record, siblings=[],
                                   elements=elements))
        else:
            encoded = _payload(kind, pair.value)
            if isinstance(encoded, (_Invalid, str)):
                rule, message = encoded if isinstance(encoded, _Invalid) \
                    else ("BHS-N010", encoded)
                _fail(rule, at, f"pair {pair.name!r}: {message}")
            payload, nitems, count = encoded
            if count and not descriptors:
                _fail("BHS-N005", at, f"pair {pair.name!r} holds a descriptor; nvlist_pack() "
                      "refuses them (only nvlist_send() carries descriptors)")
            ndesc += count
            out.extend(_LE_PAIR.pack(kind, len(name) + 1, len(payload), nitems))
            out.extend(name + b"\0")
            out.extend(payload)
    total = len(out)
    for record in records:
        struct.pack_into("<QQ", out, record.header + 3, ndesc - record.descriptors_before,
                         total - record.header - _HEADER)
    if size_rule == "modern":
        for offset, child in datasizes:
            _LE_U64.pack_into(out, offset, child.end - child.header)
        return bytes(out)
    _legacy_outer(records)
    for offset, child in datasizes:
        own = child.end - child.header
        _LE_U64.pack_into(out, offset, _HEADER if own == _HEADER else own + child.outer)
    return bytes(out)


def _legacy_outer(records: list[_Emitted]) -> None:
    """Fill ``outer`` (bytes of the pairs after a list, walking out to the root).

    Legacy ``nvlist_size()`` of a child walks on past its end through the later pairs of
    every enclosing level (and the later elements of an enclosing array), counting pairs but
    not the enclosing containers' headers and markers (NVLIST.md section 5). Records are in
    creation order, so a holder's ``outer`` is known before its children need it.
    """
    for record in records:
        holder = record.holder
        if holder is None:
            continue
        if record.siblings is None:
            record.outer = holder.end - (record.end + _MARKER) + holder.outer
        elif record is record.siblings[0]:
            group = record.siblings
            running = holder.end - (group[-1].end + _MARKER) + holder.outer
            for element in reversed(group):
                element.outer = running
                running += element.end - element.header - _HEADER


# --------------------------------------------------------------------------- descriptions


def to_description(nvl: NvList) -> dict[str, Any]:
    """The vectors' JSON form ``{flags, pairs: [{name, type, value}]}`` of a valid model.

    BINARY is lowercase hex, DESCRIPTOR ``{"fd_index": n}``, BOOL_ARRAY bools (and kept
    bytes 2..255 as integers), names and strings as decoded (see module docs).
    """
    return _describe(nvl, 0)


def _describe(nvl: NvList, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        _fail("BHS-N013", 0, f"nesting deeper than {MAX_DEPTH} levels")
    pairs: list[dict[str, Any]] = []
    for pair in nvl.pairs:
        kind, value = pair.type, pair.value
        shown: Any
        if kind is NvType.NVLIST and isinstance(value, NvList):
            shown = _describe(value, depth + 1)
        elif kind is NvType.NVLIST_ARRAY and isinstance(value, tuple):
            shown = [_describe(element, depth + 1) for element in value
                     if isinstance(element, NvList)]
        elif kind is NvType.BINARY and isinstance(value, (bytes, bytearray)):
            shown = value.hex()
        elif kind is NvType.DESCRIPTOR:
            shown = {"fd_index": value}
        elif kind is NvType.DESCRIPTOR_ARRAY and isinstance(value, tuple):
            shown = [{"fd_index": index} for index in value]
        elif isinstance(value, tuple):
            shown = list(value)
        else:
            shown = value
        pairs.append({"name": pair.name, "type": kind.name, "value": shown})
    return {"flags": nvl.flags, "pairs": pairs}


def from_description(doc: Any, *, file: str = "<description>") -> NvList:
    """The model of a description document (the inverse of :func:`to_description`).

    Every problem raises :class:`ImageError` located by a JSON pointer into ``doc`` and
    naming ``file``; the result always packs (given ``descriptors=True`` if it holds
    descriptors).
    """
    return _Reader(file).nvlist(doc, "", 0)


class _Reader:
    """Turns a description into a model, pointing at the first thing that is wrong."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, rule: str, pointer: str, message: str) -> NoReturn:
        raise ImageError(error(rule, self.file, pointer or "/", message))

    def nvlist(self, doc: Any, pointer: str, depth: int) -> NvList:
        if depth > MAX_DEPTH:
            self.fail("BHS-N013", pointer, f"nesting deeper than {MAX_DEPTH} levels")
        if not isinstance(doc, dict) or set(doc) != {"flags", "pairs"}:
            self.fail("BHS-N010", pointer, "an nvlist must be an object with exactly the "
                      "keys flags and pairs")
        flags, pairs = doc["flags"], doc["pairs"]
        if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~PUBLIC_FLAGS:
            self.fail("BHS-N003", f"{pointer}/flags", f"flags {flags!r} may only combine "
                      "1 (IGNORE_CASE) and 2 (NO_UNIQUE)")
        if not isinstance(pairs, list):
            self.fail("BHS-N010", f"{pointer}/pairs", "pairs must be an array")
        seen: set[bytes] | None = None if flags & FLAG_NO_UNIQUE else set()
        built: list[NvPair] = []
        for i, item in enumerate(pairs):
            at = f"{pointer}/pairs/{i}"
            if not isinstance(item, dict) or set(item) != {"name", "type", "value"}:
                self.fail("BHS-N010", at, "a pair must be an object with exactly the keys "
                          "name, type and value")
            raw = _name_bytes(item["name"])
            if isinstance(raw, str):
                self.fail("BHS-N008", f"{at}/name", raw)
            if seen is not None:
                key = raw.lower() if flags & FLAG_IGNORE_CASE else raw
                if key in seen:
                    self.fail("BHS-N011", f"{at}/name", f"duplicate name {item['name']!r} "
                              "in a list without NO_UNIQUE (flags 2)")
                seen.add(key)
            kind = _TYPE_NAMES.get(item["type"]) if isinstance(item["type"], str) else None
            if kind is None:
                self.fail("BHS-N007", f"{at}/type", f"unknown type {item['type']!r}; one of "
                          + ", ".join(_TYPE_NAMES))
            built.append(NvPair(item["name"], kind,
                                self.value(kind, item["value"], f"{at}/value", depth)))
        return NvList(flags, tuple(built))

    def value(self, kind: NvType, value: Any, pointer: str, depth: int) -> NvValue:
        if kind is NvType.NVLIST:
            return self.nvlist(value, pointer, depth + 1)
        if kind is NvType.BINARY:
            if not isinstance(value, str) or not _HEX.fullmatch(value):
                self.fail("BHS-N010", pointer, "a BINARY value must be a non-empty string of "
                          "hex digit pairs")
            return bytes.fromhex(value)
        if kind is NvType.DESCRIPTOR:
            return self.descriptor(value, pointer)
        if kind not in _ARRAY_TYPES:
            problem = _payload(kind, value)
            if isinstance(problem, str):
                self.fail("BHS-N010", pointer, problem)
            checked: NvValue = value  # a valid scalar of its type, as _payload just said
            return checked
        if not isinstance(value, list) or not value:
            self.fail("BHS-N010", pointer, f"a {kind.name} value must be a non-empty array")
        if len(value) > MAX_ITEMS:
            self.fail("BHS-N014", pointer, f"an array of {len(value)} items exceeds this "
                      f"tool's limit of {MAX_ITEMS:,}")
        if kind is NvType.NVLIST_ARRAY:
            return tuple(self.nvlist(element, f"{pointer}/{i}", depth + 1)
                         for i, element in enumerate(value))
        if kind is NvType.DESCRIPTOR_ARRAY:
            return tuple(self.descriptor(element, f"{pointer}/{i}")
                         for i, element in enumerate(value))
        for i, element in enumerate(value):
            single = {NvType.BOOL_ARRAY: NvType.BOOL, NvType.NUMBER_ARRAY: NvType.NUMBER,
                      NvType.STRING_ARRAY: NvType.STRING}[kind]
            ok = _is_bool_byte(element) if single is NvType.BOOL \
                else not isinstance(_payload(single, element), str)
            if not ok:
                self.fail("BHS-N010", f"{pointer}/{i}", f"{element!r} is not a valid "
                          f"{kind.name} item")
        if kind is NvType.BOOL_ARRAY:
            return tuple(element == 1 if element in (0, 1) else element for element in value)
        return tuple(value)

    def descriptor(self, value: Any, pointer: str) -> int:
        if not isinstance(value, dict) or set(value) != {"fd_index"} \
                or not _is_int64(value["fd_index"]):
            self.fail("BHS-N010", pointer, 'a descriptor must be {"fd_index": <int64>}')
        index: int = value["fd_index"]
        return index


__all__ = [
    "FLAG_IGNORE_CASE",
    "FLAG_NO_UNIQUE",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SIZE",
    "NvList",
    "NvPair",
    "NvType",
    "NvValue",
    "NvlistError",
    "from_description",
    "pack",
    "to_description",
    "unpack",
]
