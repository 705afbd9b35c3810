"""Training, in TensorFlow: the patient-grouped split, the tf.data pipeline and its augmentation, the acquisition
groups, the trainer and its recipes, packaging a trained model as a candidate, MLflow tracking and the cluster role.

What a run is asked to do and how a run is followed from outside live in :mod:`pneumo_core.jobs`, free of TensorFlow.
May import :mod:`pneumo_core.common`, :mod:`pneumo_core.jobs`, :mod:`pneumo_core.store`, :mod:`pneumo_core.serving`,
:mod:`pneumo_core.modeling` and :mod:`pneumo_core.evaluation`.
"""
