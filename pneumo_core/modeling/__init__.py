"""The networks, in TensorFlow/Keras: architectures (Keras Applications bases with our head), the compiled serving
graph and its TFLite export, ensembles, saving a model directory.

Imported only by training, by the TensorFlow runtime, by the checks that run Keras models and by the commands that
need Keras. May import :mod:`pneumo_core.common`, :mod:`pneumo_core.jobs` and :mod:`pneumo_core.store`.
"""
