"""Wiring a scenario's network into one SimPy run, independent of the codec (DESIGN 4).

``simulate`` builds the sender, forward link (with its loss model and bottleneck), receiver and
feedback link from a ``Scenario`` and runs them until every frame has been decoded and every
packet has arrived or been dropped. It takes any codec adapter (``netsim.codecs``): the runner
passes the scenario's codec, tests pass codec-free stand-ins. It returns a
``SimulationOutcome``: the packet and frame trace rows and the counts summary.json reports.

Randomness: one scenario seed; ``RandomStreams.from_seed`` gives each random component its own
``numpy.random.Generator`` through ``numpy.random.SeedSequence.spawn``, in a fixed order, so a
component's draws never depend on which other components exist or how often they draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from netsim.codecs.base import CodecAdapter, ShownPicture
from netsim.fec import FecParams
from netsim.feedback import FeedbackLink
from netsim.link import Bottleneck, ForwardLink, RateBottleneck, TraceBottleneck
from netsim.loss import (
    BernoulliLoss,
    ExplicitLoss,
    GilbertElliottLoss,
    LossModel,
    LossWindow,
    NoLoss,
)
from netsim.mahimahi import load_delivery_trace
from netsim.queueing import ByteQueue
from netsim.receiver import Receiver
from netsim.scenario import (
    BernoulliLossSpec,
    ExplicitLossSpec,
    GilbertElliottLossSpec,
    LinkSpec,
    LossSpec,
    NoLossSpec,
    RateLinkSpec,
    Scenario,
    TraceLinkSpec,
)
from netsim.sender import Sender
from netsim.trace import FrameRecord, FrameTrace, PacketRecord, PacketTrace


@dataclass(frozen=True)
class RandomStreams:
    """The independent generators of one run, derived from the scenario seed."""

    forward_loss: np.random.Generator
    forward_jitter: np.random.Generator
    feedback_loss: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        """Spawn the streams in a fixed order (append new ones at the end, never reorder)."""
        children = np.random.SeedSequence(seed).spawn(3)
        forward_loss, forward_jitter, feedback_loss = (np.random.default_rng(c) for c in children)
        return cls(forward_loss, forward_jitter, feedback_loss)


@dataclass(frozen=True)
class EchoCounts:
    """What became of the echoes: ``sent`` by the receiver, ``lost`` and ``delivered`` by the
    feedback link, and of those the sender read, ``used`` (acted on) and ``stale`` (ignored)."""

    sent: int
    lost: int
    delivered: int
    used: int
    stale: int


@dataclass(frozen=True)
class SimulationOutcome:
    """What a run produced: one record per packet (in seq order) and per frame (in frame
    order), the forward link's loss model (for its analytic values), the echo counts, the
    in-time packets the receiver did not use (rejected ones and duplicates) and the simulated
    time at which the last event happened (s)."""

    packets: tuple[PacketRecord, ...]
    frames: tuple[FrameRecord, ...]
    forward_loss: LossModel
    echoes: EchoCounts
    rejected_packets: int
    end_time_s: float


def build_loss_model(spec: LossSpec, rng: np.random.Generator) -> LossModel:
    """The runtime loss model for a scenario's loss specification."""
    if isinstance(spec, NoLossSpec):
        return NoLoss()
    if isinstance(spec, ExplicitLossSpec):
        return ExplicitLoss((e.frame, e.scale, e.fragment) for e in spec.packets)
    window = LossWindow(spec.first_frame, spec.last_frame, frozenset(spec.exempt_scales))
    if isinstance(spec, BernoulliLossSpec):
        return BernoulliLoss(spec.loss_rate, rng, window)
    if isinstance(spec, GilbertElliottLossSpec):
        if spec.loss_rate is not None and spec.mean_burst_packets is not None:
            return GilbertElliottLoss.from_loss_rate(
                spec.loss_rate, spec.mean_burst_packets, rng, window
            )
        if spec.p is None or spec.r is None:
            raise ValueError("gilbert_elliott loss needs p and r, or loss_rate and burst length")
        return GilbertElliottLoss(
            spec.p,
            spec.r,
            rng,
            loss_in_bad=1.0 if spec.loss_in_bad is None else spec.loss_in_bad,
            loss_in_good=0.0 if spec.loss_in_good is None else spec.loss_in_good,
            window=window,
        )
    raise TypeError(f"unknown loss specification {type(spec).__name__}")


def build_bottleneck(
    spec: LinkSpec, env: simpy.Environment, trace: PacketTrace
) -> Bottleneck | None:
    """The bottleneck of a forward link specification (None for an unlimited link)."""
    if isinstance(spec, RateLinkSpec):
        queue = ByteQueue(spec.queue_bytes, spec.queue_discipline)
        return RateBottleneck(env, queue, trace, spec.rate_kbps)
    if isinstance(spec, TraceLinkSpec):
        queue = ByteQueue(spec.queue_bytes, spec.queue_discipline)
        return TraceBottleneck(env, queue, trace, load_delivery_trace(Path(spec.trace_file)))
    return None


def simulate(
    scenario: Scenario,
    *,
    codec: CodecAdapter[Any, Any],
    frame_count: int,
    seed: int,
    frames: FrameTrace | None = None,
    on_frame: Callable[[ShownPicture], None] | None = None,
) -> SimulationOutcome:
    """Run the network of ``scenario`` for ``frame_count`` frames of ``codec`` with this seed.

    The sender and receiver record their halves of each frame into ``frames`` (default: a new
    ``FrameTrace`` that measures no quality); ``on_frame`` is called once per frame, in order,
    right after the frame is decoded, and may add the frame's quality to ``frames``. Raises
    ``RuntimeError`` when a frame lacks a part of its record at the end.
    """
    env = simpy.Environment()
    streams = RandomStreams.from_seed(seed)
    trace = PacketTrace()
    frames = FrameTrace() if frames is None else frames
    fps = scenario.video.fps
    network = scenario.network
    feedback = FeedbackLink(
        delay_s=network.feedback.delay_s(fps),
        loss=build_loss_model(network.feedback.loss, streams.feedback_loss),
    )
    receiver = Receiver(
        env,
        codec=codec,
        feedback=feedback,
        trace=trace,
        frames=frames,
        frame_count=frame_count,
        fps=fps,
        playout_delay_s=scenario.receiver.playout_delay_ms / 1000.0,
        decode_time_s=scenario.receiver.decode_time_ms / 1000.0,
        echo_timeout_s=(
            None
            if scenario.receiver.echo_timeout_ms is None
            else scenario.receiver.echo_timeout_ms / 1000.0
        ),
        send_echoes=network.feedback.enabled,
        on_frame=on_frame,
        decode_wait_s=(
            None
            if scenario.receiver.decode_wait_ms is None
            else scenario.receiver.decode_wait_ms / 1000.0
        ),
    )
    forward_loss = build_loss_model(network.forward.loss, streams.forward_loss)
    link = ForwardLink(
        env,
        loss=forward_loss,
        delay_s=network.forward.delay_ms / 1000.0,
        jitter_s=network.forward.jitter_ms / 1000.0,
        jitter_rng=streams.forward_jitter,
        trace=trace,
        deliver=receiver.deliver,
        bottleneck=build_bottleneck(network.forward, env, trace),
    )
    sender = Sender(
        env,
        codec=codec,
        link=link,
        feedback=feedback,
        frames=frames,
        frame_count=frame_count,
        fps=fps,
        mtu_bytes=scenario.sender.mtu_bytes,
        max_scales=scenario.sender.max_scales,
        fec={
            scale: FecParams(f.data_packets, f.parity_packets)
            for scale, f in scenario.sender.fec.items()
        },
        encode_time_s=scenario.sender.encode_time_ms / 1000.0,
    )
    env.run()
    frame_records = tuple(frames.records())
    if len(frame_records) != frame_count:
        raise RuntimeError("simulation ended before every frame was sent and decoded")
    return SimulationOutcome(
        packets=tuple(trace.records()),
        frames=frame_records,
        forward_loss=forward_loss,
        echoes=EchoCounts(
            sent=feedback.sent,
            lost=feedback.lost,
            delivered=feedback.delivered,
            used=sender.echoes_used,
            stale=sender.echoes_stale,
        ),
        rejected_packets=receiver.rejected_packets,
        end_time_s=float(env.now),
    )
