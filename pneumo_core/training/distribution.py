"""How a run spreads over TensorFlow: the distribution strategy for this process's cluster role, and what Keras 3's
``fit`` needs to run under a multi-worker strategy."""

from __future__ import annotations

import keras
import tensorflow as tf

from pneumo_core.training.cluster import ClusterRole


def distribution_strategy(role: ClusterRole) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy for a ``TF_CONFIG`` cluster, else MirroredStrategy over several GPUs when present,
    else the default (CPU or one GPU)."""
    if role.distributed:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def fit_across_workers(model: keras.Model) -> None:
    """Let Keras 3's ``fit`` run under MultiWorkerMirroredStrategy (keras-team/keras#20585, still so in Keras 3.15).

    ``fit`` fails there twice: its symbolic build reduces the first distributed batch eagerly, which a multi-worker
    strategy cannot, and it averages each step's scalar logs over an axis 0 scalars lack. So the model forgets the
    strategy it was built under (``fit`` then runs inside ``strategy.scope()``, where Keras finds the strategy
    again: variables, gradients and their all-reduce are unchanged), and its steps return their logs as
    one-element vectors, which that average turns into the mean over workers: every worker sees the same logs, so
    early stopping and checkpoints decide alike everywhere.
    """
    model._distribute_strategy = None
    train_step, test_step = model.train_step, model.test_step
    model.train_step = lambda data: {key: tf.reshape(value, [1]) for key, value in train_step(data).items()}
    model.test_step = lambda data: {key: tf.reshape(value, [1]) for key, value in test_step(data).items()}
