"""The feedback path that carries echoes from receiver to sender (DESIGN 3, 4).

An echo (frame, j) tells the sender that the receiver's first desynchronised scale D dropped
to j while decoding ``frame``. The path has a fixed delay and its own loss model (consulted
with the echo's frame index and scale, so a frame window or exempt scales work as on the
forward path). It has no queue, so each echo's arrival time is known when it is sent: the path
is a timed mailbox rather than a SimPy process, and the sender collects, at each capture
instant, every echo whose arrival time has come. Instants within ``SIMULTANEITY_S`` count as
equal, so an echo due exactly at a capture instant (say after ``delay_frames``) is applied to
that frame whatever the floating-point rounding of the two times.
"""

from __future__ import annotations

from dataclasses import dataclass

from netsim.loss import LossModel

SIMULTANEITY_S = 1e-6
"""Two simulated instants closer than this are treated as the same instant."""


@dataclass(frozen=True)
class Echo:
    """Receiver -> sender: D dropped to ``scale`` while decoding ``frame_index`` (or the
    receiver repeats its echo then). ``desynced_since``: f when the decoder's state is (f,
    ``scale``), one a mirrored recovery frame can assume (DESIGN 3); None when it is not."""

    frame_index: int
    scale: int
    send_time_s: float
    desynced_since: int | None = None


class FeedbackLink:
    """Delays echoes by ``delay_s`` and loses some according to ``loss``."""

    def __init__(self, *, delay_s: float, loss: LossModel) -> None:
        if delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s}")
        self.delay_s = delay_s
        self.loss = loss
        self._in_flight: list[tuple[float, Echo]] = []
        self.sent = 0
        self.lost = 0
        self.delivered = 0

    def send(self, echo: Echo) -> None:
        """The receiver emits ``echo`` at ``echo.send_time_s``."""
        self.sent += 1
        if self.loss.drops(echo.frame_index, echo.scale):
            self.lost += 1
            return
        self._in_flight.append((echo.send_time_s + self.delay_s, echo))

    def take_arrived(self, now_s: float) -> list[Echo]:
        """Echoes that have arrived by ``now_s``, in arrival order; each is returned once."""
        due = now_s + SIMULTANEITY_S
        arrived = sorted(
            (item for item in self._in_flight if item[0] <= due), key=lambda item: item[0]
        )
        self._in_flight = [item for item in self._in_flight if item[0] > due]
        self.delivered += len(arrived)
        return [echo for _, echo in arrived]
