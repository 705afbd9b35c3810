"""The one preprocessing path from a decoded image to the model's input.

Two steps, shared by training, prediction, Grad-CAM and the app:

1. :func:`canonicalize` (NumPy, once per image): grayscale of any size → a
   ``CANONICAL_SIZE`` square uint8 image. It resizes with PIL's nearest
   neighbour, the way the Kermany training copy was made (Keras
   ``flow_from_directory``), so uploads of original-size films look like the
   training images, then stretches the 0.5–99.5 percentile range to 0–255 so
   exposure differences between hospitals matter less.
2. :func:`pneumo_core.modeling.architectures.to_model_input` (TensorFlow, batched, part of every
   serving graph): canonical images → float32
   ``(N, size, size, 3)``, area-resized to the model's input size and scaled with
   DenseNet's own ``preprocess_input`` (ImageNet mean/std, "torch" mode).

Between the two, a model trained with ``--intensity equalize`` sees its films through
:func:`model_view`: global histogram equalisation, which maps every film's grey levels to their
ranks. That makes the model blind to any monotonic change of the film's grey scale (exposure, gamma,
contrast, a scanner's look-up table); the canonical image, which the app shows, stays the stretched one.
The mode is recorded in the model's metadata (:func:`preprocessing_spec`, read back by
:func:`intensity_mode`); models without it are ``stretch`` models.

Training caches the output of step 1 and applies the model view and augmentation between the two
steps; with augmentation off, training and serving tensors are identical (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from PIL import Image

CANONICAL_SIZE = 224
PERCENTILES = (0.5, 99.5)

STRETCH, EQUALIZE = "stretch", "equalize"
INTENSITY_MODES = (STRETCH, EQUALIZE)
"""What a model sees of a canonical film's grey levels: the film itself, or its histogram-equalised self."""

_STRETCH_DESCRIPTION = f"per-image stretch of percentiles {PERCENTILES} to 0..255"
_INTENSITY_DESCRIPTIONS = {
    STRETCH: _STRETCH_DESCRIPTION,
    EQUALIZE: f"{_STRETCH_DESCRIPTION}, then global histogram equalisation (OpenCV equalizeHist)",
}


def preprocessing_spec(intensity: str = STRETCH) -> dict[str, object]:
    """What a model saw, recorded in its metadata: a reader knows exactly, :func:`intensity_mode` reads it back."""
    check_intensity(intensity)
    return {
        "canonical_size": CANONICAL_SIZE,
        "canonical_resize": "PIL nearest",
        "intensity_mode": intensity,
        "intensity": _INTENSITY_DESCRIPTIONS[intensity],
        "model_resize": "area",
        "channels": "grayscale repeated to 3",
        "scaling": "keras.applications.densenet.preprocess_input (torch mode)",
    }


def check_intensity(intensity: str) -> str:
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"Unknown intensity mode {intensity!r}; choose {' or '.join(INTENSITY_MODES)}.")
    return intensity


def intensity_mode(metadata: Mapping[str, object]) -> str:
    """The intensity mode a model's metadata records; models from before the modes existed are ``stretch``."""
    preprocessing = metadata.get("preprocessing") or {}
    return check_intensity(str(preprocessing.get("intensity_mode", STRETCH)))  # type: ignore[union-attr]


def model_view(canonical: np.ndarray, intensity: str) -> np.ndarray:
    """Canonical images ``(N, 224, 224)`` uint8 as a model of that intensity mode sees them (a new array)."""
    if check_intensity(intensity) == STRETCH:
        return canonical.copy()
    return np.stack([cv2.equalizeHist(image) for image in canonical]) if len(canonical) else canonical.copy()


def canonicalize(gray: np.ndarray) -> np.ndarray:
    """A 2-D uint8 image of any size → ``(CANONICAL_SIZE, CANONICAL_SIZE)`` uint8, intensity-stretched."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grayscale image, got {gray.dtype} {gray.shape}")
    if gray.shape != (CANONICAL_SIZE, CANONICAL_SIZE):
        gray = np.asarray(Image.fromarray(gray).resize((CANONICAL_SIZE, CANONICAL_SIZE), Image.NEAREST))
    low, high = np.percentile(gray, PERCENTILES)
    if high - low < 1.0:  # a flat image: nothing to stretch
        return gray.copy()
    stretched = (gray.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.round(stretched), 0, 255).astype(np.uint8)
