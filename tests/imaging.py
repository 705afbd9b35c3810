"""Small synthetic images for tests (no fixtures on disk)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def synthetic_xray(size: int = 96, seed: int = 0) -> np.ndarray:
    """A grayscale image shaped vaguely like a chest film: dark lungs in a bright body, some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    body = 180 - 120 * (((x - 0.3) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.09) < 1) - 120 * (((x - 0.7) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.09) < 1)
    return np.clip(body + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(buffer, format=fmt)
    return buffer.getvalue()
