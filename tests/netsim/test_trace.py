"""Packet and frame traces: fates decided once, halves joined by frame index, fixed CSV bytes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from codec.types import FrameType
from netsim.packet import Packet
from netsim.trace import (
    FRAME_COLUMNS,
    PACKET_COLUMNS,
    Fate,
    FrameQuality,
    FrameRecord,
    FrameTrace,
    PacketRecord,
    PacketTrace,
    SentFrame,
    ShownFrame,
    write_frames_csv,
    write_packets_csv,
)
from tests.netsim.fakes import synthetic_packet


def packet(seq: int, *, frame: int = 0, scale: int = 1, fragment: int = 0) -> Packet:
    """A packet of 100 bytes on the wire (54 of payload)."""
    return dataclasses.replace(
        synthetic_packet(seq, 100, scale=scale, frame=frame),
        fragment_index=fragment,
        fragment_count=fragment + 1,
        scale_length_bytes=54 * (fragment + 1),
    )


def traced(*packets: Packet) -> PacketTrace:
    trace = PacketTrace()
    for p in packets:
        trace.sent(p, 0.04 * p.frame_index, exposed_to_loss=True)
    return trace


def only(trace: PacketTrace) -> PacketRecord:
    (record,) = trace.records()
    return record


# --- PacketTrace -----------------------------------------------------------------------------


def test_a_packet_that_arrived_in_time_is_delivered_with_its_arrival_time() -> None:
    p = packet(0)
    trace = traced(p)
    trace.arrived(p, 0.025, in_time=True)
    assert only(trace) == PacketRecord(
        seq=0,
        frame=0,
        scale=1,
        fragment=0,
        size_bytes=100,
        send_time_s=0.0,
        arrival_time_s=0.025,
        fate=Fate.DELIVERED,
        channel_fate=Fate.DELIVERED,
        exposed_to_loss=True,
    )


@pytest.mark.parametrize("fate", [Fate.LOST, Fate.QUEUE_DROP])
def test_a_drop_decides_the_fate_and_a_later_arrival_changes_nothing(fate: Fate) -> None:
    p = packet(0)
    trace = traced(p)
    trace.dropped(p, fate)
    trace.arrived(p, 0.025, in_time=True)
    record = only(trace)
    assert (record.fate, record.channel_fate, record.arrival_time_s) == (fate, fate, None)
    assert trace.duplicate_arrivals == 1


def test_a_drop_after_the_first_arrival_is_ignored() -> None:
    p = packet(0)
    trace = traced(p)
    trace.arrived(p, 0.025, in_time=True)
    trace.dropped(p, Fate.QUEUE_DROP)
    trace.dropped(p, Fate.LOST)
    assert (only(trace).fate, only(trace).arrival_time_s) == (Fate.DELIVERED, 0.025)


def test_the_first_drop_decides_and_a_second_drop_is_ignored() -> None:
    p = packet(0)
    trace = traced(p)
    trace.dropped(p, Fate.LOST)
    trace.dropped(p, Fate.QUEUE_DROP)
    assert only(trace).fate is Fate.LOST


def test_a_late_duplicate_never_rewrites_an_on_time_fate() -> None:
    p = packet(0)
    trace = traced(p)
    trace.arrived(p, 0.025, in_time=True)
    trace.arrived(p, 0.5, in_time=False)
    record = only(trace)
    assert (record.fate, record.arrival_time_s) == (Fate.DELIVERED, 0.025)
    assert trace.duplicate_arrivals == 1


def test_a_late_first_arrival_stays_late_when_an_in_time_copy_follows() -> None:
    p = packet(0)
    trace = traced(p)
    trace.arrived(p, 0.5, in_time=False)
    trace.arrived(p, 0.6, in_time=True)
    record = only(trace)
    assert (record.fate, record.channel_fate, record.arrival_time_s) == (
        Fate.LATE,
        Fate.LATE,
        0.5,
    )
    assert trace.duplicate_arrivals == 1


def test_a_packet_still_in_flight_at_the_end_is_late_without_an_arrival_time() -> None:
    trace = traced(packet(0))
    record = only(trace)
    assert (record.fate, record.channel_fate, record.arrival_time_s) == (Fate.LATE, Fate.LATE, None)


def test_fec_recovery_overrides_the_channel_fate() -> None:
    lost, late, unsent = packet(0, fragment=0), packet(1, fragment=1), packet(2, fragment=2)
    trace = traced(lost, late)
    trace.dropped(lost, Fate.LOST)
    trace.arrived(late, 0.3, in_time=False)
    for fragment in (0, 1, 2):
        trace.recovered(0, 1, fragment)
    records = trace.records()
    assert [(r.fate, r.channel_fate) for r in records] == [
        (Fate.FEC_RECOVERED, Fate.LOST),
        (Fate.FEC_RECOVERED, Fate.LATE),
    ]
    assert unsent.seq not in {r.seq for r in records}


def test_a_rejected_in_time_packet_is_rejected_even_when_fec_rebuilt_it() -> None:
    p = packet(0)
    trace = traced(p)
    trace.arrived(p, 0.02, in_time=True)
    trace.rejected(p)
    trace.recovered(0, 1, 0)
    record = only(trace)
    assert (record.fate, record.channel_fate, record.arrival_time_s) == (
        Fate.REJECTED,
        Fate.DELIVERED,
        0.02,
    )


@pytest.mark.parametrize("how", ["late", "lost", "never"])
def test_rejecting_a_packet_that_did_not_arrive_in_time_changes_nothing(how: str) -> None:
    p = packet(0)
    trace = traced(p)
    if how == "late":
        trace.arrived(p, 0.5, in_time=False)
    elif how == "lost":
        trace.dropped(p, Fate.LOST)
    trace.rejected(p)
    assert only(trace).fate is {"late": Fate.LATE, "lost": Fate.LOST, "never": Fate.LATE}[how]


def test_a_stray_under_a_sent_seq_touches_no_row_and_is_counted() -> None:
    genuine = packet(0)
    stray = dataclasses.replace(genuine, rate_parameter=2048.0)
    trace = traced(genuine)
    trace.arrived(stray, 0.01, in_time=True)
    trace.dropped(stray, Fate.LOST)
    trace.rejected(stray)
    unknown = packet(99)
    trace.arrived(unknown, 0.01, in_time=True)
    trace.rejected(unknown)
    trace.arrived(genuine, 0.02, in_time=True)
    assert (only(trace).fate, only(trace).arrival_time_s) == (Fate.DELIVERED, 0.02)
    assert (trace.foreign_arrivals, trace.foreign_rejected, trace.duplicate_arrivals) == (2, 2, 0)


def test_packet_records_come_in_seq_order_with_their_send_fields() -> None:
    trace = PacketTrace()
    trace.sent(packet(7, frame=2, scale=4, fragment=3), 0.08, exposed_to_loss=True)
    trace.sent(packet(2, frame=1, scale=3), 0.04, exposed_to_loss=False)
    trace.sent(packet(5, frame=1, scale=4, fragment=1), 0.045, exposed_to_loss=True)
    rows = [
        (r.seq, r.frame, r.scale, r.fragment, r.send_time_s, r.exposed_to_loss)
        for r in trace.records()
    ]
    assert rows == [
        (2, 1, 3, 0, 0.04, False),
        (5, 1, 4, 1, 0.045, True),
        (7, 2, 4, 3, 0.08, True),
    ]


# --- FrameTrace --------------------------------------------------------------------------------


def sent_half(frame: int) -> SentFrame:
    return SentFrame(
        frame_type=FrameType.I if frame == 0 else FrameType.P,
        resync_from=1 if frame == 0 else 0,
        lam=1024.0,
        bits_per_scale=(100 * (frame + 1), 200, 300, 400),
        pixels=64,
        capture_time_s=frame / 25,
    )


def shown_half(frame: int) -> ShownFrame:
    return ShownFrame(
        scales_received=4 - frame,
        scales_decoded=4 - frame,
        first_desynced_scale=5 - frame,
        echo_sent=frame == 1,
        decode_time_s=0.002,
    )


def quality(frame: int) -> FrameQuality:
    return FrameQuality(psnr=30.0 + frame, ms_ssim=0.9 + frame / 100)


def test_each_part_of_a_frame_is_recorded_once() -> None:
    trace = FrameTrace(measures_quality=True)
    trace.sent(3, sent_half(3))
    trace.shown(3, shown_half(3))
    trace.measured(3, quality(3))
    with pytest.raises(ValueError, match="frame 3: sender half recorded twice"):
        trace.sent(3, sent_half(3))
    with pytest.raises(ValueError, match="frame 3: receiver half recorded twice"):
        trace.shown(3, shown_half(3))
    with pytest.raises(ValueError, match="frame 3: quality recorded twice"):
        trace.measured(3, quality(3))


def test_a_trace_that_measures_no_quality_refuses_a_measurement() -> None:
    with pytest.raises(ValueError, match="does not measure quality"):
        FrameTrace().measured(0, quality(0))


def test_records_join_the_halves_by_frame_index_whatever_the_recording_order() -> None:
    trace = FrameTrace(measures_quality=True)
    for frame in (2, 0, 1):
        trace.shown(frame, shown_half(frame))
    for frame in (1, 2, 0):
        trace.measured(frame, quality(frame))
    for frame in (1, 0, 2):
        trace.sent(frame, sent_half(frame))
    records = trace.records()
    assert records == [
        FrameRecord.join(frame, sent_half(frame), shown_half(frame), quality(frame))
        for frame in range(3)
    ]
    assert [(r.frame, r.bits_per_scale[0], r.scales_received, r.psnr) for r in records] == [
        (0, 100, 4, 30.0),
        (1, 200, 3, 31.0),
        (2, 300, 2, 32.0),
    ]


def test_sent_frames_holds_the_sender_halves_by_frame_index() -> None:
    trace = FrameTrace()
    trace.sent(1, sent_half(1))
    snapshot = trace.sent_frames
    trace.sent(0, sent_half(0))
    assert snapshot == {1: sent_half(1)}
    assert trace.sent_frames == {0: sent_half(0), 1: sent_half(1)}


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"sent", "quality"}, "frame 1: no receiver record"),
        ({"shown", "quality"}, "frame 1: no sender record"),
        ({"sent"}, "frame 1: no receiver or quality record"),
        ({"quality"}, "frame 1: no sender or receiver record"),
        ({"sent", "shown"}, "frame 1: no quality record"),
    ],
)
def test_records_refuse_a_frame_with_a_part_missing(parts: set[str], message: str) -> None:
    trace = FrameTrace(measures_quality=True)
    for frame in (0, 2):
        trace.sent(frame, sent_half(frame))
        trace.shown(frame, shown_half(frame))
        trace.measured(frame, quality(frame))
    if "sent" in parts:
        trace.sent(1, sent_half(1))
    if "shown" in parts:
        trace.shown(1, shown_half(1))
    if "quality" in parts:
        trace.measured(1, quality(1))
    with pytest.raises(RuntimeError, match=message):
        trace.records()


def test_a_trace_that_measures_no_quality_writes_nan_quality() -> None:
    trace = FrameTrace()
    trace.sent(0, sent_half(0))
    trace.shown(0, shown_half(0))
    (record,) = trace.records()
    assert math.isnan(record.psnr) and math.isnan(record.ms_ssim)


def test_bpp_is_the_sent_bits_over_the_pixel_count() -> None:
    sent = dataclasses.replace(sent_half(0), bits_per_scale=(320, 1200, 0, 0), pixels=64)
    record = FrameRecord.join(0, sent, shown_half(0), quality(0))
    assert (record.bits_total, record.bpp) == (1520, 23.75)


# --- CSV files ---------------------------------------------------------------------------------


FRAMES_CSV = (
    ",".join(FRAME_COLUMNS)
    + "\n"
    + (
        "0,I,1,1024,4,4,5,False,1000,100,200,300,400,15.625000,30.0000,0.900000,0.000000000,"
        "0.002000000,dhvc,4,False,False,decoded,in_sync\n"
        "1,R,3,0.3333333333,3,3,4,True,1100,200,200,300,400,17.187500,nan,nan,0.040000000,"
        "0.002000000,dhvc,2,True,False,decoded,desync_s4\n"
    )
)


def frame_records() -> list[FrameRecord]:
    resync = dataclasses.replace(
        sent_half(1), frame_type=FrameType.R, resync_from=3, lam=1 / 3, units_sent=2
    )
    return [
        FrameRecord.join(0, sent_half(0), shown_half(0), quality(0)),
        FrameRecord.join(
            1,
            resync,
            dataclasses.replace(shown_half(1), concealed=True),
            FrameQuality(psnr=float("nan"), ms_ssim=float("nan")),
        ),
    ]


def test_frames_csv_has_the_schemas_header_and_fixed_formats(tmp_path: Path) -> None:
    path = tmp_path / "frames.csv"
    write_frames_csv(path, frame_records())
    text = path.read_text(encoding="utf-8")
    assert text == FRAMES_CSV
    assert tuple(text.splitlines()[0].split(",")) == FRAME_COLUMNS


PACKETS_CSV = (
    "seq,frame,scale,fragment,size_bytes,send_time_s,arrival_time_s,fate\n"
    "0,0,1,0,100,0.000000000,0.025000000,delivered\n"
    "1,1,2,0,100,0.040000000,,lost\n"
    "2,1,3,1,100,0.040000000,0.300000000,fec_recovered\n"
)


def packet_records() -> list[PacketRecord]:
    delivered, lost, late = packet(0), packet(1, frame=1, scale=2), packet(2, frame=1, scale=3)
    late = dataclasses.replace(late, fragment_index=1, fragment_count=2, scale_length_bytes=108)
    trace = traced(delivered, lost, late)
    trace.arrived(delivered, 0.025, in_time=True)
    trace.dropped(lost, Fate.LOST)
    trace.arrived(late, 0.3, in_time=False)
    trace.recovered(1, 3, 1)
    return trace.records()


def test_packets_csv_has_the_schemas_header_and_an_empty_cell_for_no_arrival(
    tmp_path: Path,
) -> None:
    path = tmp_path / "packets.csv"
    write_packets_csv(path, packet_records())
    text = path.read_text(encoding="utf-8")
    assert text == PACKETS_CSV
    assert tuple(text.splitlines()[0].split(",")) == PACKET_COLUMNS


def test_identical_records_give_identical_bytes(tmp_path: Path) -> None:
    for name, write, records in (
        ("frames", write_frames_csv, frame_records),
        ("packets", write_packets_csv, packet_records),
    ):
        first, second = tmp_path / f"{name}-1.csv", tmp_path / f"{name}-2.csv"
        write(first, records())  # type: ignore[operator]
        write(second, records())  # type: ignore[operator]
        assert first.read_bytes() == second.read_bytes()


def test_empty_traces_write_the_header_alone(tmp_path: Path) -> None:
    write_frames_csv(tmp_path / "frames.csv", [])
    write_packets_csv(tmp_path / "packets.csv", [])
    assert (tmp_path / "frames.csv").read_text() == ",".join(FRAME_COLUMNS) + "\n"
    assert (tmp_path / "packets.csv").read_text() == ",".join(PACKET_COLUMNS) + "\n"


def test_a_trace_without_quality_still_refuses_a_frame_missing_its_receiver_half() -> None:
    trace = FrameTrace()
    trace.sent(0, sent_half(0))
    with pytest.raises(RuntimeError, match="frame 0: no receiver record"):
        trace.records()
