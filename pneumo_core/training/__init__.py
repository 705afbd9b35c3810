"""Training, in TensorFlow: the patient-grouped split, the tf.data pipeline and its augmentation, the acquisition
groups, the trainer and its recipes, packaging a trained model as a candidate, MLflow tracking and the cluster role.

What a run is asked to do and how a run is followed from outside live in :mod:`pneumo_core.jobs`, free of TensorFlow.
"""
