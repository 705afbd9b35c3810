"""Heat maps as pictures, without TensorFlow: colour maps and the overlay.

The maps themselves come from the serving runtime (:meth:`pneumo_core.serving.predictor.Predictor.explain`,
closed forms in :mod:`pneumo_core.serving.cams`).
"""

from __future__ import annotations

import cv2
import numpy as np

COLORMAPS = {
    "Jet": cv2.COLORMAP_JET,
    "Turbo": cv2.COLORMAP_TURBO,
    "Inferno": cv2.COLORMAP_INFERNO,
    "Viridis": cv2.COLORMAP_VIRIDIS,
}


def overlay(canonical: np.ndarray, cam: np.ndarray, opacity: float = 0.4, colormap: str = "Jet") -> np.ndarray:
    """Blend a [0, 1] map (any size) over a grayscale image → RGB uint8 at the image's size."""
    height, width = canonical.shape[:2]
    heat = cv2.resize((np.clip(cam, 0, 1) * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    colored = cv2.cvtColor(cv2.applyColorMap(heat, COLORMAPS[colormap]), cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(canonical, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(colored, float(opacity), base, 1.0 - float(opacity), 0.0)
