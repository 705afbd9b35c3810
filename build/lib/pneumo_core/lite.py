"""The serving graph run by LiteRT (TFLite) with XNNPACK: same outputs as :class:`~pneumo_core.network.KerasNetwork`,
without importing TensorFlow.

On this 2-core CPU an answer with its Grad-CAM takes about 0.6 × the time of the same graph compiled by
TensorFlow, and the app starts without TensorFlow's import (``bench/serving.py``, ``bench/app.py``).
The file is made by :func:`pneumo_core.network.export_tflite` when a model directory is saved.
"""

from __future__ import annotations

import threading

import numpy as np

from .config import lite_threads


def available() -> bool:
    """Whether the LiteRT runtime (the ``ai-edge-litert`` package) can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class LiteNetwork:
    """A TFLite serving graph (batch 1), called image by image; safe to share between threads."""

    runtime = "tflite"

    def __init__(self, flatbuffer: bytes, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads or lite_threads())
        self._run = self._interpreter.get_signature_runner()
        self._lock = threading.Lock()  # an interpreter runs one call at a time

    def forward_with_gradcam(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits ``(N,)``, pooled features ``(N, 1024)``, Grad-CAMs ``(N, size, size)``) for ``(N, 224, 224)`` uint8."""
        logits, pooled, maps = [], [], []
        for image in np.asarray(canonical, np.uint8):
            with self._lock:
                out = self._run(canonical=image[None])
            logits.append(out["logit"][0])
            pooled.append(out["pooled"][0])
            maps.append(out["gradcam"][0])
        if not logits:
            return np.zeros((0,)), np.zeros((0,)), np.zeros((0,))
        return np.asarray(logits), np.stack(pooled), np.stack(maps)

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, pooled features); the map comes with every call, at almost no cost."""
        return self.forward_with_gradcam(canonical)[:2]
