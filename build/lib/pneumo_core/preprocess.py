"""The one preprocessing path from a decoded image to the model's input.

Two steps, shared by training, prediction, Grad-CAM and the app:

1. :func:`canonicalize` (NumPy, once per image): grayscale of any size → a
   ``CANONICAL_SIZE`` square uint8 image. It resizes with PIL's nearest
   neighbour, the way the Kermany training copy was made (Keras
   ``flow_from_directory``), so uploads of original-size films look like the
   training images, then stretches the 0.5–99.5 percentile range to 0–255 so
   exposure differences between hospitals matter less.
2. :func:`pneumo_core.model.to_model_input` (TensorFlow, batched, part of every
   serving graph): canonical images → float32
   ``(N, size, size, 3)``, area-resized to the model's input size and scaled with
   DenseNet's own ``preprocess_input`` (ImageNet mean/std, "torch" mode).

Training caches the output of step 1 and applies augmentation between the two
steps; with augmentation off, training and serving tensors are identical (a
test checks it).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CANONICAL_SIZE = 224
PERCENTILES = (0.5, 99.5)

PREPROCESSING_SPEC = {
    "canonical_size": CANONICAL_SIZE,
    "canonical_resize": "PIL nearest",
    "intensity": f"per-image stretch of percentiles {PERCENTILES} to 0..255",
    "model_resize": "area",
    "channels": "grayscale repeated to 3",
    "scaling": "keras.applications.densenet.preprocess_input (torch mode)",
}
"""Recorded in every model's metadata so a reader knows exactly what the model saw."""


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
