"""Saliency sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): cascading randomisation.

Re-initialise the head, then the head plus DenseNet121's top blocks, block by block
down to the whole network, and measure how well each model's Grad-CAM maps still
rank-correlate (Spearman) with the trained model's maps of the same images. A map
that explains the *model* must fall apart as the weights it depends on are
destroyed; a map that survives randomisation shows image structure, not what the
model learned.

Keras and :mod:`pneumo_core.modeling` are imported inside the functions that run the models, so the package stays
TensorFlow-free at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from pneumo_core.serving.cams import gradcam

if TYPE_CHECKING:
    import keras

    from pneumo_core.modeling.graphs import KerasNetwork

LayerFilter = Callable[[str, "keras.Model"], bool]


def gradcams_of_own_answer(network: KerasNetwork, canonical: np.ndarray) -> np.ndarray:
    """Each film's Grad-CAM for the class this network's logit favours (its answer at P = 0.5)."""
    blocks = network.forward_with_blocks(canonical)[2]
    return np.stack([gradcam(block, 1.0 if block.logit >= 0 else -1.0, network.input_size) for block in blocks])


def _in_head(name: str, model: keras.Model) -> bool:
    from pneumo_core.modeling.architectures import head_layer_names

    return name in head_layer_names(model)


def _dense_blocks(prefix: str, blocks: range) -> LayerFilter:
    return lambda name, _: any(name.startswith(f"{prefix}_block{b}_") for b in blocks)


STAGES: list[tuple[str, LayerFilter]] = [
    ("head (dense layers and logit)", _in_head),
    (
        "+ final batch norm, conv5 block 16",
        lambda name, model: name == "bn" or _dense_blocks("conv5", range(16, 17))(name, model),
    ),
    ("+ conv5 blocks 13-15", _dense_blocks("conv5", range(13, 16))),
    ("+ conv5 blocks 1-12 (all of dense block 4)", _dense_blocks("conv5", range(1, 13))),
    ("+ dense block 3 and transition (conv4, pool4)", lambda name, _: name.startswith(("conv4_", "pool4_"))),
    ("+ everything (fully random network)", lambda name, _: True),
]
"""Cumulative: each stage re-initialises its layers on top of every earlier stage's."""


@dataclass(frozen=True)
class StageResult:
    stage: str
    layers_randomised: int
    spearman_mean: float
    spearman_median: float
    spearman_std: float
    abs_spearman_mean: float  # |ρ|: a map that merely flipped would still count as kept
    images: int


def rank_correlations(reference: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Spearman correlation per image between two stacks of maps; a constant map (no signal at all) counts as 0."""
    values = []
    for a, b in zip(reference.reshape(len(reference), -1), maps.reshape(len(maps), -1)):
        rho = spearmanr(a, b).statistic if a.std() > 0 and b.std() > 0 else 0.0
        values.append(0.0 if np.isnan(rho) else float(rho))
    return np.asarray(values)


def cascading_randomization(
    model: keras.Model, input_size: int, canonical: np.ndarray, stages: list[tuple[str, LayerFilter]] = STAGES, seed: int = 2018
) -> list[StageResult]:
    """Grad-CAM rank correlation with the trained model after each cumulative re-initialisation stage.

    The trained ``model`` is never modified: stages work on a clone whose layers take their
    weights from a freshly initialised copy of the same architecture (drawn after seeding
    Keras's global generator with ``seed``, which must differ from the seed the model was built with).
    """
    import keras

    from pneumo_core.modeling.graphs import KerasNetwork

    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(model)  # same architecture, new initial weights
    randomised = keras.models.clone_model(model)
    randomised.set_weights(model.get_weights())
    trained_maps = gradcams_of_own_answer(KerasNetwork(model, input_size), canonical)
    randomised_network = KerasNetwork(randomised, input_size)  # its compiled graph reads the weights set below
    results = [StageResult("trained model (nothing re-initialised)", 0, 1.0, 1.0, 0.0, 1.0, len(canonical))]
    done: set[str] = set()
    for label, selects in stages:
        for layer in randomised.layers:
            if layer.weights and layer.name not in done and selects(layer.name, model):
                layer.set_weights(fresh.get_layer(layer.name).get_weights())
                done.add(layer.name)
        rho = rank_correlations(trained_maps, gradcams_of_own_answer(randomised_network, canonical))
        results.append(
            StageResult(
                label,
                len(done),
                float(rho.mean()),
                float(np.median(rho)),
                float(rho.std()),
                float(np.abs(rho).mean()),
                len(canonical),
            )
        )
    return results


def results_table(results: list[StageResult]) -> str:
    lines = ["| re-initialised | layers | Spearman ρ mean | median | sd | mean abs(ρ) |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [
        f"| {r.stage} | {r.layers_randomised} | {r.spearman_mean:.3f} | {r.spearman_median:.3f} | {r.spearman_std:.3f} "
        f"| {r.abs_spearman_mean:.3f} |"
        for r in results
    ]
    return "\n".join(lines)


def results_json(results: list[StageResult]) -> list[dict]:
    return [asdict(r) for r in results]
