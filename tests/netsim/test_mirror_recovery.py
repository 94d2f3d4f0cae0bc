"""Mirrored recovery through the network (DESIGN 3, ``codec.recovery: mirror``): M packets on
the wire, the sender's answer to echoes, and whole runs of the tiny model with losses around the
echo and the recovery frame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from codec.types import IN_SYNC, MAX_MIRROR_AGE, FrameType
from netsim.codecs.dhvc import MirrorRecovery, MirrorRequest
from netsim.feedback import Echo
from netsim.packet import HEADER_SIZE_BYTES, Packet, PacketFormatError
from netsim.runner import load_run_inputs, simulate_run
from netsim.scenario import Scenario, ScenarioError, scenario_error_from_validation
from netsim.trace import FRAME_SCHEMA


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _packet(**fields: Any) -> Packet:
    base: dict[str, Any] = {
        "seq": 7,
        "frame_index": 20,
        "scale": 2,
        "fragment_index": 0,
        "fragment_count": 1,
        "parity_count": 0,
        "rate_parameter": 1024.0,
        "resync_from": 3,
        "frame_type": FrameType.M,
        "scale_length_bytes": 4,
        "scale_crc32": 1,
        "sync_tag": 2,
        "payload": b"abcd",
        "mirror_from": 12,
    }
    return Packet(**{**base, **fields})


def test_an_m_packet_names_its_assumed_state_in_the_same_46_byte_header() -> None:
    packet = _packet()
    data = packet.to_bytes()
    assert len(data) == HEADER_SIZE_BYTES + 4 == packet.size_bytes
    assert Packet.from_bytes(data) == packet
    p_frame = _packet(frame_type=FrameType.P, resync_from=0, mirror_from=None)
    assert data[3] == 3 | (20 - 12) << 2 and p_frame.to_bytes()[3] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"mirror_from": None},
        {"mirror_from": 20},
        {"mirror_from": 20 - MAX_MIRROR_AGE - 1},
        {"frame_index": 3, "mirror_from": -1},
        {"frame_type": FrameType.P, "resync_from": 0},
    ],
)
def test_packets_naming_an_impossible_state_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(PacketFormatError, match="assumes"):
        _packet(**fields)


def test_an_m_packet_may_assume_the_state_kept_from_before_a_frame() -> None:
    packet = _packet(resync_from=0)  # (12, 0): the decoder's state from before frame 12
    assert Packet.from_bytes(packet.to_bytes()) == packet


def test_a_mirror_age_on_another_frame_type_is_refused_on_parsing() -> None:
    data = bytearray(_packet(frame_type=FrameType.P, resync_from=0, mirror_from=None).to_bytes())
    data[3] |= 5 << 2
    import zlib

    data[42:46] = b"\0\0\0\0"
    checksum = zlib.crc32(bytes(data[HEADER_SIZE_BYTES:]), zlib.crc32(bytes(data[:46])))
    data[42:46] = checksum.to_bytes(4, "little")
    with pytest.raises(PacketFormatError, match="assumes no state"):
        Packet.from_bytes(bytes(data))


def test_mirror_recovery_asks_for_the_echoed_state_and_ignores_echoes_from_before_it() -> None:
    recovery = MirrorRecovery()
    assert recovery.consider(Echo(5, 3, 0.2, desynced_since=4))
    assert recovery.request == MirrorRequest(4, 3)
    recovery.mirrored(7)
    recovery.encoded(7, 3)
    assert recovery.request is None
    assert not recovery.consider(Echo(6, 3, 0.24, desynced_since=4))  # left before the M frame
    assert recovery.consider(Echo(7, 1, 0.28, desynced_since=7))  # the M frame lost scale 1
    assert recovery.request == MirrorRequest(7, 1)


def test_an_echo_without_a_mirrorable_state_asks_for_a_resync() -> None:
    recovery = MirrorRecovery()
    assert recovery.consider(Echo(5, 3, 0.2, desynced_since=4))
    assert recovery.consider(Echo(6, 2, 0.24))  # D dropped again: no simple state
    assert recovery.request == 2
    recovery.encoded(8, 2)  # the re-sync
    assert recovery.request is None
    assert not recovery.consider(Echo(7, 2, 0.28))


def test_a_resync_echo_sent_before_an_m_frame_still_counts() -> None:
    recovery = MirrorRecovery()
    recovery.consider(Echo(5, 3, 0.2, desynced_since=5))
    recovery.mirrored(7)
    recovery.encoded(7, 3)
    assert recovery.consider(Echo(6, 1, 0.24))  # D dropped twice before the M frame arrived
    assert recovery.request == 1


def test_a_resync_the_encoder_fell_back_to_clears_the_mirror_request() -> None:
    recovery = MirrorRecovery()
    recovery.consider(Echo(30, 2, 1.2, desynced_since=2))
    recovery.encoded(31, 2)  # an R frame: the state was too old to rebuild
    assert recovery.request is None


def _scenario(recovery: str = "mirror", **overrides: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "mirror",
        "seed": 3,
        "video": {"source": "sample:bikes", "width_px": 64, "height_px": 64, "frames": 14},
        "codec": {
            "checkpoint": "none",
            "preset": "tiny",
            "lam": 1024,
            "gop_frames": 64,
            "recovery": recovery,
        },
        "sender": {"mtu_bytes": 400},
        "network": {
            "forward": {"kind": "unlimited", "delay_ms": 10},
            "feedback": {"delay_frames": 1},
        },
        "receiver": {"playout_delay_ms": 30, "echo_timeout_ms": 200},
    }
    for section, value in overrides.items():
        data[section] = {**data[section], **value}
    return Scenario.model_validate(data)


def _lose(*packets: tuple[int, int], feedback: tuple[tuple[int, int], ...] = ()) -> dict:
    def explicit(entries: tuple[tuple[int, int], ...]) -> dict:
        listed = [{"frame": f, "scale": k} for f, k in entries]
        return {"kind": "explicit", "packets": listed} if listed else {"kind": "none"}

    return {
        "forward": {"kind": "unlimited", "delay_ms": 10, "loss": explicit(packets)},
        "feedback": {"delay_frames": 1, "loss": explicit(feedback)},
    }


def _run(s: Scenario) -> list[Any]:
    return simulate_run(load_run_inputs(s)).simulation.frames


def _types(frames: list[Any]) -> str:
    return "".join(f.frame_type.value for f in frames)


def _d(frames: list[Any]) -> list[int]:
    return [f.first_desynced_scale for f in frames]


def test_a_lost_scale_is_answered_by_one_m_frame_that_restores_sync() -> None:
    """Frame 3 loses scale 2; its echo (3, 2) arrives before frame 5 is captured, which is
    coded against the state the decoder kept from before frame 3, (3, 0)."""
    mirror = _run(_scenario(network=_lose((3, 2))))
    assert _types(mirror) == "IPPPPMPPPPPPPP"
    assert (mirror[5].resync_from, mirror[3].frame_type) == (0, FrameType.P)
    assert _d(mirror) == [IN_SYNC] * 3 + [2, 2] + [IN_SYNC] * 9
    resync = _run(_scenario("resync", network=_lose((3, 2))))
    assert _types(resync) == "IPPPPRPPPPPPPP"
    assert [f.psnr for f in mirror[:5]] == [f.psnr for f in resync[:5]]


def test_a_recovery_frame_lost_whole_after_a_scale_2_loss_ends_in_a_resync() -> None:
    """Losing the M frame makes D drop again (2 -> 1): no simple state, so a re-sync."""
    lost = tuple((5, k) for k in range(1, 5))
    frames = _run(_scenario(network=_lose((3, 2), *lost)))
    assert _types(frames)[:8] == "IPPPPMPR"
    assert frames[7].resync_from == 1
    assert _d(frames) == [IN_SYNC] * 3 + [2, 2, 1, 1] + [IN_SYNC] * 7


def test_a_recovery_frame_lost_whole_after_a_scale_1_loss_is_mirrored_again() -> None:
    """State (3, 1) survives the loss of the M frame at 5; the receiver repeats its echo after
    the echo timeout (frame 8) and the M frame at 10 assumes (3, 1) again."""
    lost = tuple((5, k) for k in range(1, 5))
    frames = _run(_scenario(network=_lose((3, 1), *lost)))
    assert _types(frames) == "IPPPPMPPPPMPPP"
    assert [f.frame for f in frames if f.echo_sent] == [3, 8]
    assert _d(frames) == [IN_SYNC] * 3 + [1] * 7 + [IN_SYNC] * 4


def test_a_recovery_frame_missing_a_scale_is_followed_by_another_m_frame() -> None:
    frames = _run(_scenario(network=_lose((3, 2), (5, 3))))
    assert _types(frames)[:8] == "IPPPPMPM"
    assert _d(frames) == [IN_SYNC] * 3 + [2, 2, 3, 3] + [IN_SYNC] * 7


def test_a_lost_echo_is_repeated_after_the_timeout_and_then_mirrored() -> None:
    frames = _run(_scenario(network=_lose((3, 2), feedback=((3, 2),))))
    assert _types(frames) == "IPPPPPPPPPMPPP"
    assert _d(frames) == [IN_SYNC] * 3 + [2] * 7 + [IN_SYNC] * 4


def test_mirror_runs_are_deterministic_and_the_same_on_1_and_2_threads() -> None:
    lossy = {
        "forward": {
            "kind": "unlimited",
            "delay_ms": 10,
            "loss": {"kind": "bernoulli", "loss_rate": 0.2},
        }
    }
    first = _run(_scenario(network=lossy))
    torch.set_num_threads(2)
    second = _run(_scenario(network=lossy))
    assert first == second
    assert FrameType.M in {f.frame_type for f in first}


def test_recovery_is_resync_by_default_and_mirror_only_for_dhvc() -> None:
    assert Scenario.model_validate({"name": "a"}).codec.recovery == "resync"
    data = {"name": "a", "codec": {"kind": "x264", "h26x": {"qp": 30}, "recovery": "mirror"}}
    with pytest.raises(Exception) as info:
        Scenario.model_validate(data)
    error = scenario_error_from_validation(None, info.value, data)  # type: ignore[arg-type]
    assert isinstance(error, ScenarioError)
    assert str(error) == "codec.recovery: only for kind dhvc"


def test_frames_csv_labels_mirrored_recovery_frames_m() -> None:
    column = next(c for c in FRAME_SCHEMA if c.name == "frame_type")
    assert "M" in column.labels


def test_every_echo_from_before_an_m_frame_against_a_kept_state_is_stale() -> None:
    recovery = MirrorRecovery()
    recovery.consider(Echo(5, 3, 0.2, desynced_since=5))
    recovery.mirrored(7, kept=True)  # against (5, 0): accepted after any drop since 5
    recovery.encoded(7, 0)
    assert not recovery.consider(Echo(6, 1, 0.24))  # D dropped twice before it arrived
    assert recovery.request is None
    assert recovery.consider(Echo(7, 2, 0.28, desynced_since=7))  # the M frame lost scale 2
