"""The serving graph of a model directory on a runtime: LiteRT (the TFLite copies) or compiled TensorFlow.

Every runtime answers the same :class:`Network` calls; a model trained on another intensity view is wrapped so that
each graph sees films as the model saw them in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pneumo_core.common.network_outputs import LastBlock
from pneumo_core.common.preprocess import STRETCH, intensity_mode, model_view
from pneumo_core.config import SERVING_RUNTIMES
from pneumo_core.serving import lite
from pneumo_core.store.model_dir import LITE_COPIES, ModelLoadError, load_keras_model, load_lite_model

BATCH_SIZE = 32
"""Images per call: decoded together, and run together by the TensorFlow runtime."""
RUNTIMES = SERVING_RUNTIMES
"""``auto`` serves, when LiteRT is installed, the int8 TFLite copy if its check passed
(:mod:`pneumo_core.evaluation.int8_check`), else the float32 TFLite copy if there is one; else the compiled
TensorFlow graph."""


class Network(Protocol):
    """A serving graph on some runtime (:class:`~pneumo_core.modeling.graphs.KerasNetwork`,
    :class:`~pneumo_core.serving.lite.LiteNetwork`)."""

    runtime: str  # one of RUNTIMES other than "auto"

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[LastBlock]]: ...

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelViewNetwork:
    """A network whose model sees canonical films through :func:`~pneumo_core.common.preprocess.model_view` (a model
    trained with ``--intensity equalize``): every graph it runs gets the films as the model saw them in training."""

    inner: Network
    intensity: str

    @property
    def runtime(self) -> str:
        return self.inner.runtime

    def forward(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.forward(model_view(canonical, self.intensity))

    def forward_with_blocks(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[LastBlock]]:
        return self.inner.forward_with_blocks(model_view(canonical, self.intensity))

    def masked_logits(self, canonical: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return self.inner.masked_logits(model_view(canonical[np.newaxis], self.intensity)[0], masks)


def with_model_view(network: Network, intensity: str) -> Network:
    """``network`` as a model of that intensity mode must be run (unchanged for ``stretch``)."""
    return network if intensity == STRETCH else ModelViewNetwork(network, intensity)


def load_network(directory: Path, metadata: dict[str, Any], runtime: str = "auto") -> Network:
    """The directory's serving graph on the chosen runtime (see :data:`RUNTIMES`), fed as its model was trained."""
    if runtime not in RUNTIMES:
        raise ValueError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    try:
        intensity = intensity_mode(metadata)
    except ValueError as error:  # a model directory from a newer version of this code
        raise ModelLoadError(f"{directory}: {error} Update pneumo to serve this model.") from None
    if runtime == "auto":
        runtime = auto_runtime(metadata)
    if runtime in LITE_COPIES:
        if not lite.available():
            raise ModelLoadError("The TFLite runtime is not installed (pip install ai-edge-litert).")
        network: Network = lite.LiteNetwork(load_lite_model(directory, metadata, runtime), runtime)
    else:
        from pneumo_core.modeling.graphs import KerasNetwork

        network = KerasNetwork(load_keras_model(directory, metadata), int(metadata["input_size"]), BATCH_SIZE)
    return with_model_view(network, intensity)


def auto_runtime(metadata: dict[str, Any]) -> str:
    """The runtime ``auto`` stands for with this model's metadata (see :data:`RUNTIMES`)."""
    if not lite.available():
        return "tensorflow"
    if metadata.get("int8_check", {}).get("serves") and LITE_COPIES["tflite-int8"][1] in metadata:
        return "tflite-int8"
    return "tflite" if LITE_COPIES["tflite"][1] in metadata else "tensorflow"
