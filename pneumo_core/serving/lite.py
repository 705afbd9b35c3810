"""The serving graphs run by LiteRT (TFLite) with XNNPACK: same outputs as :class:`~pneumo_core.modeling.graphs.KerasNetwork`,
without importing TensorFlow.

On this 2-core CPU an answer with what its maps need takes about 0.6 × the time of the same graph compiled by
TensorFlow, and the app starts without TensorFlow's import (``bench/serving.py``, ``bench/app.py``).
The file is made by :func:`pneumo_core.modeling.graphs.export_tflite` when a model directory is saved.
"""

from __future__ import annotations

import threading

import numpy as np

from pneumo_core.common.network_outputs import LastBlock, film_features
from pneumo_core.config import serving_settings
from pneumo_core.store.model_dir import ModelLoadError

SIGNATURES = ("masked", "serve")
"""The graphs a TFLite copy must hold (:func:`pneumo_core.modeling.graphs.export_tflite` names them)."""
MASKS_PER_CALL = 2
"""ScoreCAM's masked passes per interpreter call. Measured on this 2-core CPU (32 masks, median of 4): 2 per call
take 30.6 × one answer's pass with int8 weights and 31.5 × in float32; 1 per call 33.8 × / 32.7 ×, 8 per call
34.6 × / 34.2 ×, all 32 in one call 43.6 × / 37.4 × (a large batch's activations leave the cache)."""


def available() -> bool:
    """Whether the LiteRT runtime (the ``ai-edge-litert`` package) can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class LiteNetwork:
    """The TFLite serving graphs (``serve`` at batch 1, ``masked``); safe to share between threads.

    ``runtime`` names the copy: ``tflite`` (float32) or ``tflite-int8`` (int8 weights)."""

    def __init__(self, flatbuffer: bytes, runtime: str = "tflite", threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.runtime = runtime
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads or serving_settings().lite_threads)
        found = tuple(sorted(self._interpreter.get_signature_list()))
        if found != SIGNATURES:
            raise ModelLoadError(
                f"The TFLite copy holds the graphs {', '.join(found)}, not {', '.join(SIGNATURES)}: it was made by an "
                "older version. Make it again with: python -m pneumo_core export-tflite --model DIR"
            )
        self._serve = self._interpreter.get_signature_runner("serve")
        self._masked = self._interpreter.get_signature_runner("masked")
        self._lock = threading.Lock()  # an interpreter runs one call at a time

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[LastBlock]]:
        """(logits ``(N,)``, features ``(N, 5 C)`` (:func:`~pneumo_core.common.network_outputs.film_features`), each film's
        :class:`~pneumo_core.common.network_outputs.LastBlock`)."""
        logits, blocks = [], []
        for image in np.asarray(canonical, np.uint8):
            with self._lock:
                out = self._serve(canonical=image[None])
            logits.append(float(out["logit"][0]))
            blocks.append(LastBlock(out["activations"][0], out["gradient"][0], logits[-1]))
        if not logits:
            return np.zeros((0,)), np.zeros((0,)), []
        return np.asarray(logits, np.float32), film_features(np.stack([b.activations for b in blocks])), blocks

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features); what the maps need comes with every call, at almost no cost."""
        return self.forward_with_blocks(canonical)[:2]

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Logits ``(M,)`` of one ``(224, 224)`` uint8 canonical image under each of ``(M, 224, 224)`` masks, run
        :data:`MASKS_PER_CALL` at a time."""
        image, masks = np.asarray(canonical, np.uint8)[None], np.asarray(masks, np.float32)
        with self._lock:
            logits = [
                self._masked(canonical=image, masks=masks[start : start + MASKS_PER_CALL])["logit"]
                for start in range(0, len(masks), MASKS_PER_CALL)
            ]
        return np.concatenate(logits) if logits else np.zeros((0,), np.float32)
