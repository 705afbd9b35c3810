"""Class activation maps in closed form, from what the serving graph returns: NumPy only, no TensorFlow.

The serving graph (:mod:`pneumo_core.modeling.graphs`) returns, with every answer, the last dense block's activations
``A`` (``(h, w, C)``, 7 × 7 × 1024 for a 224-px DenseNet121) and ``g = d(logit)/d(pooled)`` (``(C,)``).
DenseNet's last block feeds global average pooling, so the score's derivative with respect to ``A`` is the
same at every position: ``dS/dA[i, j, k] = s · g[k] / (h · w)`` with ``S = s · logit``, ``s = +1`` to explain
PNEUMONIA and ``-1`` to explain NORMAL (tf-keras-vis's ``BinaryScore``). Each method follows from that:

- **Grad-CAM** weighs channel k by the mean gradient, ``s · g[k] / (h · w)``: ``relu(Σ_k w_k A_k)``.
- **Grad-CAM++** (as tf-keras-vis's ``GradcamPlusPlus`` computes it) uses exp(S) times the first, second and
  third derivatives. With a gradient constant over positions, its alphas are ``1 / (2 + g'_k Σ_ij A_ijk)``
  everywhere, and after their normalisation over positions they are ``1 / (h · w)`` for every channel whose
  gradient is not zero (and 0 for the others). The weights become ``exp(S) · relu(s · g[k]) / (h · w)``: a
  positive factor the final normalisation removes, so the map is ``relu(Σ_k relu(s · g[k]) A_k)`` — Grad-CAM
  with only the channels that raise the score.
- **ScoreCAM** (Wang et al. 2020) masks the input with each of the ``SCORECAM_CHANNELS`` most varied channels
  (upsampled, scaled to [0, 1], as tf-keras-vis's ``Scorecam`` with ``max_N``) and weighs the channel by the
  class's probability on the masked input. For a one-unit sigmoid head that probability is ``sigmoid(s · z)``,
  the two-class softmax; tf-keras-vis applied to the one unit itself takes a softmax over one value (always 1)
  and so ignores its masked passes, which is why the tests compare with tf-keras-vis on the two-class
  equivalent of the model. The masked passes run on the serving runtime
  (:meth:`pneumo_core.serving.predictor.Predictor.explain`).

Maps are upsampled to the model input (bilinear, corners aligned: scipy's ``zoom(order=1)``, which tf-keras-vis
uses) and scaled to [0, 1]; a flat map is all zeros.
"""

from __future__ import annotations

import numpy as np

from pneumo_core.common.network_outputs import LastBlock

GRADCAM = "Grad-CAM"
GRADCAM_PLUS_PLUS = "Grad-CAM++"
SCORECAM = "ScoreCAM"
METHODS = (GRADCAM, GRADCAM_PLUS_PLUS, SCORECAM)
METHOD_NAMES = {"gradcam": GRADCAM, "gradcam++": GRADCAM_PLUS_PLUS, "scorecam": SCORECAM}
"""The names the command line (``--method``) and the REST API (``method``) take, and the methods they run."""
"""Every method runs on the serving graph; Grad-CAM and Grad-CAM++ need nothing beyond the answer's own pass."""
SCORECAM_CHANNELS = 32
"""ScoreCAM masks with the 32 most varied channels of 1024 (Faster-ScoreCAM): 32 extra passes, in one batch."""
MASK_EPSILON = 1e-7
"""Keras's epsilon, which tf-keras-vis adds to each mask's range."""


def corner_aligned_upsampling(source: int, target: int) -> np.ndarray:
    """``(target, source)`` matrix of bilinear interpolation with corners aligned (scipy ``zoom(order=1)``, which
    tf-keras-vis uses); ``M @ cam @ M.T`` upsamples a square map with plain matrix products."""
    if source == 1:
        return np.ones((target, 1), np.float32)
    positions = np.linspace(0.0, source - 1, target)
    low = np.minimum(np.floor(positions).astype(int), source - 2)
    fraction = positions - low
    matrix = np.zeros((target, source), np.float32)
    matrix[np.arange(target), low] = 1.0 - fraction
    matrix[np.arange(target), low + 1] = fraction
    return matrix


def upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """``(N, h, h)`` maps → ``(N, size, size)``, corner-aligned bilinear."""
    matrix = corner_aligned_upsampling(maps.shape[1], size)
    return matrix @ maps.astype(np.float32) @ matrix.T  # two matrix products: ScoreCAM's 32 masks in ~15 ms, not ~110


def normalize(maps: np.ndarray) -> np.ndarray:
    """Scale each map of a ``(N, H, W)`` stack to [0, 1]; flat maps become zero."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0.0, (maps - low) / np.where(span > 0.0, span, 1.0), 0.0).astype(np.float32)


def sign_of(target: str, class_names: tuple[str, str]) -> float:
    """+1 to explain the positive class (PNEUMONIA), -1 for the other."""
    if target not in class_names:
        raise ValueError(f"Unknown class {target!r}; choose {' or '.join(class_names)}.")
    return 1.0 if target == class_names[1] else -1.0


def _map(block: LastBlock, weights: np.ndarray, size: int) -> np.ndarray:
    cam = np.maximum(np.tensordot(block.activations, weights.astype(np.float32), axes=([2], [0])), 0.0)
    return normalize(upsample(cam[np.newaxis], size))[0]


def gradcam(block: LastBlock, sign: float, size: int) -> np.ndarray:
    """Grad-CAM of the class ``sign`` explains, ``(size, size)`` in [0, 1]."""
    positions = block.activations.shape[0] * block.activations.shape[1]
    return _map(block, sign * block.gradient / positions, size)


def gradcam_plus_plus(block: LastBlock, sign: float, size: int) -> np.ndarray:
    """Grad-CAM++ of the class ``sign`` explains (see the module's derivation), ``(size, size)`` in [0, 1]."""
    return _map(block, np.maximum(sign * block.gradient, 0.0), size)


def scorecam_channels(block: LastBlock, channels: int = SCORECAM_CHANNELS) -> np.ndarray:
    """The indices of the ``channels`` activation maps with the largest spatial standard deviation."""
    spread = block.activations.reshape(-1, block.activations.shape[-1]).std(axis=0)
    return np.argsort(-spread, kind="stable")[: min(channels, len(spread))]


def scorecam_masks(block: LastBlock, chosen: np.ndarray, size: int) -> np.ndarray:
    """``(len(chosen), size, size)`` masks: each chosen channel upsampled and scaled to [0, 1]."""
    maps = upsample(np.moveaxis(block.activations[..., chosen], -1, 0), size)
    low = maps.min(axis=(1, 2), keepdims=True)
    return ((maps - low) / (maps.max(axis=(1, 2), keepdims=True) - low + MASK_EPSILON)).astype(np.float32)


def scorecam(block: LastBlock, chosen: np.ndarray, masked_logits: np.ndarray, sign: float, size: int) -> np.ndarray:
    """ScoreCAM from the logits of the input masked by each chosen channel, ``(size, size)`` in [0, 1]."""
    weights = np.zeros(block.activations.shape[-1], np.float64)
    weights[chosen] = 1.0 / (1.0 + np.exp(-sign * np.asarray(masked_logits, np.float64)))  # P(class | masked input)
    return _map(block, weights, size)
