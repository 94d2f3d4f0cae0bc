"""Codec benchmark behind ``dhvc bench``: size, MACs, speed and memory of real coding."""

from __future__ import annotations

import platform
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from codec.model.checkpoint import load_model
from codec.model.device import resolve_device
from codec.model.dhvc import count_parameters
from codec.stream.coder import CODING_THREADS, Decoder, Encoder


class EntropyTimer:
    """Adds up the wall time a coder spends in entropy coding: choosing table indexes (which
    brings sigma to the CPU), range coding and decoding, and the rate estimate. Wraps the
    methods of the coder's own entropy model instance; ``total_s`` is the sum so far."""

    METHODS = ("table_indexes", "compress", "decompress", "estimate_bits")

    def __init__(self, coder: Encoder | Decoder) -> None:
        self.total_s = 0.0
        entropy = coder._ctx.entropy  # the coder's own instance; nothing else is touched
        for name in self.METHODS:
            setattr(entropy, name, self._timed(getattr(entropy, name)))

    def _timed(self, method):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.total_s += time.perf_counter() - start

        return timed


def _macs(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


def run_bench(
    preset: str,
    width: int,
    height: int,
    device: str = "cpu",
    frames: int = 8,
    checkpoint: str = "none",
    macs_only: bool = False,
) -> dict:
    """Measure one preset at one frame size.

    MACs are FlopCounterMode FLOPs / 2 over a real ``Encoder.encode`` and ``Decoder.decode`` of
    a P frame (entropy coding has no MACs). Times are wall-clock ms per frame over ``frames``
    P frames after one warm-up frame, entropy coding included; ``*_entropy_ms_per_frame`` is the
    part of it spent in entropy coding (``EntropyTimer``), the rest is the networks. Peak
    memory is the process's maximum resident set (CPU) or ``torch.cuda.max_memory_allocated``
    (CUDA).
    """
    device = resolve_device(device)
    if width < 1 or height < 1 or frames < 1:
        raise ValueError("size and frames must be positive")
    model = load_model(checkpoint, preset=preset if checkpoint == "none" else None, device=device)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    pictures = [np.roll(base, shift=2 * i, axis=1) for i in range(frames + 2)]
    encoder = Encoder(model, gop=frames + 10, device=device)
    decoder = Decoder(model, height, width, device=device)
    lam = float(np.sqrt(model.config.lambda_min * model.config.lambda_max))
    first = encoder.encode(pictures[0], lam)
    decoder.decode(first.received())
    pixels = width * height
    result: dict = {
        "preset": model.config.name,
        "model_id": model.model_id,
        "size": f"{width}x{height}",
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "coding_threads": CODING_THREADS,
        "machine": platform.processor() or platform.machine(),
        "parameters": count_parameters(model),
    }
    encoded_holder = {}

    def enc() -> None:
        encoded_holder["f"] = encoder.encode(pictures[1], lam)

    result["encode_kmacs_per_pixel"] = round(_macs(enc) / pixels / 1e3, 2)
    result["decode_kmacs_per_pixel"] = round(
        _macs(lambda: decoder.decode(encoded_holder["f"].received())) / pixels / 1e3, 2
    )
    if macs_only:
        return result
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    enc_s, dec_s, bits, enc_entropy_s, dec_entropy_s = [], [], [], [], []
    enc_timer, dec_timer = EntropyTimer(encoder), EntropyTimer(decoder)
    for picture in pictures[2:]:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        enc_before, dec_before = enc_timer.total_s, dec_timer.total_s
        t0 = time.perf_counter()
        encoded = encoder.encode(picture, lam)
        sync()
        t1 = time.perf_counter()
        decoded = decoder.decode(encoded.received())
        sync()
        t2 = time.perf_counter()
        enc_entropy_s.append(enc_timer.total_s - enc_before)
        dec_entropy_s.append(dec_timer.total_s - dec_before)
        if not np.array_equal(decoded.x_hat, encoded.x_hat):
            raise RuntimeError("decoder diverged from encoder during the benchmark")
        enc_s.append(t1 - t0)
        dec_s.append(t2 - t1)
        bits.append(sum(encoded.payload_bits))
    result.update(
        encode_ms_per_frame=round(1e3 * float(np.median(enc_s)), 1),
        decode_ms_per_frame=round(1e3 * float(np.median(dec_s)), 1),
        encode_entropy_ms_per_frame=round(1e3 * float(np.median(enc_entropy_s)), 1),
        decode_entropy_ms_per_frame=round(1e3 * float(np.median(dec_entropy_s)), 1),
        encode_fps=round(1.0 / float(np.median(enc_s)), 2),
        decode_fps=round(1.0 / float(np.median(dec_s)), 2),
        lambda_=lam,
        mean_bits_per_frame=float(np.mean(bits)),
    )
    if device == "cuda":
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        result["peak_memory_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        )
    return result
