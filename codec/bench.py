"""Codec benchmark behind ``dhvc bench``: size, MACs, speed and memory of real coding."""

from __future__ import annotations

import platform
import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from codec.checkpoint import load_model
from codec.coder import CODING_THREADS, Decoder, Encoder
from codec.model import count_parameters


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
    P frames after one warm-up frame, entropy coding included. Peak memory is the process's
    maximum resident set (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA).
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available")
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
    enc_s, dec_s, bits = [], [], []
    for picture in pictures[2:]:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        encoded = encoder.encode(picture, lam)
        sync()
        t1 = time.perf_counter()
        decoded = decoder.decode(encoded.received())
        sync()
        t2 = time.perf_counter()
        if not np.array_equal(decoded.x_hat, encoded.x_hat):
            raise RuntimeError("decoder diverged from encoder during the benchmark")
        enc_s.append(t1 - t0)
        dec_s.append(t2 - t1)
        bits.append(sum(encoded.payload_bits))
    result.update(
        encode_ms_per_frame=round(1e3 * float(np.median(enc_s)), 1),
        decode_ms_per_frame=round(1e3 * float(np.median(dec_s)), 1),
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
