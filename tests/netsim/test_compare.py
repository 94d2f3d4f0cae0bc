"""x264/x265 through the same network as DHVC (issue 13, DESIGN 4b): slice packets,
concealment, freezes, PLI -> IDR, FEC, rate matching and identical traces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from codec.h26x.realtime import clip_bitrate_kbps, encode_clip, split_nal_units
from codec.types import IN_SYNC, FrameType
from netsim.codecs.h26x import H26xAdapter, H26xFrameDecoder, H26xFrameEncoder, h26x_settings
from netsim.codecs.slices import (
    END,
    START,
    ReceivedSlices,
    SlicedFrame,
    fits_slice_header,
    packetize_slices,
    received_slices,
    usable_nal_units,
)
from netsim.fec import FecParams
from netsim.packet import Packet, PacketLayout
from netsim.quality import QualityObserver
from netsim.reassembly import FrameAssembly
from netsim.runner import run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.simulation import simulate
from netsim.trace import FrameTrace
from tests.codec.test_h26x import synthetic_clip

MTU = 300
FPS = 25.0
COMPARE = Path(__file__).parents[2] / "scenarios" / "compare"


def x264_scenario(loss: dict | None = None, **codec: object) -> Scenario:
    """A scenario for the 128x96 synthetic clip: 20 ms forward delay, PLI 40 ms back, 60 ms
    playout delay, small packets so that the I frame is several slices."""
    return Scenario.model_validate(
        {
            "name": "t",
            "video": {"width_px": 128, "height_px": 96, "frames": 10, "fps": FPS},
            "codec": {"kind": "x264", "gop_frames": 64, "h26x": {"qp": 20, **codec}},
            "sender": {"mtu_bytes": MTU},
            "network": {
                "forward": {"kind": "unlimited", "delay_ms": 20, "loss": loss or {"kind": "none"}},
                "feedback": {"delay_ms": 40},
            },
            "receiver": {"playout_delay_ms": 60, "echo_timeout_ms": 200},
        }
    )


def run(scenario: Scenario, clip: np.ndarray, seed: int = 1):  # noqa: ANN201 - test helper
    encoder = H26xFrameEncoder(h26x_settings(scenario), clip)
    decoder = H26xFrameDecoder(scenario.codec.kind, width=clip.shape[2], height=clip.shape[1])
    frames = FrameTrace(measures_quality=True)
    quality = QualityObserver(clip, frames, keep_pictures=True)
    outcome = simulate(
        scenario,
        codec=H26xAdapter(encoder, decoder),
        frame_count=len(clip),
        seed=seed,
        frames=frames,
        on_frame=quality,
    )
    return outcome, quality.pictures


def sliced(units: tuple[bytes, ...], frame_type: FrameType = FrameType.P) -> SlicedFrame:
    return SlicedFrame(0, frame_type, "x264", 20, units, width=128, height=96)


# ----------------------------------------------------------------------------- packets


def test_each_x264_slice_travels_whole_in_one_packet_within_the_mtu() -> None:
    scenario = x264_scenario()
    pictures = encode_clip(h26x_settings(scenario), synthetic_clip())
    intra = sliced(pictures[0].nal_units, FrameType.I)
    packets = packetize_slices(intra, first_seq=7, mtu_bytes=MTU)
    assert len(packets) >= 3
    assert [p.seq for p in packets] == list(range(7, 7 + len(packets)))
    assert all(p.size_bytes <= MTU and p.layout is PacketLayout.SLICES for p in packets)
    assert all(p.payload[0] == START | END for p in packets)  # whole NAL units only
    carried = [u for p in packets for u in split_nal_units(p.payload[1:])]
    assert carried == list(intra.nal_units)
    for packet in packets:  # survives the wire
        assert Packet.from_bytes(packet.to_bytes()) == packet


def test_a_nal_unit_larger_than_a_packet_is_fragmented_and_lost_whole() -> None:
    big = b"\x00\x00\x00\x01\x41" + bytes(range(1, 251)) * 3  # 755 bytes
    small = b"\x00\x00\x00\x01\x41\x9a\x10"
    packets = packetize_slices(sliced((big, small)), first_seq=0, mtu_bytes=MTU)
    assert len(packets) == 4  # the big unit in 3 pieces, then the small one
    assert [p.payload[0] for p in packets] == [START, 0, END, START | END]
    payloads = {p.fragment_index: p.payload for p in packets}
    whole = ReceivedSlices(0, FrameType.P, 20, 4, payloads)
    assert usable_nal_units(whole) == [big, small]
    one_piece_lost = ReceivedSlices(0, FrameType.P, 20, 4, {i: payloads[i] for i in (0, 2, 3)})
    assert usable_nal_units(one_piece_lost) == [small]


def test_fec_rebuilds_a_lost_slice_packet() -> None:
    units = tuple(b"\x00\x00\x00\x01\x41" + bytes([i + 1]) * (40 + 30 * i) for i in range(4))
    packets = packetize_slices(sliced(units), first_seq=0, mtu_bytes=MTU, fec=FecParams(4, 2))
    data = [p for p in packets if not p.is_parity]
    assert len(packets) - len(data) >= 1 and all(p.size_bytes <= MTU for p in packets)
    kept = [p for p in packets if p.fragment_index != 1]
    assembly = FrameAssembly(kept[0], fits_slice_header)
    for packet in kept[1:]:
        assembly.add(packet)
    received, recovered = received_slices(0, assembly)
    assert recovered == (1,) and received.complete
    assert usable_nal_units(received) == list(units)


def test_a_dhvc_stray_does_not_join_an_x264_frame() -> None:
    packets = packetize_slices(sliced((b"\x00\x00\x00\x01\x41\x9a",)), first_seq=0, mtu_bytes=MTU)
    stray = Packet(
        seq=9,
        frame_index=0,
        scale=1,
        fragment_index=0,
        fragment_count=1,
        parity_count=0,
        rate_parameter=1024.0,
        resync_from=0,
        frame_type=FrameType.P,
        scale_length_bytes=3,
        scale_crc32=0,
        sync_tag=0,
        payload=b"abc",
    )
    assembly = FrameAssembly(packets[0], fits_slice_header)
    assembly.add(stray)
    received, _ = received_slices(0, assembly)
    assert received.payloads == {0: packets[0].payload}
    assert assembly.discarded() == [stray]


# ----------------------------------------------------------------------------- the network


def test_clean_run_decodes_every_frame_whole() -> None:
    outcome, _ = run(x264_scenario(), synthetic_clip())
    frames = outcome.frames
    assert [f.codec for f in frames] == ["x264"] * 10
    assert [f.frame_type for f in frames] == [FrameType.I] + [FrameType.P] * 9
    assert all(f.psnr > 25 and not f.concealed and not f.frozen for f in frames)
    assert all(f.scales_received == f.scales_decoded == f.units_sent for f in frames)
    assert all(f.first_desynced_scale == IN_SYNC for f in frames)


def test_lost_slice_is_concealed_then_pli_brings_an_idr_after_the_feedback_delay() -> None:
    # frame 2's first packet is lost: its picture is concealed, the receiver sends a PLI when
    # it decodes frame 2 (deadline 2/25 + 0.06 = 0.14 s); the PLI arrives 40 ms later, at
    # 0.18 s, and the first frame captured from then on (frame 5, at 0.2 s) is an IDR.
    scenario = x264_scenario({"kind": "explicit", "packets": [{"frame": 2, "scale": 1}]})
    clip = synthetic_clip()
    outcome, pictures = run(scenario, clip)
    frames = outcome.frames
    assert frames[2].frozen  # P frames of this clip are one slice: nothing left to decode
    assert frames[2].echo_sent and outcome.echoes.sent == 1
    types = [f.frame_type for f in frames]
    assert types.index(FrameType.R) == 5
    pli_sent_s = 2 / FPS + 0.060
    idr_capture_s = frames[5].capture_time_s
    pli_arrival_s = pli_sent_s + scenario.network.feedback.delay_s(FPS)
    assert idr_capture_s >= pli_arrival_s - 1e-9
    assert idr_capture_s - pli_arrival_s < 1 / FPS  # the first capture after the PLI arrived
    assert all(f.first_desynced_scale == 1 for f in frames[2:5])
    assert all(f.first_desynced_scale == IN_SYNC for f in frames[5:])
    assert frames[5].psnr > 25 and frames[3].psnr < frames[1].psnr
    assert np.array_equal(pictures[2], pictures[1])  # a freeze repeats the last picture


def test_lost_slice_of_an_idr_is_concealed_not_frozen() -> None:
    scenario = x264_scenario(
        {"kind": "explicit", "packets": [{"frame": 0, "scale": 1, "fragment": 2}]}
    )
    outcome, pictures = run(scenario, synthetic_clip())
    first = outcome.frames[0]
    assert first.concealed and not first.frozen and first.echo_sent
    assert first.scales_received < first.units_sent
    assert 10 < first.psnr < outcome.frames[5].psnr  # a picture, damaged
    assert pictures.shape == (10, 96, 128, 3)


def test_nothing_arriving_freezes_until_an_idr() -> None:
    scenario = x264_scenario(
        {"kind": "bernoulli", "loss_rate": 0.99, "first_frame": 1, "last_frame": 3}
    )
    outcome, pictures = run(scenario, synthetic_clip())
    frozen = [f.frozen for f in outcome.frames]
    assert frozen[1:4] == [True, True, True] and not frozen[0]
    assert all(np.array_equal(pictures[i], pictures[0]) for i in (1, 2, 3))
    assert outcome.frames[-1].first_desynced_scale == IN_SYNC  # an IDR repaired it


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_two_runs_of_one_seed_give_identical_traces(codec: str) -> None:
    scenario = x264_scenario({"kind": "bernoulli", "loss_rate": 0.2})
    if codec == "x265":
        data = scenario.model_dump()
        data["codec"]["kind"] = "x265"
        scenario = Scenario.model_validate(data)
    clip = synthetic_clip()
    first, _ = run(scenario, clip, seed=3)
    second, _ = run(scenario, clip, seed=3)
    assert repr(first.frames) == repr(second.frames)  # repr: lambda is NaN for x264/x265
    assert first.packets == second.packets
    assert any(p.fate.value == "lost" for p in first.packets)


def test_x265_pli_is_answered_one_picture_later_than_x264() -> None:
    data = x264_scenario({"kind": "explicit", "packets": [{"frame": 2, "scale": 1}]}).model_dump()
    data["codec"]["kind"] = "x265"
    outcome, _ = run(Scenario.model_validate(data), synthetic_clip())
    types = [f.frame_type for f in outcome.frames]
    assert types.index(FrameType.R) == 6  # x264: 5 (libx265 holds one picture back)


# ----------------------------------------------------------------------------- scenarios


def test_scenario_refuses_h26x_settings_that_cannot_run() -> None:
    base = x264_scenario().model_dump()
    for change, field in (
        ({"codec": {**base["codec"], "kind": "dhvc"}}, "codec.h26x"),
        ({"codec": {**base["codec"], "h26x": None}}, "codec.h26x"),
        ({"sender": {**base["sender"], "mtu_bytes": 80}}, "sender.mtu_bytes"),
        ({"video": {**base["video"], "width_px": 127}}, "video.width_px"),
        (
            {"codec": {**base["codec"], "kind": "x265", "h26x": {"qp": 20, "intra_refresh": True}}},
            "codec.h26x.intra_refresh",
        ),
    ):
        with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
            _validate({**base, **change})


def _validate(data: dict) -> Scenario:
    from pydantic import ValidationError

    from netsim.scenario import scenario_error_from_validation

    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise scenario_error_from_validation(Path("s.yaml"), err, data) from None


def test_compare_scenarios_cover_every_codec_and_loss_case_on_the_same_network() -> None:
    cases = ("loss00", "loss05", "loss10", "loss20", "loss40", "burst", "cellular")
    for case in cases:
        scenarios = {
            c: load_scenario(COMPARE / f"compare_{c}_{case}.yaml") for c in ("dhvc", "x264", "x265")
        }
        networks = {s.network.model_dump_json() for s in scenarios.values()}
        receivers = {s.receiver.model_dump_json() for s in scenarios.values()}
        videos = {s.video.model_dump_json() for s in scenarios.values()}
        senders = {s.sender.model_dump_json() for s in scenarios.values()}
        assert len(networks) == len(receivers) == len(videos) == len(senders) == 1
        loss = scenarios["dhvc"].network.forward.loss
        assert getattr(loss, "exempt_scales", ()) == ()
        assert getattr(loss, "first_frame", None) is None
    rates = [
        load_scenario(COMPARE / f"compare_x264_loss{r:02d}.yaml").network.forward.loss
        for r in (5, 10, 20, 40)
    ]
    assert [loss.loss_rate for loss in rates] == [0.05, 0.1, 0.2, 0.4]


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_compare_qp_matches_the_dhvc_clean_bitrate_within_ten_percent(codec: str) -> None:
    from codec.io.video import read_frames

    scenario = load_scenario(COMPARE / f"compare_{codec}_loss00.yaml")
    spec = scenario.codec.h26x
    assert spec is not None and spec.matched_to == "compare_dhvc_loss00"
    video = scenario.video
    clip = read_frames(
        video.source, max_frames=video.frames, size=(video.width_px, video.height_px)
    )
    kbps = clip_bitrate_kbps(encode_clip(h26x_settings(scenario), clip), video.fps)
    assert abs(kbps / spec.matched_bitrate_kbps - 1) < 0.10


@pytest.mark.slow
def test_dhvc_clean_bitrate_is_what_the_compare_scenarios_matched(tmp_path: Path) -> None:
    summary = run_scenario(load_scenario(COMPARE / "compare_dhvc_loss00.yaml"), tmp_path / "r")
    matched = load_scenario(COMPARE / "compare_x264_loss00.yaml").codec.h26x
    assert matched is not None
    assert math.isclose(summary.mean_bitrate_kbps, matched.matched_bitrate_kbps, rel_tol=1e-6)


def test_x264_run_writes_identical_traces_twice(tmp_path: Path) -> None:
    scenario = load_scenario(COMPARE / "compare_x264_loss10.yaml")
    for out in ("a", "b"):
        summary = run_scenario(scenario, tmp_path / out, frames=12)
    for name in ("frames.csv", "packets.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert summary.codec == "x264" and summary.frames == 12
    header = (tmp_path / "a" / "frames.csv").read_text().splitlines()[0].split(",")
    assert header[-6:] == ["codec", "units_sent", "concealed", "frozen", "shown", "state"]
    assert summary.frames_frozen + summary.frames_concealed >= 1
