"""Image files on disk to canonical images, through the one decoding and preprocessing path."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pneumo_core.common.preprocess import CANONICAL_SIZE, canonicalize
from pneumo_core.config import FILE_LOADING_THREADS
from pneumo_core.serving.decode import ImageDecodeError, decode_image


def load_canonical(path: str) -> np.ndarray:
    """One file → its ``(224, 224)`` uint8 canonical image."""
    return canonicalize(decode_image(Path(path).read_bytes()))


PROGRESS_REPORTS = 50
"""How many times :func:`load_canonical_images` reports its progress over a whole list, at most."""


def load_canonical_images(
    paths: list[str], workers: int = FILE_LOADING_THREADS, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Decode and canonicalize files in parallel → ``(N, 224, 224)`` uint8, in the given order; ``progress(done,
    total)`` is called as they come in (about :data:`PROGRESS_REPORTS` times, and once at the end)."""
    every = max(1, len(paths) // PROGRESS_REPORTS)
    images = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, image in enumerate(pool.map(load_canonical, paths), start=1):
            images.append(image)
            if progress and (done % every == 0 or done == len(paths)):
                progress(done, len(paths))
    return np.stack(images)


def decoded_bytes(count: int) -> int:
    """Memory that ``count`` canonical images take once decoded."""
    return count * CANONICAL_SIZE * CANONICAL_SIZE


def load_canonical_films(root: Path, files: list[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """(readable file names, their canonical images ``(N, 224, 224)``, unreadable file names) for files under ``root``."""
    readable, images, unreadable = [], [], []
    for name in files:
        path = Path(root) / name
        canonical = decode_canonical(path.read_bytes()) if path.is_file() else None
        if isinstance(canonical, np.ndarray):
            readable.append(name)
            images.append(canonical)
        else:
            unreadable.append(name)
    stacked = np.stack(images) if images else np.zeros((0, CANONICAL_SIZE, CANONICAL_SIZE), np.uint8)
    return readable, stacked, unreadable


def decode_canonical(payload: bytes) -> np.ndarray | ImageDecodeError:
    try:
        return canonicalize(decode_image(payload))
    except ImageDecodeError as error:
        return error
