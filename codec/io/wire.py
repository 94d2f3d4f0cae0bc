"""Fixed binary layouts as tables of fields, so that tools and tests read a format's offsets
from the module that defines it (the .dhvc stream and frame headers, ``codec.stream.bitstream``;
the packet header, ``netsim.packet``) instead of keeping their own copy.

A layout is derived from the little-endian ``struct`` format the format's writer packs with,
plus one name per field, so the table cannot drift from the writer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

_CODE = re.compile(r"(\d*)([cbB?hHiIlLqQnNefdspP])")


@dataclass(frozen=True)
class WireField:
    """One field of a layout: its ``name``, byte ``offset`` and ``struct`` ``code`` (one
    value, little-endian, e.g. ``"I"``, ``"f"``, ``"2s"``)."""

    name: str
    offset: int
    code: str

    @property
    def size(self) -> int:
        """Bytes the field takes on the wire."""
        return struct.calcsize("<" + self.code)

    def read(self, data: bytes | bytearray) -> object:
        """The field's value in ``data`` (``struct.error`` when ``data`` is too short)."""
        return struct.unpack_from("<" + self.code, data, self.offset)[0]

    def write(self, data: bytearray, value: object) -> None:
        """Set the field in ``data`` to ``value`` (``struct.error`` when it does not fit)."""
        struct.pack_into("<" + self.code, data, self.offset, value)


def wire_fields(fmt: str, names: Sequence[str], *, base: int = 0) -> tuple[WireField, ...]:
    """The fields of little-endian ``struct`` format ``fmt`` (``"<..."``), named in order by
    ``names``; offsets start at ``base``. A repeat count is a string's length (``"32s"``) or,
    for other codes, that many fields. ``ValueError`` when the names do not match the fields."""
    if not fmt.startswith("<"):
        raise ValueError(f"layout {fmt!r} is not little-endian without padding ('<')")
    codes: list[str] = []
    for count, code in _CODE.findall(fmt[1:]):
        if code in "sp":
            codes.append(count + code)
        else:
            codes.extend([code] * int(count or 1))
    if len(codes) != len(names):
        raise ValueError(f"layout {fmt!r} has {len(codes)} fields, {len(names)} names given")
    fields, offset = [], base
    for name, code in zip(names, codes, strict=True):
        fields.append(WireField(name, offset, code))
        offset += struct.calcsize("<" + code)
    return tuple(fields)
