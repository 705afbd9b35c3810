"""Several trained classifiers served as one flat classifier whose logit is the mean of theirs.

The ensemble has the shape every serving graph already expects (:mod:`pneumo_core.modeling.graphs`)::

    image → each member's base → their last blocks concatenated over channels (``ensemble_block``)
          → ``avg_pool`` → block-diagonal Dense (ReLU) layers → ``logit`` → sigmoid

Global average pooling commutes with concatenation over channels, and a block-diagonal kernel keeps each
member's hidden units apart, so with the last layer's kernel and bias divided by the number of members the
ensemble's logit is exactly the mean of the members' logits. ``d(logit)/d(pooled)`` is each member's gradient
over its own channels divided by the number of members, constant over positions as for one network, so
Grad-CAM, Grad-CAM++ (closed forms in :mod:`pneumo_core.serving.cams`) and ScoreCAM on ``ensemble_block`` explain
the ensemble's own logit.

Members must take the same input size, have last blocks on the same grid (every base in
:data:`pneumo_core.modeling.architectures.ARCHITECTURES` has stride 32: 7 × 7 at 224 px) and heads of the same depth.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers
from scipy.linalg import block_diag

from pneumo_core.modeling.architectures import (
    ENSEMBLE,
    ENSEMBLE_BLOCK,
    LOGIT_LAYER,
    POOLED_LAYER,
    architecture_of,
    head_dense_layers,
    last_block_layer,
)


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """One classifier whose logit is the mean of the ``members``' logits (see the module docstring)."""
    if len(members) < 2:
        raise ValueError("An ensemble needs at least two members.")
    sizes = {tuple(member.input_shape[1:3]) for member in members}
    if len(sizes) != 1:
        raise ValueError(f"Ensemble members must take one input size; they take {sorted(sizes)}.")
    heads = [head_dense_layers(member) for member in members]
    if len({len(head) for head in heads}) != 1:
        raise ValueError("Ensemble members must have heads of the same depth (the same --head-units setting or none).")
    trunks = [
        keras.Model(member.inputs, member.get_layer(last_block_layer(member)).output, name=f"member{i}_{architecture_of(member)}")
        for i, member in enumerate(members)
    ]
    grids = {tuple(trunk.output.shape[1:3]) for trunk in trunks}
    if len(grids) != 1:
        raise ValueError(f"Ensemble members' last blocks must share one grid; they have {sorted(grids)}.")

    inputs = keras.Input(shape=members[0].input_shape[1:], name="image")
    block = layers.Concatenate(name=ENSEMBLE_BLOCK)([trunk(inputs) for trunk in trunks])
    hidden = layers.GlobalAveragePooling2D(name=POOLED_LAYER)(block)
    combined = []
    for depth in range(len(heads[0])):
        last = depth == len(heads[0]) - 1
        kernel = block_diag(*[head[depth].kernel.numpy() for head in heads])
        bias = np.concatenate([head[depth].bias.numpy() for head in heads])
        if last:  # the mean of the members' logits
            kernel = kernel.sum(axis=1, keepdims=True) / len(members)
            bias = bias.mean(keepdims=True)
        dense = layers.Dense(
            kernel.shape[1], activation=None if last else "relu", name=LOGIT_LAYER if last else f"ensemble_dense{depth}"
        )
        hidden = dense(hidden)
        combined.append((dense, kernel, bias))
    outputs = layers.Activation("sigmoid", name="probability", dtype="float32")(hidden)
    model = keras.Model(inputs, outputs, name=f"pneumo_{ENSEMBLE}")
    for dense, kernel, bias in combined:
        dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model
