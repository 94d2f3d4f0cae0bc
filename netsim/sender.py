"""The sending side: frame clock, encoding, packetization, re-sync on echoes (DESIGN 3, 4, 4b).

The sender drives any codec through its adapter (``netsim.codecs.CodecAdapter``): it asks it
to encode each frame with the recovery request of its feedback answer (``EchoRecovery``),
packetize it and describe what it sent; it never looks at the codec's frames.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

import simpy

from codec.types import NUM_SCALES
from netsim.codecs.base import CodecAdapter
from netsim.fec import FecParams
from netsim.feedback import FeedbackLink
from netsim.link import ForwardLink
from netsim.trace import FrameTrace


def frame_capture_time_s(frame_index: int, fps: float) -> float:
    """Frame i is captured at i / fps."""
    return frame_index / fps


class Sender:
    """Encodes and sends ``frame_count`` frames at ``fps`` with ``codec``; acts on echoes.

    Echo handling (DESIGN 3): at each capture instant the sender hands the echoes that have
    arrived to the codec's feedback answer (``codec.recovery()``, ``EchoRecovery``: stale
    echoes are ignored, the others make a re-sync request) and encodes the frame with the
    pending request.

    Each frame's sender half (``SentFrame``) goes to the frame trace ``frames`` as it is
    encoded; ``echoes_used`` and ``echoes_stale`` count the echoes acted on and ignored.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        codec: CodecAdapter[Any, Any],
        link: ForwardLink,
        feedback: FeedbackLink,
        frames: FrameTrace,
        frame_count: int,
        fps: float,
        mtu_bytes: int,
        max_scales: int = NUM_SCALES,
        fec: Mapping[int, FecParams] | None = None,
        encode_time_s: float = 0.0,
    ) -> None:
        if fps <= 0 or frame_count < 0 or encode_time_s < 0:
            raise ValueError("need fps > 0, frame_count >= 0 and encode_time_s >= 0")
        self.env = env
        self.codec = codec
        self.link = link
        self.feedback = feedback
        self.frames = frames
        self.frame_count = frame_count
        self.fps = fps
        self.mtu_bytes = mtu_bytes
        self.max_scales = max_scales
        self.fec = dict(fec or {})
        self.encode_time_s = encode_time_s
        self.next_seq = 0
        self.echoes_used = 0
        self.echoes_stale = 0
        self.recovery = codec.recovery()
        self.process = env.process(self.run())

    def run(self) -> Generator[simpy.Event, object, None]:
        """SimPy process. Wakes at each capture instant i / fps; then waits ``encode_time_s``
        (the modelled encoding time, 0 by default) and emits all packets of the frame at that
        instant, in scale order. Waits on nothing else; echoes are read from the feedback
        mailbox at the capture instant."""
        for frame_index in range(self.frame_count):
            capture_s = frame_capture_time_s(frame_index, self.fps)
            if capture_s > self.env.now:
                yield self.env.timeout(capture_s - self.env.now)
            for echo in self.feedback.take_arrived(capture_s):
                if self.recovery.consider(echo):
                    self.echoes_used += 1
                else:
                    self.echoes_stale += 1
            encoded = self.codec.encode(frame_index, self.recovery.request)
            sent = self.codec.describe_sent(
                encoded, capture_time_s=capture_s, max_scales=self.max_scales
            )
            packets = self.codec.packetize(
                encoded,
                first_seq=self.next_seq,
                mtu_bytes=self.mtu_bytes,
                max_scales=self.max_scales,
                fec=self.fec,
            )
            for packet in packets:
                if packet.frame_index != frame_index:
                    raise RuntimeError(
                        f"encoder returned frame {packet.frame_index} for frame {frame_index}"
                    )
            self.recovery.encoded(frame_index, sent.resync_from)
            self.frames.sent(frame_index, sent)
            if self.encode_time_s > 0:
                yield self.env.timeout(self.encode_time_s)
            self.next_seq += len(packets)
            for packet in packets:
                self.link.send(packet)
