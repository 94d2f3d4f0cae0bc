"""Procedural training pictures for what the photo pack lacks: fine texture, hard edges, text
and noise. Generated from a seed when training starts, never stored.

* ``dead_leaves``: occluding disks and rectangles with power-law sizes (density ~ r^-3, the
  scale-invariant statistics of natural images), each filled with a flat colour, a linear
  gradient, a sinusoidal grating or coloured noise. Such images train restoration networks
  nearly as well as natural photos (Baradad et al., "Learning to See by Looking at Noise",
  2021; Achddou et al., "Synthetic images as a regularity prior for image restoration neural
  networks", 2021).
* ``text_card``: lines of random characters in several sizes and colours over a textured
  background: glyph edges, thin strokes and flat areas, the content screen sharing and
  captions bring and camera photos rarely have.

The pictures join the photo tiles of ``codec.train.synth.PhotoBank``, so the same paper-7.2
motions and layered motion move them.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_GLYPHS = string.ascii_letters + string.digits + " .,:;-+=/()[]%&#@"


def _colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (3,) float32 in [0, 1], mostly muted as in photos: a grey level plus a
    chroma of random strength."""
    grey = rng.uniform(0.05, 0.95)
    chroma = rng.uniform(0.0, 0.6) * (rng.uniform(0.0, 1.0, 3) - 0.5)
    return np.clip(grey + chroma, 0.0, 1.0).astype(np.float32)


def _fill(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A height x width x 3 float32 fill in [0, 1]: flat, gradient, grating or noise."""
    colour = _colour(rng)
    kind = rng.integers(4)
    if kind == 0:
        return np.broadcast_to(colour, (height, width, 3))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    if kind == 1:  # linear gradient to a second colour
        other = _colour(rng)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        return colour + t[..., None] * (other - colour)
    if kind == 2:  # grating, period 2-24 px
        period = rng.uniform(2.0, 24.0)
        contrast = rng.uniform(0.1, 0.5)
        wave = 0.5 + contrast * np.sin(2 * np.pi * t / period)
        return np.clip(colour * 0.5 + wave[..., None] * 0.5, 0.0, 1.0)
    sigma = rng.uniform(0.02, 0.2)  # coloured noise around the colour
    noise = rng.normal(0.0, sigma, (height, width, 3)).astype(np.float32)
    return np.clip(colour + noise, 0.0, 1.0)


def dead_leaves(rng: np.random.Generator, size: int, shapes: int = 500) -> np.ndarray:
    """A size x size x 3 uint8 dead-leaves picture: ``shapes`` disks and rectangles dropped
    back to front, radii from a power law r^-3 between 3 px and size / 2."""
    image = _fill(rng, size, size).copy()
    r_min, r_max = 3.0, size / 2.0
    # Inverse CDF of p(r) ~ r^-3 on [r_min, r_max].
    u = rng.uniform(0.0, 1.0, shapes)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    for radius in np.sort(radii)[::-1]:  # large first: small ones land on top
        cy, cx = rng.uniform(-radius, size + radius, 2)
        top, bottom = int(max(0, cy - radius)), int(min(size, cy + radius + 1))
        left, right = int(max(0, cx - radius)), int(min(size, cx + radius + 1))
        if bottom <= top or right <= left:
            continue
        h, w = bottom - top, right - left
        if rng.uniform() < 0.7:
            yy, xx = np.ogrid[top:bottom, left:right]
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        else:
            mask = np.ones((h, w), dtype=bool)
        image[top:bottom, left:right][mask] = _fill(rng, h, w)[mask]
    return (image * 255.0 + 0.5).astype(np.uint8)


def text_card(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size x 3 uint8 picture of random text lines over a dead-leaves or flat
    background (Pillow's bundled font, sizes 8-40 px)."""
    if rng.uniform() < 0.5:
        background = dead_leaves(rng, size, shapes=60)
    else:
        background = (_fill(rng, size, size) * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(background)
    draw = ImageDraw.Draw(picture)
    y = int(rng.integers(-8, 8))
    while y < size:
        font_size = int(rng.integers(8, 41))
        font = ImageFont.load_default(size=font_size)
        length = int(rng.integers(4, 40))
        text = "".join(rng.choice(list(_GLYPHS), length))
        colour = tuple(int(c * 255) for c in _colour(rng))
        draw.text((int(rng.integers(-16, size // 2)), y), text, fill=colour, font=font)
        y += int(font_size * rng.uniform(1.0, 1.8))
    return np.asarray(picture, dtype=np.uint8).copy()


def procedural_pictures(count: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` pictures (size x size x 3 uint8), three dead-leaves pictures for each text
    card, all determined by ``seed``."""
    if count < 0 or size < 16:
        raise ValueError(f"need count >= 0 and size >= 16, got {count} and {size}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDEAD1EAF]))
    return [text_card(rng, size) if i % 4 == 3 else dead_leaves(rng, size) for i in range(count)]
