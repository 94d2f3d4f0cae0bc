"""Wire layouts are read from the format modules' own tables (``codec.io.wire``): the tables
agree with what the writers pack, and the checksum helpers re-seal damaged bytes."""

from __future__ import annotations

import struct
import zlib

import pytest

from codec.io.wire import WireField, wire_fields
from codec.stream.bitstream import (
    FRAME_HEADER_FIELDS,
    STREAM_HEADER_FIELDS,
    FrameHeader,
    StreamHeader,
    frame_header_field,
    with_scale_crc,
)
from codec.types import NUM_SCALES, FrameType


def test_fields_follow_the_struct_format_in_order():
    fields = wire_fields("<2sBIf", ("magic", "version", "count", "rate"))
    assert fields == (
        WireField("magic", 0, "2s"),
        WireField("version", 2, "B"),
        WireField("count", 3, "I"),
        WireField("rate", 7, "f"),
    )
    assert sum(f.size for f in fields) == struct.calcsize("<2sBIf")
    assert wire_fields("<2I", ("a", "b"), base=10)[1] == WireField("b", 14, "I")


def test_a_layout_with_other_names_or_padding_is_refused():
    with pytest.raises(ValueError, match="2 names"):
        wire_fields("<BBB", ("a", "b"))
    with pytest.raises(ValueError, match="little-endian"):
        wire_fields("=BB", ("a", "b"))


def test_a_field_reads_and_writes_its_bytes():
    data = bytearray(8)
    field = WireField("n", 4, "I")
    field.write(data, 0xDEADBEEF)
    assert field.read(data) == 0xDEADBEEF and data[:4] == bytes(4)


def test_the_stream_header_table_matches_what_the_writer_packs():
    packed = StreamHeader("tiny-random", 96, 64, 25, 7).pack()
    assert sum(f.size for f in STREAM_HEADER_FIELDS) == StreamHeader.SIZE
    values = {f.name: f.read(packed) for f in STREAM_HEADER_FIELDS}
    assert (values["width"], values["height"], values["gop"]) == (96, 64, 7)
    assert values["model_id"].rstrip(b"\0") == b"tiny-random"


def test_the_frame_header_table_matches_what_the_writer_packs():
    header = FrameHeader(
        20, FrameType.M, 3, 700.0, (4, 8, 12, 16), (1, 2, 3, 4), (5, 6, 7, 8), mirror_from=17
    )
    packed = header.pack()
    assert sum(f.size for f in FRAME_HEADER_FIELDS) == FrameHeader.SIZE
    assert frame_header_field("frame_index").read(packed) == 20
    assert frame_header_field("mirror_age").read(packed) == 3
    assert frame_header_field("lambda").read(packed) == 700.0
    assert frame_header_field("K").read(packed) == NUM_SCALES
    assert [frame_header_field(f"scale{k}.length").read(packed) for k in (1, 2, 3, 4)] == [
        4,
        8,
        12,
        16,
    ]
    assert frame_header_field("scale4.sync_tag").read(packed) == 8


def test_with_scale_crc_reseals_a_replaced_payload():
    payloads = [b"abcd", b"efgh", b"ijkl", b"mnop"]
    header = FrameHeader(
        0, FrameType.I, 1, 700.0, (4,) * 4, tuple(zlib.crc32(p) for p in payloads), (0,) * 4
    )
    sealed = with_scale_crc(header.pack(), 2, b"damaged!")
    parsed = FrameHeader.unpack(sealed)
    assert parsed.lengths == (4, 8, 4, 4)
    assert parsed.crcs[1] == zlib.crc32(b"damaged!") and parsed.crcs[0] == header.crcs[0]
