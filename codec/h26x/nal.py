"""H.264 and HEVC byte streams as x264 and x265 write them (Annex B): the PyAV encoder and
decoder of each codec, NAL unit splitting and types, and SEI removal. One definition for the
real-time codecs (``codec.h26x.realtime``) and the RD anchors of ``dhvc eval``
(``codec.rd.anchors``)."""

from __future__ import annotations

import re

STANDARD_CODECS: dict[str, tuple[str, str]] = {
    "x264": ("libx264", "h264"),
    "x265": ("libx265", "hevc"),
}
"""Codec name -> (PyAV encoder, PyAV decoder)."""

SEI_NAL_TYPES = {"x264": {6}, "x265": {39, 40}}
"""NAL unit types of SEI messages: H.264 type 6; HEVC prefix 39 and suffix 40."""


def nal_units(annex_b: bytes) -> list[bytes]:
    """Split an Annex B byte stream at its start codes; each unit keeps its own start code."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", annex_b)]
    units: list[bytes] = []
    for i, start in enumerate(starts):
        begin = start - 1 if start > 0 and annex_b[start - 1] == 0 else start
        end = len(annex_b) if i + 1 == len(starts) else starts[i + 1]
        if i + 1 < len(starts) and annex_b[end - 1] == 0:
            end -= 1  # the next unit's four-byte start code
        units.append(annex_b[begin:end])
    return units


def nal_type(unit: bytes, codec: str) -> int:
    """The NAL unit type of ``unit`` (which starts with a 3- or 4-byte start code): the H.264
    header's low 5 bits for x264, the HEVC header's bits 1-6 for x265."""
    header = unit[unit.index(b"\x00\x00\x01") + 3]
    return header & 0x1F if codec == "x264" else (header >> 1) & 0x3F


def strip_sei(annex_b: bytes, codec: str) -> bytes:
    """``annex_b`` without its SEI NAL units (``SEI_NAL_TYPES``)."""
    sei = SEI_NAL_TYPES[codec]
    return b"".join(u for u in nal_units(annex_b) if nal_type(u, codec) not in sei)
